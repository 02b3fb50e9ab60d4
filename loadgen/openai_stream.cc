#include "loadgen/openai_stream.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "loadgen/generate_call.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {
namespace {

using nlohmann::json;

// The extension's timeline carries RequestTimeline's fields under the same names, so the gRPC
// path's conversion (and its rules for unreported fields) applies as is.
ServerTimeline TimelineOfJson(const json& t) {
  pdserve::v1::RequestTimeline p;
  auto i64 = [&t](const char* name) -> int64_t {
    auto it = t.find(name);
    return it != t.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
  };
  auto str = [&t](const char* name) -> std::string {
    auto it = t.find(name);
    return it != t.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  p.set_arrival_us(i64("arrival_us"));
  p.set_scheduled_us(i64("scheduled_us"));
  p.set_prefill_start_us(i64("prefill_start_us"));
  p.set_prefill_end_us(i64("prefill_end_us"));
  p.set_transfer_start_us(i64("transfer_start_us"));
  p.set_transfer_end_us(i64("transfer_end_us"));
  p.set_first_token_us(i64("first_token_us"));
  p.set_finish_us(i64("finish_us"));
  p.set_kv_bytes(static_cast<uint64_t>(i64("kv_bytes")));
  p.set_transfer_ops(static_cast<uint32_t>(i64("transfer_ops")));
  p.set_transfer_backend(str("transfer_backend"));
  p.set_transports(str("transports"));
  p.set_prefill_worker(str("prefill_worker"));
  p.set_decode_worker(str("decode_worker"));
  p.set_modelled_prefill_us(i64("modelled_prefill_us"));
  p.set_prefill_mock_cpu_us(i64("prefill_mock_cpu_us"));
  p.set_decode_join_us(i64("decode_join_us"));
  p.set_modelled_first_step_us(i64("modelled_first_step_us"));
  p.set_decode_verify_cpu_us(i64("decode_verify_cpu_us"));
  p.set_transfer_batches(static_cast<uint32_t>(i64("transfer_batches")));
  p.set_transfer_busy_us(i64("transfer_busy_us"));
  p.set_transfer_copy_wait_us(i64("transfer_copy_wait_us"));
  p.set_allocated_us(i64("allocated_us"));
  p.set_decode_admitted_us(i64("decode_admitted_us"));
  p.set_kv_landed_us(i64("kv_landed_us"));
  p.set_first_token_relayed_us(i64("first_token_relayed_us"));
  return TimelineFromProto(p);
}

// "HTTP <code>: <message>" of an OpenAI error object ({"message", "code", ...}).
std::string ErrorText(const json& error) {
  std::string message = "unknown error";
  if (error.is_object()) {
    if (auto m = error.find("message"); m != error.end() && m->is_string()) message = *m;
    if (auto c = error.find("code"); c != error.end() && c->is_number_integer()) {
      return absl::StrCat("HTTP ", c->get<int>(), ": ", message);
    }
  } else if (error.is_string()) {
    message = error.get<std::string>();
  }
  return absl::StrCat("STREAM ERROR: ", message);
}

}  // namespace

int CountWords(std::string_view text) {
  int words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

void OpenAiStreamReader::Fail(std::string error) {
  if (error_.empty()) error_ = std::move(error);
}

void OpenAiStreamReader::OnEvent(std::string_view data, int64_t now_ns) {
  if (done_) return Fail("PROTOCOL: data after [DONE]");
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  if (!error_.empty()) return;  // the first failure is the one reported
  OnChunk(data, now_ns);
}

void OpenAiStreamReader::OnChunk(std::string_view data, int64_t now_ns) {
  const json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Fail("PROTOCOL: a chunk that is not JSON");
  if (auto e = j.find("error"); e != j.end()) return Fail(ErrorText(*e));
  if (auto c = j.find("choices"); c != j.end() && c->is_array() && !c->empty()) {
    const json& choice = (*c)[0];
    const json* text = nullptr;
    if (chat_) {
      auto delta = choice.find("delta");
      if (delta != choice.end() && delta->is_object()) {
        auto content = delta->find("content");
        if (content != delta->end()) text = &*content;
      }
    } else if (auto t = choice.find("text"); t != choice.end()) {
      text = &*t;
    }
    if (text != nullptr && text->is_string() && !text->get_ref<const std::string&>().empty()) {
      const int n = CountWords(text->get_ref<const std::string&>());
      if (last_event_ns_ < 0) {
        record_->ttft_s = static_cast<double>(now_ns - send_ns_) * 1e-9;
      } else {
        record_->itl_s.push_back(static_cast<double>(now_ns - last_event_ns_) * 1e-9);
      }
      last_event_ns_ = now_ns;
      record_->e2el_s = static_cast<double>(now_ns - send_ns_) * 1e-9;
      record_->event_tokens.push_back(n);
      text_tokens_ += n;
      ++events_;
    }
    if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string()) {
      finished_ = true;
    }
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    if (auto ct = u->find("completion_tokens"); ct != u->end() && ct->is_number_integer()) {
      usage_completion_ = ct->get<int>();
    }
    auto pt = u->find("prompt_tokens");
    if (pt != u->end() && pt->is_number_integer() && pt->get<int64_t>() != record_->input_len) {
      Fail(absl::StrCat("PROTOCOL: usage counts ", pt->get<int64_t>(), " prompt tokens, ",
                        record_->input_len, " were sent"));
    }
  }
  if (auto x = j.find("pdserve"); x != j.end() && x->is_object()) {
    if (auto id = x->find("request_id"); id != x->end() && id->is_string()) {
      record_->request_id = id->get<std::string>();
    }
    if (auto ids = x->find("token_ids"); ids != x->end() && ids->is_array()) {
      record_->tokens.clear();
      for (const json& t : *ids) {
        if (!t.is_number_integer()) return Fail("PROTOCOL: a token id that is not an integer");
        const int64_t v = t.get<int64_t>();
        if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
          return Fail("PROTOCOL: a token id out of range");
        }
        record_->tokens.push_back(static_cast<int32_t>(v));
      }
      have_token_ids_ = true;
    }
    if (auto t = x->find("timeline"); t != x->end() && t->is_object()) {
      record_->timeline = TimelineOfJson(*t);
    }
  }
}

bool OpenAiStreamReader::Finish() {
  if (!error_.empty()) {
    record_->error = error_;
  } else if (!done_) {
    record_->error = "INCOMPLETE: stream ended without [DONE]";
  } else if (!finished_) {
    record_->error = "INCOMPLETE: stream ended without a finish_reason";
  } else if (have_token_ids_ && static_cast<int>(record_->tokens.size()) != text_tokens_) {
    record_->error = absl::StrCat("PROTOCOL: the text carries ", text_tokens_,
                                  " tokens, token_ids ", record_->tokens.size());
  } else if (usage_completion_ >= 0 && usage_completion_ != text_tokens_) {
    record_->error = absl::StrCat("PROTOCOL: the text carries ", text_tokens_,
                                  " tokens, usage counts ", usage_completion_);
  } else if (text_tokens_ == 0) {
    record_->error = "INCOMPLETE: finished without any token";
  }
  record_->output_tokens = text_tokens_;
  return record_->error.empty();
}

}  // namespace pdserve::loadgen
