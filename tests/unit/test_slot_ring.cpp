// SlotRing: FREE -> WRITING -> READY -> FREE, reference counts, and the
// bounded wait of the `block` overflow policy. No sockets.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include "daemon/slot_ring.hpp"

using framebroker::daemon::SlotCounts;
using framebroker::daemon::SlotRing;
using framebroker::daemon::SlotState;
using namespace std::chrono_literals;

namespace {

// free + writing + ready == slots, the counts agree with the per-slot states,
// and a FREE slot never carries a reference.
void check_ring(const SlotRing& ring) {
  const SlotCounts c = ring.counts();
  EXPECT_EQ(c.free + c.writing + c.ready, ring.size())
      << "free " << c.free << " writing " << c.writing << " ready " << c.ready;
  SlotCounts by_state;
  for (uint32_t s = 0; s < ring.size(); ++s) {
    switch (ring.state(s)) {
      case SlotState::Free:
        ++by_state.free;
        EXPECT_EQ(ring.refs(s), 0u) << "free slot " << s << " holds references";
        break;
      case SlotState::Writing:
        ++by_state.writing;
        EXPECT_EQ(ring.refs(s), 0u) << "writing slot " << s << " holds references";
        break;
      case SlotState::Ready:
        ++by_state.ready;
        break;
    }
  }
  EXPECT_EQ(c.free, by_state.free);
  EXPECT_EQ(c.writing, by_state.writing);
  EXPECT_EQ(c.ready, by_state.ready);
}

void expect_counts(const SlotRing& ring, uint32_t free, uint32_t writing, uint32_t ready) {
  const SlotCounts c = ring.counts();
  EXPECT_EQ(c.free, free);
  EXPECT_EQ(c.writing, writing);
  EXPECT_EQ(c.ready, ready);
  check_ring(ring);
}

}  // namespace

TEST(SlotRing, ZeroSlotsIsRejected) {
  EXPECT_THROW(SlotRing(0), std::invalid_argument);
}

TEST(SlotRing, StartsAllFree) {
  SlotRing ring(5);
  EXPECT_EQ(ring.size(), 5u);
  expect_counts(ring, 5, 0, 0);
  EXPECT_TRUE(ring.unreferenced());
  for (uint32_t s = 0; s < 5; ++s) EXPECT_EQ(ring.state(s), SlotState::Free);
}

TEST(SlotRing, StateNames) {
  EXPECT_STREQ(to_string(SlotState::Free), "free");
  EXPECT_STREQ(to_string(SlotState::Writing), "writing");
  EXPECT_STREQ(to_string(SlotState::Ready), "ready");
}

TEST(SlotRing, FullCycleOfOneSlot) {
  SlotRing ring(3);
  auto s = ring.loan();
  ASSERT_TRUE(s);
  EXPECT_EQ(ring.state(*s), SlotState::Writing);
  expect_counts(ring, 2, 1, 0);

  ring.commit(*s);
  EXPECT_EQ(ring.state(*s), SlotState::Ready);
  expect_counts(ring, 2, 0, 1);

  ring.add_ref(*s);
  ring.add_ref(*s);
  EXPECT_EQ(ring.refs(*s), 2u);
  EXPECT_FALSE(ring.unreferenced());
  expect_counts(ring, 2, 0, 1);

  EXPECT_FALSE(ring.drop_ref(*s));  // one left
  EXPECT_EQ(ring.refs(*s), 1u);
  EXPECT_EQ(ring.state(*s), SlotState::Ready);
  expect_counts(ring, 2, 0, 1);

  EXPECT_TRUE(ring.drop_ref(*s));  // the last one frees the slot
  EXPECT_EQ(ring.refs(*s), 0u);
  EXPECT_EQ(ring.state(*s), SlotState::Free);
  EXPECT_TRUE(ring.unreferenced());
  expect_counts(ring, 3, 0, 0);
}

TEST(SlotRing, LoansEverySlotOnceThenRunsDry) {
  SlotRing ring(4);
  std::set<uint32_t> loaned;
  for (uint32_t i = 0; i < 4; ++i) {
    auto s = ring.loan();
    ASSERT_TRUE(s);
    EXPECT_LT(*s, 4u);
    EXPECT_TRUE(loaned.insert(*s).second) << "slot " << *s << " loaned twice";
    expect_counts(ring, 3 - i, i + 1, 0);
  }
  EXPECT_FALSE(ring.loan());
  expect_counts(ring, 0, 4, 0);
}

TEST(SlotRing, FreedSlotCanBeLoanedAgain) {
  SlotRing ring(2);
  auto a = ring.loan(), b = ring.loan();
  ASSERT_TRUE(a && b);
  ring.commit(*a);
  ring.commit(*b);
  ring.add_ref(*a);
  ring.add_ref(*b);
  expect_counts(ring, 0, 0, 2);
  EXPECT_FALSE(ring.loan());
  expect_counts(ring, 0, 0, 2);

  EXPECT_TRUE(ring.drop_ref(*b));
  expect_counts(ring, 1, 0, 1);
  auto c = ring.loan();
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, *b);
  expect_counts(ring, 0, 1, 1);
  EXPECT_FALSE(ring.loan());
}

