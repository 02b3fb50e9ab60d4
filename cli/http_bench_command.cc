// `pdserve bench http`: the HTTP front end against gRPC on one cluster, and open streams.
#include <memory>

#include "bench/http_bench.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

void AddHttpBenchCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  CLI::App* cmd = bench->add_subcommand(
      "http",
      "OpenAI HTTP API vs gRPC on one cluster (TTFT p50 difference and ratio), and many open "
      "streams at once");
  auto o = std::make_shared<bench::HttpBenchOptions>();
  cmd->add_option("--mode", o->mode, "compare, streams or all")
      ->check(CLI::IsMember({"compare", "streams", "all"}))
      ->capture_default_str();
  cmd->add_option("--preset", o->preset)->capture_default_str();
  cmd->add_option("--out", o->out_dir, "results folder (default results/bench-http-<date>)");
  cmd->add_option("--seed", o->seed)->capture_default_str();
  cmd->add_option("--rate", o->rate, "compare: requests/s of both APIs together (Poisson, half each)")->capture_default_str();
  cmd->add_option("--prompts", o->prompts, "compare: prompts per API per round")->capture_default_str();
  cmd->add_option("--input-len", o->input_len, "compare")->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "compare")->capture_default_str();
  cmd->add_option("--rounds", o->rounds, "compare: rounds of gRPC and HTTP loads run together")
      ->capture_default_str();
  cmd->add_option("--streams", o->streams, "streams: requests open at once")->capture_default_str();
  cmd->add_option("--stream-input-len", o->stream_input_len)->capture_default_str();
  cmd->add_option("--stream-output-len", o->stream_output_len)->capture_default_str();
  cmd->add_option("--decode-step-ms", o->decode_step_ms,
                  "streams: the decode worker's minimum step (keeps the streams open together)")
      ->capture_default_str();
  cmd->add_option("--http-threads", o->http_threads, "the load generator's HTTP io threads")
      ->capture_default_str();
  cmd->callback([o] { ExitWith(bench::RunHttpBench(*o)); });
}

const bool registered = RegisterCommand("bench http", AddHttpBenchCommand);

}  // namespace
}  // namespace pdserve::cli
