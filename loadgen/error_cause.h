#pragma once

#include <string>
#include <string_view>

namespace pdserve::loadgen {

// The cause of a failed request's error, so that failures are counted by cause instead of one
// line per request: servers name the request and its lengths in their messages ("request
// lg1-5: prompt of 130 tokens + max_tokens 12 = 142 exceeds max_model_len 128"), which would
// make every failure distinct. In what follows the leading code ("HTTP 400: ", "UNAVAILABLE: ",
// "verify: "), the request's id (`request_id`, and any "request <word>:" id) becomes <id> and
// every standalone number <n>; numbers inside words (llama3-8b, fp16) stay. An empty error is
// "unknown".
std::string ErrorCause(std::string_view error, std::string_view request_id);

}  // namespace pdserve::loadgen
