#pragma once

// `pdserve loadgen`'s flags: pdserve's own and `vllm bench serve`'s common ones with the same
// meaning, parsed into loadgen::LoadOptions. A library apart from the command so that tests
// can check what each flag does to the options without running a load.

#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "loadgen/load_options.h"

namespace pdserve::cli {

// Flags as parsed, before ResolveLoadgenFlags turns them into `options`.
struct LoadgenFlags {
  loadgen::LoadOptions options;
  std::string host, request_rate = "inf", arrival_process, dataset_name = "random", dataset_path;
  int port = 0;
  int input_len = -1, output_len = -1;  // vllm's general lengths; -1: not given
  int sharegpt_output_len = 0;          // --sharegpt-output-len; 0: the dataset's
  std::string percentiles = "50,90,95,99";
  std::string percentile_metrics = "ttft,tpot,itl";  // vllm's default for generation
  std::vector<std::string> goodput, metadata;
  std::string progress = "auto";
  std::string backend = "pdserve";
  bool allow_failures = false;
  bool save_result = false;
  std::string result_dir = ".", result_filename, output_json, output_csv;
  int builtin_tokens_per_chunk = 1, builtin_fail_every = 0;
  bool builtin_wrong_tokens = false;

  // Set by AddLoadgenFlags: whether the user gave these (vllm's defaults depend on it).
  CLI::Option* backend_option = nullptr;
  CLI::Option* dataset_name_option = nullptr;
  CLI::Option* disable_tqdm_option = nullptr;
};

// Adds every flag to `cmd`, bound to `flags` (which must outlive the parse).
void AddLoadgenFlags(CLI::App* cmd, LoadgenFlags& flags);

// Fills flags.options from the parsed flags (InvalidArgument for values that make no sense).
absl::Status ResolveLoadgenFlags(LoadgenFlags& flags);

// The --help footer: exit codes and the vllm flags accepted but ignored.
extern const char kLoadgenFooter[];

}  // namespace pdserve::cli
