// pdserve: one thin executable; each subcommand lives in its own *_command.cc file.
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cli/commands.h"
#include "common/logging.h"
#include "pdserve/version.h"
#include "transfer/kv_transport.h"

namespace pdserve::cli {
namespace {
std::map<std::string, CommandRegistrar>& Registry() {
  static std::map<std::string, CommandRegistrar> registry;
  return registry;
}
}  // namespace

bool RegisterCommand(const std::string& name, CommandRegistrar registrar) {
  Registry()[name] = std::move(registrar);
  return true;
}

void AddRegisteredCommands(CLI::App& root) {
  for (auto& [name, registrar] : Registry()) registrar(root);
}

CLI::App* GetOrAddSubcommand(CLI::App& parent, const std::string& name,
                             const std::string& description) {
  for (CLI::App* sub : parent.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name() == name) return sub;
  }
  return parent.add_subcommand(name, description);
}

namespace {
std::string& Invocation() {
  static std::string line;
  return line;
}
}  // namespace

const std::string& InvocationLine() { return Invocation(); }

void SetInvocationLine(int argc, char** argv) {
  std::string& line = Invocation();
  line = "pdserve";
  for (int i = 1; i < argc; ++i) line += std::string(" ") + argv[i];
}

void Check(const absl::Status& status) {
  if (status.ok()) return;
  std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
  throw CLI::RuntimeError(1);
}

void ExitWith(const absl::Status& status) {
  Check(status);
  throw CLI::RuntimeError(0);
}

}  // namespace pdserve::cli

int main(int argc, char** argv) {
  pdserve::transfer::PresetTransportEnvironment();  // before any thread starts
  // Debian builds Abseil without NDEBUG, so every absl::Mutex lock also runs Abseil's
  // deadlock-cycle detection (a global graph under a global lock, a stack trace when a thread
  // takes a lock while holding another): about 22 of the 30 ns an uncontended lock/unlock takes
  // on the 2-core host. Debug and sanitizer builds keep it, where a lock-order inversion should
  // abort (CMakeLists.txt). Until 2026-12-06 this was keyed on NDEBUG, which no build of
  // this tree defines, so the checks ran everywhere; turning them off moved neither the control
  // plane's gap nor the CPU time of a 200-request bench beyond the noise
  // (docs/results/cpu-2core-2026-12-06-gap-idle/lock-cycle-checks).
#if PDSERVE_LOCK_CYCLE_CHECKS
  constexpr bool kLockCycleChecks = true;
#else
  constexpr bool kLockCycleChecks = false;
#endif
  if (!kLockCycleChecks) absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"pdserve: a serving runtime for a mock LLM with disaggregated prefill and decode"};
  const std::string version =
      absl::StrCat("pdserve ", PDSERVE_VERSION_STRING, " (lock-cycle checks ",
                   kLockCycleChecks ? "on" : "off", ")");
  app.set_version_flag("--version", version);
  std::string log_level = "info";
  // Checked at parse time for every subcommand: an unknown level is a usage error, not silence.
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& level) {
            absl::StatusOr<spdlog::level::level_enum> parsed = pdserve::ParseLogLevel(level);
            return parsed.ok() ? std::string() : std::string(parsed.status().message());
          },
          "LEVEL"));
  app.require_subcommand(1);
  app.parse_complete_callback([&] { pdserve::SetLogLevel(log_level); });
  pdserve::cli::SetInvocationLine(argc, argv);
  pdserve::cli::AddRegisteredCommands(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