TEST(SlotRing, AbortReturnsTheSlotAndItIsLoanedNext) {
  SlotRing ring(3);
  auto a = ring.loan();
  ASSERT_TRUE(a);
  expect_counts(ring, 2, 1, 0);
  ring.abort(*a);
  EXPECT_EQ(ring.state(*a), SlotState::Free);
  expect_counts(ring, 3, 0, 0);

  // The aborted slot is the next one out, and no slot is lost or duplicated.
  auto b = ring.loan();
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, *a);
  expect_counts(ring, 2, 1, 0);
  std::set<uint32_t> rest;
  while (auto s = ring.loan()) {
    EXPECT_NE(*s, *b);
    EXPECT_TRUE(rest.insert(*s).second);
    check_ring(ring);
  }
  EXPECT_EQ(rest.size(), 2u);
  expect_counts(ring, 0, 3, 0);
}

TEST(SlotRing, AbortOfTheOnlySlotWhenRingIsOtherwiseFull) {
  SlotRing ring(2);
  auto a = ring.loan(), b = ring.loan();
  ASSERT_TRUE(a && b);
  ring.commit(*a);
  ring.add_ref(*a);
  ring.abort(*b);
  expect_counts(ring, 1, 0, 1);
  auto c = ring.loan();
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, *b);
  EXPECT_FALSE(ring.loan());
  expect_counts(ring, 0, 1, 1);
}

TEST(SlotRing, AddRefOnlyOnReadySlots) {
  SlotRing ring(2);
  EXPECT_THROW(ring.add_ref(0), std::logic_error);  // FREE
  auto s = ring.loan();
  ASSERT_TRUE(s);
  EXPECT_THROW(ring.add_ref(*s), std::logic_error);  // WRITING
  EXPECT_EQ(ring.refs(*s), 0u);
  expect_counts(ring, 1, 1, 0);
}

TEST(SlotRing, DropRefWithoutReferenceThrowsAndChangesNothing) {
  SlotRing ring(2);
  auto s = ring.loan();
  ASSERT_TRUE(s);
  ring.commit(*s);
  EXPECT_THROW(ring.drop_ref(*s), std::logic_error);
  EXPECT_EQ(ring.state(*s), SlotState::Ready);
  expect_counts(ring, 1, 0, 1);
  ring.add_ref(*s);
  EXPECT_TRUE(ring.drop_ref(*s));
  EXPECT_THROW(ring.drop_ref(*s), std::logic_error);  // a double release
  expect_counts(ring, 2, 0, 0);
}

TEST(SlotRing, FreeIfUnreferenced) {
  SlotRing ring(3);
  auto a = ring.loan(), b = ring.loan();
  ASSERT_TRUE(a && b);
  ring.commit(*a);
  ring.commit(*b);
  ring.add_ref(*b);
  expect_counts(ring, 1, 0, 2);

  ring.free_if_unreferenced(*a);  // READY, nobody holds it: back to FREE
  EXPECT_EQ(ring.state(*a), SlotState::Free);
  expect_counts(ring, 2, 0, 1);
  ring.free_if_unreferenced(*a);  // already FREE: nothing happens (no double push)
  expect_counts(ring, 2, 0, 1);
  ring.free_if_unreferenced(*b);  // referenced: stays READY
  EXPECT_EQ(ring.state(*b), SlotState::Ready);
  expect_counts(ring, 2, 0, 1);

  // Exactly two slots can be loaned now: a was pushed back once only.
  EXPECT_TRUE(ring.loan());
  EXPECT_TRUE(ring.loan());
  EXPECT_FALSE(ring.loan());
  expect_counts(ring, 0, 2, 1);
}

TEST(SlotRing, FreeIfUnreferencedLeavesWritingAlone) {
  SlotRing ring(1);
  auto s = ring.loan();
  ASSERT_TRUE(s);
  ring.free_if_unreferenced(*s);
  EXPECT_EQ(ring.state(*s), SlotState::Writing);
  EXPECT_FALSE(ring.loan());
  expect_counts(ring, 0, 1, 0);
}

TEST(SlotRing, ManyCyclesKeepTheInvariant) {
  // A producer that commits and a consumer that holds up to three frames.
  SlotRing ring(4);
  std::deque<uint32_t> held;
  uint32_t got = 0, dropped = 0;
  for (int i = 0; i < 200; ++i) {
    if (auto s = ring.loan()) {
      check_ring(ring);
      if (i % 7 == 3) {
        ring.abort(*s);
      } else {
        ring.commit(*s);
        ring.add_ref(*s);
        held.push_back(*s);
        ++got;
      }
    } else {
      ++dropped;
    }
    check_ring(ring);
    if (held.size() > 3 || i % 5 == 0) {
      while (!held.empty()) {
        EXPECT_TRUE(ring.drop_ref(held.front()));
        held.pop_front();
        check_ring(ring);
      }
    }
  }
  EXPECT_GT(got, 0u);
  for (uint32_t s : held) ring.drop_ref(s);
  expect_counts(ring, 4, 0, 0);
  EXPECT_TRUE(ring.unreferenced());
}

