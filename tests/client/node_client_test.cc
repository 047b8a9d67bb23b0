#include "client/node_client.h"

#include <vector>

#include "gtest/gtest.h"

namespace attest::client {
namespace {

struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1000);
  std::vector<absl::Duration> sleeps;
};

absl::Status RunWithRetries(FakeClock& clock, const RetryOptions& retry, absl::Duration timeout,
                            std::vector<absl::Status> answers, int* calls) {
  const absl::Time deadline = clock.now + timeout;
  return RetryUnavailable(
      retry, deadline,
      [&](absl::Time attempt_deadline) {
        EXPECT_EQ(attempt_deadline, deadline) << "every attempt respects the call's deadline";
        const size_t i = static_cast<size_t>((*calls)++);
        return i < answers.size() ? answers[i] : answers.back();
      },
      [&] { return clock.now; },
      [&](absl::Duration d) {
        clock.sleeps.push_back(d);
        clock.now += d;
      });
}

TEST(RetryUnavailableTest, RetriesOnlyUnavailableWithGrowingBackoff) {
  FakeClock clock;
  int calls = 0;
  RetryOptions retry{
      .max_attempts = 5, .initial_backoff = absl::Milliseconds(100), .max_backoff = absl::Seconds(1)};
  absl::Status s = RunWithRetries(
      clock, retry, absl::Seconds(30),
      {absl::UnavailableError("down"), absl::UnavailableError("down"), absl::OkStatus()}, &calls);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(clock.sleeps, (std::vector<absl::Duration>{absl::Milliseconds(100), absl::Milliseconds(200)}));
}

TEST(RetryUnavailableTest, OtherErrorsAreNotRetried) {
  FakeClock clock;
  int calls = 0;
  absl::Status s =
      RunWithRetries(clock, RetryOptions{}, absl::Seconds(30), {absl::InvalidArgumentError("bad")}, &calls);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 1);
  calls = 0;
  s = RunWithRetries(clock, RetryOptions{}, absl::Seconds(30), {absl::DeadlineExceededError("slow")}, &calls);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(calls, 1);
}

TEST(RetryUnavailableTest, AttemptsAreBounded) {
  FakeClock clock;
  int calls = 0;
  RetryOptions retry{
      .max_attempts = 4, .initial_backoff = absl::Milliseconds(100), .max_backoff = absl::Milliseconds(250)};
  absl::Status s = RunWithRetries(clock, retry, absl::Seconds(30), {absl::UnavailableError("down")}, &calls);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(clock.sleeps, (std::vector<absl::Duration>{absl::Milliseconds(100), absl::Milliseconds(200),
                                                       absl::Milliseconds(250)}));
}

TEST(RetryUnavailableTest, NoBackoffPastTheDeadline) {
  FakeClock clock;
  int calls = 0;
  RetryOptions retry{
      .max_attempts = 100, .initial_backoff = absl::Seconds(1), .max_backoff = absl::Seconds(1)};
  absl::Status s =
      RunWithRetries(clock, retry, absl::Milliseconds(2500), {absl::UnavailableError("down")}, &calls);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(clock.sleeps.size(), 2u);
}

TEST(ParseTimeoutTest, SecondsOrDurations) {
  EXPECT_EQ(*ParseTimeout("30"), absl::Seconds(30));
  EXPECT_EQ(*ParseTimeout("2.5"), absl::Milliseconds(2500));
  EXPECT_EQ(*ParseTimeout("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseTimeout("2m"), absl::Minutes(2));
  EXPECT_FALSE(ParseTimeout("0").ok());
  EXPECT_FALSE(ParseTimeout("-1").ok());
  EXPECT_FALSE(ParseTimeout("soon").ok());
  EXPECT_FALSE(ParseTimeout("inf").ok());
}

TEST(ConnectGrpcNodeTest, UnreachableNodeIsUnavailableQuickly) {
  // Nothing listens on port 1; the call fails with UNAVAILABLE after bounded retries, within the timeout.
  NodeOptions options{.address = "127.0.0.1:1",
                      .timeout = absl::Seconds(5),
                      .retry = {.max_attempts = 2,
                                .initial_backoff = absl::Milliseconds(10),
                                .max_backoff = absl::Milliseconds(10)}};
  auto node = ConnectGrpcNode(options);
  ASSERT_TRUE(node.ok()) << node.status();
  const absl::Time start = absl::Now();
  auto status = (*node)->Status(v1::StatusRequest());
  EXPECT_EQ(status.status().code(), absl::StatusCode::kUnavailable) << status.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_NE(std::string(status.status().message()).find("127.0.0.1:1"), std::string::npos);
  EXPECT_FALSE(ConnectGrpcNode(NodeOptions{}).ok());
}

}  // namespace
}  // namespace attest::client
