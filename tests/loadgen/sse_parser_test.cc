// The SSE framing of the OpenAI load client: events survive any split of the bytes across
// reads, every line ending the standard allows, multi-line data, comments, and a bound.
#include "loadgen/sse_parser.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace pdserve::loadgen {
namespace {

std::vector<std::string> FeedInPieces(const std::string& bytes, const std::vector<size_t>& cuts,
                                      absl::Status* status = nullptr) {
  SseParser parser;
  std::vector<std::string> events;
  size_t begin = 0;
  absl::Status s;
  auto collect = [&](std::string_view data) { events.emplace_back(data); };
  for (size_t cut : cuts) {
    s = parser.Feed(std::string_view(bytes).substr(begin, cut - begin), collect);
    begin = cut;
  }
  s = parser.Feed(std::string_view(bytes).substr(begin), collect);
  if (status != nullptr) *status = s;
  return events;
}

const std::string kStream =
    "data: {\"choices\":[{\"text\":\" 12\"}]}\r\n\r\n"
    ": a comment\n"
    "data: {\"usage\":{}}\n\n"
    "data: [DONE]\r\n\r\n";
const std::vector<std::string> kEvents = {"{\"choices\":[{\"text\":\" 12\"}]}", "{\"usage\":{}}",
                                          "[DONE]"};

TEST(SseParserTest, WholeStreamGivesEveryEventInOrder) {
  EXPECT_EQ(FeedInPieces(kStream, {}), kEvents);
}

// Reads end anywhere: inside "data:", inside a payload, between '\r' and '\n'.
TEST(SseParserTest, EverySplitIntoTwoOrThreeReadsGivesTheSameEvents) {
  for (size_t a = 0; a <= kStream.size(); ++a) {
    EXPECT_EQ(FeedInPieces(kStream, {a}), kEvents) << "cut at " << a;
    for (size_t b = a; b <= kStream.size(); b += 7) {
      EXPECT_EQ(FeedInPieces(kStream, {a, b}), kEvents) << "cuts at " << a << ", " << b;
    }
  }
}

TEST(SseParserTest, OneByteAtATime) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < kStream.size(); ++i) cuts.push_back(i);
  EXPECT_EQ(FeedInPieces(kStream, cuts), kEvents);
}

TEST(SseParserTest, DataLinesOfOneEventAreJoinedWithNewlines) {
  EXPECT_EQ(FeedInPieces("data: first\ndata:second\ndata:  third\n\n", {}),
            std::vector<std::string>{"first\nsecond\n third"});
}

TEST(SseParserTest, CarriageReturnAloneEndsLines) {
  EXPECT_EQ(FeedInPieces("data: a\r\rdata: b\r\r", {8}), (std::vector<std::string>{"a", "b"}));
}

TEST(SseParserTest, EventsWithoutDataAndOtherFieldsAreNotDispatched) {
  EXPECT_EQ(FeedInPieces("event: ping\nid: 3\nretry: 10\n\n:\n\ndata\n\n", {}),
            std::vector<std::string>{""});
}

TEST(SseParserTest, AnUnfinishedEventIsHeldNotDispatched) {
  SseParser parser;
  int events = 0;
  ASSERT_TRUE(parser.Feed("data: [DO", [&](std::string_view) { ++events; }).ok());
  EXPECT_TRUE(parser.InsideEvent());
  ASSERT_TRUE(parser.Feed("NE]\n", [&](std::string_view) { ++events; }).ok());
  EXPECT_EQ(events, 0);  // no blank line yet
  EXPECT_TRUE(parser.InsideEvent());
  ASSERT_TRUE(parser.Feed("\n", [&](std::string_view d) { events += d == "[DONE]"; }).ok());
  EXPECT_EQ(events, 1);
  EXPECT_FALSE(parser.InsideEvent());
}

TEST(SseParserTest, ALineOverTheLimitIsAnErrorThatStays) {
  SseParser parser(/*max_line_bytes=*/16);
  auto ignore = [](std::string_view) {};
  EXPECT_TRUE(parser.Feed("data: 0123456789", ignore).ok());
  const absl::Status s = parser.Feed("abcdef", ignore);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(parser.Feed("\n\ndata: x\n\n", ignore).code(), absl::StatusCode::kResourceExhausted);
}

TEST(SseParserTest, AnEventOverTheLimitIsAnError) {
  SseParser parser(/*max_line_bytes=*/16);
  int events = 0;
  const absl::Status s =
      parser.Feed("data: 0123456789\ndata: 0123456789\n\n", [&](std::string_view) { ++events; });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(events, 0);
}

}  // namespace
}  // namespace pdserve::loadgen
