#pragma once

// Reads one streamed OpenAI completion (the data of its SSE events, in order) into the
// RequestRecord the gRPC path fills, with the same definitions (vllm bench serve's): a chunk
// whose text (completions) or delta.content (chat) is not empty is a token event, timestamped
// when it arrived; TTFT is the first, ITL every gap between two, E2E the last. A chunk's tokens
// are the words of its text (pdserve writes each token as its id, space separated: see
// http/openai_response.h); the exact output is the pdserve extension's token_ids (asked for
// with "return_token_ids": true) and the usage chunk's counts, and the three must agree.
//
// No I/O and no clock: the HTTP client passes each event's arrival time, so the rules are
// tested with made-up streams (tests/loadgen/openai_stream_test.cc).

#include <cstdint>
#include <string>
#include <string_view>

#include "loadgen/request_record.h"

namespace pdserve::loadgen {

class OpenAiStreamReader {
 public:
  // Fills `record` (which must outlive the reader); `chat`: chat.completion.chunk shapes.
  OpenAiStreamReader(RequestRecord* record, bool chat) : record_(record), chat_(chat) {}

  // When the request was sent (MonotonicNanos); times in the record count from here.
  void SetSendTime(int64_t send_ns) { send_ns_ = send_ns; }

  // One event's data, which arrived at `now_ns`. After an error event or "[DONE]" nothing
  // more is expected; what still comes is a protocol error.
  void OnEvent(std::string_view data, int64_t now_ns);

  // The body ended. Sets record->error when the stream failed, was cut short or its counts
  // disagree, and record->output_tokens / tokens from the exact sources; returns whether the
  // request succeeded (record->success is left to the caller).
  bool Finish();

  // Whether an event carrying tokens or an error has arrived (a retry is unsafe after that).
  bool started() const { return events_ > 0 || !error_.empty(); }

 private:
  void Fail(std::string error);
  void OnChunk(std::string_view data, int64_t now_ns);

  RequestRecord* record_;
  const bool chat_;
  int64_t send_ns_ = 0;
  int64_t last_event_ns_ = -1;
  int events_ = 0;
  int text_tokens_ = 0;          // words of every token event
  bool done_ = false;            // "[DONE]" seen
  bool finished_ = false;        // a finish_reason seen
  bool have_token_ids_ = false;  // the pdserve extension's token_ids seen
  int usage_completion_ = -1;    // usage.completion_tokens; -1: no usage chunk
  std::string error_;            // the first failure
};

// The number of tokens in a chunk's text: its space-separated words.
int CountWords(std::string_view text);

}  // namespace pdserve::loadgen