TEST(SlotRing, LoanWaitReturnsAtOnceWhenASlotIsFree) {
  SlotRing ring(1);
  auto s = ring.loan_wait(60s);  // would hang the test if it waited
  ASSERT_TRUE(s);
  expect_counts(ring, 0, 1, 0);
}

TEST(SlotRing, LoanWaitGivesUpAfterTheTimeout) {
  SlotRing ring(1);
  auto s = ring.loan();
  ASSERT_TRUE(s);
  auto fut = std::async(std::launch::async, [&] { return ring.loan_wait(20ms); });
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready) << "loan_wait ignored its timeout";
  EXPECT_FALSE(fut.get());
  expect_counts(ring, 0, 1, 0);
}

TEST(SlotRing, LoanWaitWakesWhenTheLastReferenceDrops) {
  SlotRing ring(2);
  auto a = ring.loan(), b = ring.loan();
  ASSERT_TRUE(a && b);
  ring.commit(*a);
  ring.commit(*b);
  ring.add_ref(*a);
  ring.add_ref(*b);
  ring.add_ref(*b);

  // The producer waits far longer than the test may take.
  auto fut = std::async(std::launch::async, [&] { return ring.loan_wait(60s); });
  // Not the last reference of b: the producer must keep waiting. (If it had
  // wrongly returned, the future would be ready long before this.)
  EXPECT_FALSE(ring.drop_ref(*b));
  EXPECT_EQ(fut.wait_for(50ms), std::future_status::timeout);

  EXPECT_TRUE(ring.drop_ref(*b));  // the consumer frees b
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready) << "the waiting producer was not woken";
  auto s = fut.get();
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, *b);
  EXPECT_EQ(ring.state(*s), SlotState::Writing);
  expect_counts(ring, 0, 1, 1);
}

TEST(SlotRing, InterruptWaitsWakesABlockedProducer) {
  SlotRing ring(1);
  auto a = ring.loan();
  ASSERT_TRUE(a);
  auto fut = std::async(std::launch::async, [&] { return ring.loan_wait(60s); });
  // The producer may not have started waiting yet; an interrupt only wakes a
  // wait already under way, so repeat it until the producer is out (bounded).
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (fut.wait_for(10ms) != std::future_status::ready &&
         std::chrono::steady_clock::now() < deadline)
    ring.interrupt_waits();
  ASSERT_EQ(fut.wait_for(0s), std::future_status::ready) << "interrupt_waits did not wake it";
  EXPECT_FALSE(fut.get());
  expect_counts(ring, 0, 1, 0);
}

TEST(SlotRing, InterruptIsStickyUntilResumed) {
  SlotRing ring(1);
  auto a = ring.loan();
  ASSERT_TRUE(a);
  ring.commit(*a);
  ring.add_ref(*a);
  // A stop() that races the producer into loan_wait must not leave it asleep.
  ring.interrupt_waits();
  auto early = std::async(std::launch::async, [&] { return ring.loan_wait(60s); });
  ASSERT_EQ(early.wait_for(5s), std::future_status::ready) << "an interrupted ring still waited";
  EXPECT_FALSE(early.get());

  ring.resume_waits();  // start(): waits block again until a slot comes free
  auto fut = std::async(std::launch::async, [&] { return ring.loan_wait(60s); });
  EXPECT_EQ(fut.wait_for(50ms), std::future_status::timeout);
  EXPECT_TRUE(ring.drop_ref(*a));
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(fut.get());
}

TEST(SlotRing, ProducerAndConsumerThreadsNeverLoseASlot) {
  // The producer loans and commits on its own thread; the consumer adds and
  // drops the references. At the end every slot is free again.
  SlotRing ring(4);
  constexpr int kFrames = 5000;
  boost::lockfree::spsc_queue<uint32_t> committed(8);
  std::atomic<bool> done{false};
  int produced = 0;
  std::thread producer([&] {
    for (int i = 0; i < kFrames; ++i) {
      if (auto s = ring.loan_wait(5s)) {
        ring.commit(*s);
        while (!committed.push(*s)) std::this_thread::yield();
        ++produced;
      }
    }
    done = true;
  });
  int consumed = 0;
  uint32_t s;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while ((!done || committed.read_available()) && std::chrono::steady_clock::now() < deadline) {
    if (committed.pop(s)) {
      ring.add_ref(s);
      EXPECT_TRUE(ring.drop_ref(s));
      ++consumed;
    } else {
      std::this_thread::yield();
    }
  }
  producer.join();
  EXPECT_EQ(produced, kFrames);
  EXPECT_EQ(consumed, produced);
  expect_counts(ring, 4, 0, 0);
}
