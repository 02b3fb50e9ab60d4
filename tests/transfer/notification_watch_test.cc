// NotificationInbox::Watch, the inbox behind KvTransport::WatchNotification: a watch runs once,
// on whichever thread delivers its notification (or on the watcher's, when it was already
// there), consumes it, and can be withdrawn until then.
#include <thread>

#include "gtest/gtest.h"
#include "transfer/notification_inbox.h"

namespace pdserve::transfer {
namespace {

Notification Note(const std::string& message) { return Notification{"prefill-0", message}; }

TEST(NotificationWatchTest, APushedNotificationRunsItsWatchOnThePushingThreadAndIsConsumed) {
  NotificationInbox inbox;
  std::thread::id ran_on;
  int runs = 0;
  ASSERT_TRUE(inbox.Watch("r1:7", [&] {
    ran_on = std::this_thread::get_id();
    runs++;
  }).ok());
  std::thread pusher([&] { EXPECT_TRUE(inbox.Push(Note("r1:7"))); });
  const std::thread::id pusher_id = pusher.get_id();
  pusher.join();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(ran_on, pusher_id);
  EXPECT_EQ(inbox.WaitFor("r1:7", absl::ZeroDuration()).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(inbox.TakeAll().empty());
  EXPECT_EQ(inbox.received(), 1u);
  EXPECT_FALSE(inbox.Unwatch("r1:7"));
  // The watch is gone: the next one with the same message waits in the inbox as any other.
  EXPECT_TRUE(inbox.Push(Note("r1:7")));
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(inbox.WaitFor("r1:7", absl::ZeroDuration()).ok());
}

TEST(NotificationWatchTest, ANotificationAlreadyThereRunsTheWatchBeforeWatchReturns) {
  NotificationInbox inbox;
  ASSERT_TRUE(inbox.Push(Note("other")));
  ASSERT_TRUE(inbox.Push(Note("r1:7")));
  int runs = 0;
  ASSERT_TRUE(inbox.Watch("r1:7", [&] { runs++; }).ok());
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(inbox.Unwatch("r1:7"));
  const std::vector<Notification> left = inbox.TakeAll();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].message, "other");
}

TEST(NotificationWatchTest, AWithdrawnWatchNeverRunsAndASecondWatchIsRefused) {
  NotificationInbox inbox;
  int runs = 0;
  ASSERT_TRUE(inbox.Watch("r1:7", [&] { runs++; }).ok());
  EXPECT_EQ(inbox.Watch("r1:7", [&] { runs += 10; }).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(inbox.Unwatch("r1:7"));
  EXPECT_TRUE(inbox.Push(Note("r1:7")));
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(inbox.WaitFor("r1:7", absl::ZeroDuration()).ok()) << "queued as usual";
}

}  // namespace
}  // namespace pdserve::transfer
