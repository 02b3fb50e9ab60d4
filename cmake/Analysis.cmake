# Builds that find the next bug (scripts/test.sh's extra stages; docs/testing.md):
#   PDSERVE_SANITIZE=address,undefined | thread   sanitizer flags on every target of this tree
#   PDSERVE_THREAD_SAFETY=ON                       clang's -Wthread-safety as an error, checking
#                                                  the ABSL_GUARDED_BY annotations
#   PDSERVE_FUZZ=ON                                libFuzzer targets in tests/fuzz (clang only)
# The flags go through add_compile_options, so they reach this tree's targets and not the
# Debian libraries we link (gRPC, Abseil, UCX: uninstrumented; see tests/sanitizers/).

set(PDSERVE_SANITIZE "" CACHE STRING
    "Sanitizers for every target: address,undefined or thread (empty: none)")
option(PDSERVE_THREAD_SAFETY "clang -Wthread-safety -Werror=thread-safety on this tree" OFF)
option(PDSERVE_FUZZ "Build the libFuzzer targets in tests/fuzz (clang)" OFF)

if(PDSERVE_SANITIZE)
  if(PDSERVE_SANITIZE MATCHES "thread" AND PDSERVE_SANITIZE MATCHES "address")
    message(FATAL_ERROR "PDSERVE_SANITIZE: thread and address do not combine")
  endif()
  # No recovery: a finding fails the test that hit it instead of scrolling past in a log.
  # Frame pointers: complete stacks in reports at -O2.
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=${PDSERVE_SANITIZE}>"
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize-recover=all>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=${PDSERVE_SANITIZE})
  message(STATUS "pdserve: sanitizers ${PDSERVE_SANITIZE}")
endif()

if(PDSERVE_THREAD_SAFETY OR PDSERVE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PDSERVE_THREAD_SAFETY and PDSERVE_FUZZ need clang "
                        "(-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang)")
  endif()
endif()
if(PDSERVE_THREAD_SAFETY)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-Wthread-safety>
                      $<$<COMPILE_LANGUAGE:CXX>:-Werror=thread-safety>)
endif()
