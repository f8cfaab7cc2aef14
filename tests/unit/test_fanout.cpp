// Fanout: the subscriber policies (every, latest, max_hold, window,
// from_latest), the latest cache and release checking, driven against a real
// SlotRing with no sockets. After every step the rig checks
//   free + writing + ready == slots, and
//   ring.refs(slot) == fanout.refs_on(gen, slot) for every slot
// (plus: a FREE slot holds no reference, a READY one at least one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <source_location>
#include <vector>

#include "daemon/fanout.hpp"
#include "daemon/slot_ring.hpp"

using framebroker::daemon::Fanout;
using framebroker::daemon::FrameRef;
using framebroker::daemon::RefCounter;
using framebroker::daemon::ReleaseResult;
using framebroker::daemon::SlotCounts;
using framebroker::daemon::SlotRing;
using framebroker::daemon::SlotState;
using framebroker::daemon::SubscriberCounters;
using framebroker::daemon::SubscriberMode;
using framebroker::daemon::SubscriberOptions;
using Id = Fanout::SubscriberId;

namespace {

constexpr uint32_t kGen = 1;

// Routes the fanout's references to a real ring (generation 1 only).
class RingRefs : public RefCounter {
 public:
  explicit RingRefs(SlotRing& ring) : ring_(ring) {}
  void add_ref(const FrameRef& f) override {
    EXPECT_EQ(f.gen, kGen);
    ring_.add_ref(f.slot);
    ++adds;
  }
  void drop_ref(const FrameRef& f) override {
    EXPECT_EQ(f.gen, kGen);
    ring_.drop_ref(f.slot);
    ++drops;
  }
  uint64_t adds = 0, drops = 0;

 private:
  SlotRing& ring_;
};

SubscriberOptions every(uint32_t max_hold = 0, bool from_latest = false) {
  return {SubscriberMode::Every, max_hold, 0, from_latest};
}
SubscriberOptions latest(uint32_t window = 0, bool from_latest = false) {
  return {SubscriberMode::Latest, 0, window, from_latest};
}

std::vector<uint64_t> seqs(const std::vector<FrameRef>& frames) {
  std::vector<uint64_t> out;
  for (const auto& f : frames) out.push_back(f.seq);
  return out;
}

bool same_counters(const SubscriberCounters& a, const SubscriberCounters& b) {
  return a.delivered == b.delivered && a.missed == b.missed && a.conflated == b.conflated &&
         a.held == b.held && a.queued == b.queued;
}

// A ring, its fanout, and a producer. Every operation checks the invariants.
struct Rig {
  using Loc = std::source_location;

  explicit Rig(uint32_t slots) : ring(slots), refs(ring), fan(refs, slots) { check(); }

  SlotRing ring;
  RingRefs refs;
  Fanout fan;
  uint64_t next_seq = 0;
  uint64_t dropped = 0;  // frames the producer found no FREE slot for

  void check(Loc loc = Loc::current()) const {
    SCOPED_TRACE(testing::Message() << "invariants checked at line " << loc.line());
    const SlotCounts c = ring.counts();
    EXPECT_EQ(c.free + c.writing + c.ready, ring.size())
        << "free " << c.free << " writing " << c.writing << " ready " << c.ready;
    for (uint32_t s = 0; s < ring.size(); ++s) {
      EXPECT_EQ(ring.refs(s), fan.refs_on(kGen, s)) << "slot " << s;
      if (ring.state(s) == SlotState::Free) {
        EXPECT_EQ(ring.refs(s), 0u) << "slot " << s;
      }
      if (ring.state(s) == SlotState::Ready) {
        EXPECT_GT(ring.refs(s), 0u) << "slot " << s << " is READY but nobody holds it (leak)";
      }
    }
  }

  // Loans, commits and publishes the next frame; nullopt (and a skipped seq)
  // when the ring has no FREE slot, like overflow `drop`.
  std::optional<FrameRef> produce(Loc loc = Loc::current()) {
    const uint64_t seq = next_seq++;
    auto slot = ring.loan();
    check(loc);
    if (!slot) {
      ++dropped;
      return std::nullopt;
    }
    ring.commit(*slot);
    const FrameRef f{kGen, *slot, seq};
    fan.publish(f);
    check(loc);
    return f;
  }
  FrameRef must_produce(Loc loc = Loc::current()) {
    auto f = produce(loc);
    EXPECT_TRUE(f) << "the ring ran out of slots (line " << loc.line() << ")";
    return f.value_or(FrameRef{});
  }
  std::vector<FrameRef> produce_n(int n, Loc loc = Loc::current()) {
    std::vector<FrameRef> out;
    for (int i = 0; i < n; ++i) out.push_back(must_produce(loc));
    return out;
  }

  SubscriberOptions subscribe(Id id, SubscriberOptions o, Loc loc = Loc::current()) {
    auto eff = fan.subscribe(id, o);
    check(loc);
    return eff;
  }
  void unsubscribe(Id id, Loc loc = Loc::current()) {
    fan.unsubscribe(id);
    check(loc);
  }
  void remove(Id id, Loc loc = Loc::current()) {
    fan.remove(id);
    check(loc);
  }
  std::vector<FrameRef> take(Id id, size_t limit = SIZE_MAX, Loc loc = Loc::current()) {
    auto v = fan.take_sendable(id, limit);
    check(loc);
    return v;
  }
  ReleaseResult release(Id id, const FrameRef& f, Loc loc = Loc::current()) {
    auto r = fan.release(id, f);
    check(loc);
    return r;
  }
  void release_all(Id id, const std::vector<FrameRef>& frames, Loc loc = Loc::current()) {
    for (const auto& f : frames)
      EXPECT_EQ(release(id, f, loc), ReleaseResult::Ok)
          << "seq " << f.seq << " line " << loc.line();
  }
  void clear_latest(Loc loc = Loc::current()) {
    fan.clear_latest();
    check(loc);
  }
  SubscriberCounters counters(Id id) const { return fan.counters(id); }
};

}  // namespace

// ---------------------------------------------------------------- every

TEST(FanoutEvery, GetsAllFramesInOrderWhileUnderMaxHold) {
  Rig rig(8);
  rig.subscribe(1, every());
  std::vector<uint64_t> got;
  for (int i = 0; i < 50; ++i) {
    const FrameRef f = rig.must_produce();
    auto sent = rig.take(1);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0], f);
    got.push_back(sent[0].seq);
    EXPECT_EQ(rig.release(1, sent[0]), ReleaseResult::Ok);
  }
  std::vector<uint64_t> want(50);
  for (uint64_t i = 0; i < 50; ++i) want[i] = i;
  EXPECT_EQ(got, want);
  const auto c = rig.counters(1);
  EXPECT_EQ(c.delivered, 50u);
  EXPECT_EQ(c.missed, 0u);
  EXPECT_EQ(c.conflated, 0u);
  EXPECT_EQ(c.held, 0u);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(rig.dropped, 0u);
}

TEST(FanoutEvery, BatchedFramesComeInSeqOrderAndReleaseInAnyOrder) {
  Rig rig(16);
  rig.subscribe(1, every(6));
  const auto frames = rig.produce_n(6);
  EXPECT_EQ(rig.counters(1).queued, 6u);
  const auto sent = rig.take(1);
  EXPECT_EQ(sent, frames);
  EXPECT_EQ(seqs(sent), (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(rig.counters(1).held, 6u);
  for (auto it = sent.rbegin(); it != sent.rend(); ++it)
    EXPECT_EQ(rig.release(1, *it), ReleaseResult::Ok);
  EXPECT_EQ(rig.counters(1).held, 0u);
  // Only the latest cache is left.
  const SlotCounts c = rig.ring.counts();
  EXPECT_EQ(c.ready, 1u);
  EXPECT_EQ(c.free, 15u);
}

TEST(FanoutEvery, TakeSendableHonoursTheLimit) {
  Rig rig(8);
  rig.subscribe(1, every(4));
  rig.produce_n(3);
  EXPECT_EQ(seqs(rig.take(1, 2)), (std::vector<uint64_t>{0, 1}));
  auto c = rig.counters(1);
  EXPECT_EQ(c.held, 2u);
  EXPECT_EQ(c.queued, 1u);
  EXPECT_EQ(c.delivered, 2u);
  EXPECT_EQ(seqs(rig.take(1, 2)), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(rig.take(1).empty());
  EXPECT_TRUE(rig.take(42).empty());  // unknown subscriber
}

TEST(FanoutEvery, BeyondMaxHoldFramesAreMissedAndTheNextOneShowsTheGap) {
  Rig rig(16);
  EXPECT_EQ(rig.subscribe(1, every(3)).max_hold, 3u);
  const auto frames = rig.produce_n(5);  // seq 0..4
  auto c = rig.counters(1);
  EXPECT_EQ(c.queued, 3u);
  EXPECT_EQ(c.missed, 2u);
  // The missed frames are not referenced by the subscriber; frame 3 is not
  // referenced at all (the cache holds frame 4).
  EXPECT_EQ(rig.ring.refs(frames[3].slot), 0u);
  EXPECT_EQ(rig.ring.state(frames[3].slot), SlotState::Free);
  EXPECT_EQ(rig.ring.refs(frames[4].slot), 1u);

  const auto first = rig.take(1);
  EXPECT_EQ(seqs(first), (std::vector<uint64_t>{0, 1, 2}));
  // Held frames count towards max_hold too.
  rig.must_produce();  // seq 5
  c = rig.counters(1);
  EXPECT_EQ(c.held, 3u);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(c.missed, 3u);

  EXPECT_EQ(rig.release(1, first[0]), ReleaseResult::Ok);
  rig.must_produce();  // seq 6: room again
  const auto next = rig.take(1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].seq, 6u);
  // The gap in seq (2 -> 6) is exactly what the subscriber missed.
  EXPECT_EQ(next[0].seq - first.back().seq - 1, rig.counters(1).missed);
  EXPECT_EQ(rig.counters(1).delivered, 4u);
}

TEST(FanoutEvery, DefaultMaxHoldIsSlotsMinusFourAtLeastOne) {
  for (uint32_t slots : {1u, 2u, 3u, 4u, 5u, 6u, 8u, 32u, 100u}) {
    SCOPED_TRACE(testing::Message() << slots << " slots");
    Rig rig(slots);
    const uint32_t want = slots > 4 ? slots - 4 : 1;
    const uint32_t cap = slots > 3 ? slots - 2 : 1;
    EXPECT_EQ(rig.fan.default_max_hold(), want);
    EXPECT_EQ(rig.fan.max_hold_cap(), cap);
    EXPECT_LE(want, cap);  // the default is never cut down by the cap
    EXPECT_EQ(rig.subscribe(1, every()).max_hold, want);
    EXPECT_EQ(rig.fan.options(1).max_hold, want);
    // An explicit one is kept up to the cap: 7 on 4 slots gives 2, on 32 gives 7.
    EXPECT_EQ(rig.subscribe(2, every(7)).max_hold, std::min(7u, cap));
    EXPECT_EQ(rig.fan.options(2).max_hold, std::min(7u, cap));
  }
}

TEST(FanoutEvery, MaxHoldAndWindowAreCappedAtSlotsMinusTwo) {
  struct Case {
    uint32_t slots, requested, want;
  };
  for (const Case& k : {Case{4, 7, 2}, Case{4, 4, 2}, Case{4, 2, 2}, Case{4, 1, 1}, Case{8, 8, 6},
                        Case{8, 100, 6}, Case{8, 6, 6}, Case{8, 5, 5}, Case{3, 3, 1}, Case{2, 2, 1},
                        Case{1, 5, 1}, Case{32, 31, 30}}) {
    SCOPED_TRACE(testing::Message() << k.slots << " slots, " << k.requested << " requested");
    Rig rig(k.slots);
    EXPECT_EQ(rig.subscribe(1, every(k.requested)).max_hold, k.want);
    EXPECT_EQ(rig.fan.options(1).max_hold, k.want);
    EXPECT_EQ(rig.subscribe(2, latest(k.requested)).window, k.want);
    EXPECT_EQ(rig.fan.options(2).window, k.want);
  }
}

// One every-subscriber that asked to hold the whole ring and never lets go
// still leaves a slot for the latest cache and one for the camera's next
// frame: the producer never finds the ring full, the subscriber misses.
TEST(FanoutEvery, OneSubscriberCannotTakeTheWholeRing) {
  for (uint32_t slots : {3u, 4u, 5u, 8u, 16u}) {
    for (bool takes : {true, false}) {
      SCOPED_TRACE(testing::Message() << slots << " slots, " << (takes ? "takes" : "never takes"));
      Rig rig(slots);
      const uint32_t cap = slots - 2;
      EXPECT_EQ(rig.subscribe(1, every(slots)).max_hold, cap);
      constexpr int kFrames = 100;
      for (int i = 0; i < kFrames; ++i) {
        ASSERT_TRUE(rig.produce()) << "frame " << i << " found the ring full";
        if (takes) rig.take(1);  // and never releases
      }
      EXPECT_EQ(rig.dropped, 0u);
      const auto c = rig.counters(1);
      EXPECT_EQ(c.held + c.queued, cap);
      EXPECT_EQ(c.held, takes ? cap : 0u);
      EXPECT_EQ(c.delivered, takes ? cap : 0u);
      EXPECT_EQ(c.missed, uint64_t(kFrames) - cap);
      // Its frames and the cache; one slot is always left for the camera.
      EXPECT_EQ(rig.ring.counts().ready, cap + 1);
      EXPECT_EQ(rig.ring.counts().free, 1u);
    }
  }
}

TEST(FanoutEvery, SmallerSlotsLowerAnExistingSubscribersMaxHold) {
  Rig rig(16);
  EXPECT_EQ(rig.subscribe(1, every(10)).max_hold, 10u);
  EXPECT_EQ(rig.subscribe(2, latest(12)).window, 12u);
  EXPECT_EQ(rig.subscribe(3, every(3)).max_hold, 3u);
  const auto held = rig.produce_n(3);
  EXPECT_EQ(rig.take(1), held);

  rig.fan.set_slots(8);  // cap 6
  EXPECT_EQ(rig.fan.options(1).max_hold, 6u);
  EXPECT_EQ(rig.fan.options(2).window, 6u);
  EXPECT_EQ(rig.fan.options(3).max_hold, 3u);  // already under the cap
  EXPECT_EQ(rig.fan.options(1).mode, SubscriberMode::Every);
  EXPECT_EQ(rig.fan.options(2).mode, SubscriberMode::Latest);

  rig.fan.set_slots(4);  // cap 2
  EXPECT_EQ(rig.fan.options(1).max_hold, 2u);
  EXPECT_EQ(rig.fan.options(2).window, 2u);
  EXPECT_EQ(rig.fan.options(3).max_hold, 2u);

  // Subscriber 1 already holds 3 > 2: the new cap applies to the next frames.
  rig.must_produce();
  EXPECT_EQ(rig.counters(1).missed, 1u);
  EXPECT_EQ(rig.counters(1).queued, 0u);
  rig.release_all(1, {held[0], held[1]});
  const FrameRef f = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{f});
  EXPECT_EQ(rig.counters(1).held, 2u);
  rig.must_produce();  // full again at 2
  EXPECT_EQ(rig.counters(1).missed, 2u);
  rig.release_all(1, {held[2], f});
  for (Id id : {2, 3}) rig.release_all(id, rig.take(id));
  for (Id id : {1, 2, 3}) rig.remove(id);
  EXPECT_EQ(rig.ring.counts().ready, 1u);  // the cache
}

TEST(FanoutEvery, DefaultMaxHoldLimitsQueueing) {
  Rig rig(8);  // default max_hold 4
  rig.subscribe(1, every());
  rig.produce_n(6);
  auto c = rig.counters(1);
  EXPECT_EQ(c.queued, 4u);
  EXPECT_EQ(c.missed, 2u);
}

TEST(FanoutEvery, DefaultMaxHoldFollowsSetSlots) {
  Rig rig(8);
  rig.fan.set_slots(20);
  EXPECT_EQ(rig.subscribe(1, every()).max_hold, 16u);
  rig.fan.set_slots(3);
  EXPECT_EQ(rig.subscribe(2, every()).max_hold, 1u);
}

TEST(FanoutEvery, StuckSubscriberNeverMakesAnotherMissWhileFreeSlotsExist) {
  Rig rig(8);                 // default max_hold 4: stuck 4 + cache 1 + the healthy one 1 <= 8
  rig.subscribe(1, every());  // stuck: takes, never releases
  rig.subscribe(2, every());  // keeps up
  std::vector<uint64_t> got;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(rig.produce()) << "frame " << i << " found no free slot";
    rig.take(1);
    for (const auto& f : rig.take(2)) {
      got.push_back(f.seq);
      EXPECT_EQ(rig.release(2, f), ReleaseResult::Ok);
    }
  }
  EXPECT_EQ(rig.dropped, 0u);
  const auto healthy = rig.counters(2);
  EXPECT_EQ(healthy.missed, 0u);
  EXPECT_EQ(healthy.delivered, 200u);
  ASSERT_EQ(got.size(), 200u);
  for (uint64_t i = 0; i < 200; ++i) EXPECT_EQ(got[i], i);
  const auto stuck = rig.counters(1);
  EXPECT_EQ(stuck.held, 4u);
  EXPECT_EQ(stuck.missed, 196u);
  // The stuck one takes 4 slots, the cache 1; the rest is free.
  EXPECT_EQ(rig.ring.counts().ready, 5u);
  EXPECT_EQ(rig.ring.counts().free, 3u);
}

TEST(FanoutEvery, SubscriberThatNeverTakesIsBoundedToo) {
  Rig rig(8);
  rig.subscribe(1, every());  // never calls take_sendable
  rig.subscribe(2, every());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(rig.produce());
    rig.release_all(2, rig.take(2));
  }
  EXPECT_EQ(rig.counters(1).queued, 4u);
  EXPECT_EQ(rig.counters(1).missed, 46u);
  EXPECT_EQ(rig.counters(2).missed, 0u);
}

// ---------------------------------------------------------------- latest

TEST(FanoutLatest, WindowOneGetsTheNewestOnReleaseAndCountsConflated) {
  Rig rig(8);
  EXPECT_EQ(rig.subscribe(1, latest()).window, 1u);
  const FrameRef f0 = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{f0});

  rig.must_produce();  // 1
  rig.must_produce();  // 2
  const FrameRef f3 = rig.must_produce();
  auto c = rig.counters(1);
  EXPECT_EQ(c.held, 1u);
  EXPECT_EQ(c.queued, 0u);  // at most `window` in flight
  // Frames 1 and 2 are not kept for the viewer.
  EXPECT_EQ(rig.ring.counts().ready, 2u);  // f0 (held) and f3 (cache)

  EXPECT_EQ(rig.release(1, f0), ReleaseResult::Ok);
  c = rig.counters(1);
  EXPECT_EQ(c.queued, 1u);
  EXPECT_EQ(c.conflated, 2u);  // frames 1 and 2
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{f3});

  // Nothing new: a release sends nothing and conflates nothing.
  EXPECT_EQ(rig.release(1, f3), ReleaseResult::Ok);
  c = rig.counters(1);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(c.conflated, 2u);

  // With nothing in flight the next frame goes straight out.
  const FrameRef f4 = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{f4});
  c = rig.counters(1);
  EXPECT_EQ(c.delivered, 3u);
  EXPECT_EQ(c.conflated, 2u);
  EXPECT_EQ(c.missed, 0u);
}

TEST(FanoutLatest, WindowTwo) {
  Rig rig(8);
  EXPECT_EQ(rig.subscribe(1, latest(2)).window, 2u);
  const auto first = rig.produce_n(2);  // both fit the window
  EXPECT_EQ(rig.counters(1).queued, 2u);
  rig.produce_n(2);  // 2, 3: skipped for now
  const FrameRef f4 = rig.must_produce();
  EXPECT_EQ(rig.counters(1).queued, 2u);
  EXPECT_EQ(rig.take(1), first);

  EXPECT_EQ(rig.release(1, first[0]), ReleaseResult::Ok);
  auto c = rig.counters(1);
  EXPECT_EQ(c.held, 1u);
  EXPECT_EQ(c.queued, 1u);
  EXPECT_EQ(c.conflated, 2u);  // 2 and 3

  EXPECT_EQ(rig.release(1, first[1]), ReleaseResult::Ok);  // nothing newer than f4
  c = rig.counters(1);
  EXPECT_EQ(c.held, 0u);
  EXPECT_EQ(c.queued, 1u);
  EXPECT_EQ(c.conflated, 2u);

  const FrameRef f5 = rig.must_produce();  // room in the window: queued at once
  EXPECT_EQ(rig.take(1), (std::vector<FrameRef>{f4, f5}));
  c = rig.counters(1);
  EXPECT_EQ(c.delivered, 4u);
  EXPECT_EQ(c.held, 2u);
  EXPECT_LE(c.held + c.queued, 2u);
}

TEST(FanoutLatest, NeverMoreThanWindowInFlight) {
  for (uint32_t window : {1u, 2u, 3u}) {
    SCOPED_TRACE(testing::Message() << "window " << window);
    Rig rig(12);
    rig.subscribe(1, latest(window));
    std::vector<FrameRef> held;
    for (int i = 0; i < 60; ++i) {
      ASSERT_TRUE(rig.produce());
      if (i % 3 == 0) {
        for (const auto& f : rig.take(1)) held.push_back(f);
      }
      if (i % 4 == 0 && !held.empty()) {
        EXPECT_EQ(rig.release(1, held.front()), ReleaseResult::Ok);
        held.erase(held.begin());
      }
      const auto c = rig.counters(1);
      EXPECT_LE(c.held + c.queued, window);
      // Every frame is delivered, conflated, or still to come.
      EXPECT_LE(c.delivered + c.queued + c.conflated, uint64_t(i + 1));
    }
    EXPECT_EQ(rig.counters(1).missed, 0u);
  }
}

TEST(FanoutLatest, StuckLatestSubscriberCostsNobodyAnything) {
  Rig rig(4);                  // every's default max_hold is 1 here
  rig.subscribe(1, latest());  // a viewer that hangs on to one frame
  rig.subscribe(2, every());   // a saver that keeps up
  const FrameRef f0 = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{f0});
  rig.release_all(2, rig.take(2));
  FrameRef last{};
  for (int i = 1; i < 100; ++i) {
    auto f = rig.produce();
    ASSERT_TRUE(f) << "frame " << i << " found no free slot";
    last = *f;
    const auto sent = rig.take(2);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].seq, uint64_t(i));
    rig.release_all(2, sent);
  }
  EXPECT_EQ(rig.dropped, 0u);
  EXPECT_EQ(rig.counters(2).missed, 0u);
  EXPECT_EQ(rig.counters(2).delivered, 100u);
  const auto v = rig.counters(1);
  EXPECT_EQ(v.held, 1u);
  EXPECT_EQ(v.queued, 0u);
  EXPECT_EQ(v.missed, 0u);
  EXPECT_EQ(rig.ring.counts().ready, 2u);  // the viewer's frame and the cache

  // When it lets go it gets the newest frame; everything between is conflated.
  EXPECT_EQ(rig.release(1, f0), ReleaseResult::Ok);
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{last});
  EXPECT_EQ(rig.counters(1).conflated, 98u);
}

// A viewer with window 1 holds A when B arrives (newer pending), unsubscribes
// while still holding A, and comes back with window 2. C is queued at once;
// releasing A must not queue C a second time.
TEST(FanoutLatest, ResubscribeWhileHoldingNeverQueuesAFrameTwice) {
  Rig rig(8);
  rig.subscribe(1, latest(1));
  const FrameRef a = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{a});
  rig.must_produce();  // B: the window is full, it waits as "newer pending"
  EXPECT_EQ(rig.counters(1).queued, 0u);
  rig.unsubscribe(1);
  EXPECT_TRUE(rig.fan.has(1));  // still holding A
  EXPECT_FALSE(rig.fan.active(1));
  EXPECT_EQ(rig.counters(1).held, 1u);

  EXPECT_EQ(rig.subscribe(1, latest(2)).window, 2u);
  const FrameRef c = rig.must_produce();
  auto k = rig.counters(1);
  EXPECT_EQ(k.held, 1u);
  EXPECT_EQ(k.queued, 1u);  // C, at once: there is room in the window

  EXPECT_EQ(rig.release(1, a), ReleaseResult::Ok);
  k = rig.counters(1);
  EXPECT_EQ(k.held, 0u);
  EXPECT_EQ(k.queued, 1u) << "C was queued twice";
  EXPECT_EQ(rig.ring.refs(c.slot), 2u);  // the viewer's queue and the cache
  ASSERT_EQ(rig.fan.holders(kGen, c.slot).size(), 1u);
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{c});
  EXPECT_EQ(rig.release(1, c), ReleaseResult::Ok);
  EXPECT_EQ(rig.release(1, c), ReleaseResult::NotHeld);
  k = rig.counters(1);
  EXPECT_EQ(k.held + k.queued, 0u);
  EXPECT_EQ(k.delivered, 2u);  // A and C
  EXPECT_TRUE(rig.take(1).empty());

  // Everything released: only the cache references a slot (rig.check()
  // already compared ring.refs with fanout.refs_on for every slot).
  rig.check();
  for (uint32_t s = 0; s < rig.ring.size(); ++s)
    EXPECT_EQ(rig.ring.refs(s), s == c.slot ? 1u : 0u) << "slot " << s;
  EXPECT_EQ(rig.ring.counts().ready, 1u);
  EXPECT_EQ(rig.ring.counts().free, 7u);
}

// A re-subscribe with from_latest while the viewer still holds the cached
// frame does not queue that frame to it again.
TEST(FanoutLatest, ResubscribeFromLatestSkipsTheFrameItHolds) {
  Rig rig(8);
  rig.subscribe(1, latest(1));
  const FrameRef a = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{a});
  rig.unsubscribe(1);
  rig.subscribe(1, latest(2, /*from_latest=*/true));
  EXPECT_EQ(rig.counters(1).queued, 0u);
  EXPECT_EQ(rig.ring.refs(a.slot), 2u);  // its hold and the cache
  EXPECT_EQ(rig.release(1, a), ReleaseResult::Ok);
  EXPECT_TRUE(rig.take(1).empty());
  EXPECT_EQ(rig.ring.refs(a.slot), 1u);
}

TEST(FanoutLatest, ClearedCacheConflatesEverythingUnseen) {
  Rig rig(8);
  rig.subscribe(1, latest());
  const FrameRef f0 = rig.must_produce();
  rig.take(1);
  rig.produce_n(2);
  rig.clear_latest();  // e.g. the generation changed
  EXPECT_FALSE(rig.fan.latest());
  EXPECT_EQ(rig.release(1, f0), ReleaseResult::Ok);
  const auto c = rig.counters(1);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(c.conflated, 2u);
  EXPECT_EQ(rig.ring.counts().free, 8u);
}

// ---------------------------------------------------------------- latest cache, from_latest

TEST(FanoutCache, HoldsExactlyOneRefAndMovesOnEachPublish) {
  Rig rig(2);  // no subscribers: only the cache keeps a slot, forever
  EXPECT_FALSE(rig.fan.latest());
  std::optional<FrameRef> prev;
  for (int i = 0; i < 20; ++i) {
    const FrameRef f = rig.must_produce();
    ASSERT_TRUE(rig.fan.latest());
    EXPECT_EQ(*rig.fan.latest(), f);
    EXPECT_EQ(rig.ring.refs(f.slot), 1u);
    EXPECT_EQ(rig.fan.refs_on(kGen, f.slot), 1u);
    EXPECT_EQ(rig.ring.counts().ready, 1u);
    EXPECT_EQ(rig.ring.counts().free, 1u);
    if (prev) {
      EXPECT_NE(prev->slot, f.slot);
      EXPECT_EQ(rig.ring.state(prev->slot), SlotState::Free);
    }
    prev = f;
  }
  EXPECT_EQ(rig.refs.adds, 20u);
  EXPECT_EQ(rig.refs.drops, 19u);
  rig.clear_latest();
  EXPECT_FALSE(rig.fan.latest());
  EXPECT_EQ(rig.ring.counts().free, 2u);
  EXPECT_TRUE(rig.ring.unreferenced());
  rig.clear_latest();  // twice is harmless
}

TEST(FanoutCache, SharesTheSlotWithHolders) {
  Rig rig(8);
  rig.subscribe(1, every());
  const FrameRef f0 = rig.must_produce();
  rig.take(1);
  EXPECT_EQ(rig.ring.refs(f0.slot), 2u);  // the subscriber and the cache
  rig.must_produce();
  EXPECT_EQ(rig.ring.refs(f0.slot), 1u);  // the cache moved on
  EXPECT_EQ(rig.release(1, f0), ReleaseResult::Ok);
  EXPECT_EQ(rig.ring.state(f0.slot), SlotState::Free);
}

TEST(FanoutCache, SeveralSubscribersShareOneFrame) {
  Rig rig(8);
  rig.subscribe(1, every());
  rig.subscribe(2, every());
  rig.subscribe(3, latest());
  const FrameRef f = rig.must_produce();
  EXPECT_EQ(rig.ring.refs(f.slot), 4u);
  std::vector<Id> ids;
  for (const auto& h : rig.fan.holders(kGen, f.slot)) {
    EXPECT_TRUE(h.queued);  // not sent yet
    ids.push_back(h.subscriber);
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<Id>{1, 2, 3}));
  rig.take(1);
  for (const auto& h : rig.fan.holders(kGen, f.slot)) EXPECT_EQ(h.queued, h.subscriber != 1);
  EXPECT_EQ(rig.fan.counters(1).last_seq, int64_t(f.seq));
  EXPECT_EQ(rig.fan.counters(2).last_seq, -1);
  rig.release_all(1, {f});
  for (Id id : {2, 3}) rig.release_all(id, rig.take(id));
  EXPECT_EQ(rig.ring.refs(f.slot), 1u);
  EXPECT_TRUE(rig.fan.holders(kGen, f.slot).empty());
}

TEST(FanoutFromLatest, DeliversTheCachedFrameAtSubscribe) {
  Rig rig(8);
  const auto frames = rig.produce_n(3);  // nobody listens
  EXPECT_EQ(rig.ring.counts().ready, 1u);

  rig.subscribe(1, every(0, /*from_latest=*/true));
  EXPECT_EQ(rig.counters(1).queued, 1u);
  EXPECT_EQ(rig.ring.refs(frames[2].slot), 2u);
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{frames[2]});
  const FrameRef f3 = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{f3});

  rig.subscribe(2, latest(0, /*from_latest=*/true));
  EXPECT_EQ(rig.take(2), std::vector<FrameRef>{f3});

  rig.subscribe(3, every());  // without from_latest: only new frames
  rig.subscribe(4, latest());
  EXPECT_TRUE(rig.take(3).empty());
  EXPECT_TRUE(rig.take(4).empty());
}

TEST(FanoutFromLatest, NothingCachedNothingQueued) {
  Rig rig(4);
  rig.subscribe(1, every(0, true));
  rig.subscribe(2, latest(0, true));
  EXPECT_EQ(rig.counters(1).queued, 0u);
  EXPECT_EQ(rig.counters(2).queued, 0u);
  EXPECT_TRUE(rig.ring.unreferenced());
}

// ---------------------------------------------------------------- release checking

TEST(FanoutRelease, MistakesAreNotHeldAndChangeNoCount) {
  Rig rig(8);
  rig.subscribe(1, every());
  rig.subscribe(2, every());
  rig.subscribe(3, every());
  const auto f = rig.produce_n(2);
  EXPECT_EQ(rig.take(1), f);             // 1 holds f0, f1
  EXPECT_EQ(rig.take(2, 1).size(), 1u);  // 2 holds f0, f1 is only queued
  // 3 holds nothing (both queued)

  const auto snapshot = [&] {
    std::vector<uint32_t> refs;
    for (uint32_t s = 0; s < rig.ring.size(); ++s) refs.push_back(rig.ring.refs(s));
    return refs;
  };
  const auto refs_before = snapshot();
  const auto c1 = rig.counters(1), c2 = rig.counters(2), c3 = rig.counters(3);
  const auto drops_before = rig.refs.drops;

  const std::vector<std::pair<Id, FrameRef>> wrong = {
      {1, {kGen, f[0].slot, f[0].seq + 1}},  // wrong seq
      {1, {kGen, f[0].slot, f[1].seq}},      // wrong seq (another frame's)
      {1, {kGen + 1, f[0].slot, f[0].seq}},  // wrong generation
      {1, {kGen, 7, 0}},                     // a slot nobody holds
      {2, f[1]},                             // queued, never delivered
      {3, f[0]},                             // another client's frame
      {99, f[0]},                            // unknown subscriber
  };
  for (const auto& [id, ref] : wrong) {
    SCOPED_TRACE(testing::Message() << "subscriber " << id << " slot " << ref.slot << " seq "
                                    << ref.seq << " gen " << ref.gen);
    EXPECT_EQ(rig.release(id, ref), ReleaseResult::NotHeld);
    EXPECT_EQ(snapshot(), refs_before);
    EXPECT_TRUE(same_counters(rig.counters(1), c1));
    EXPECT_TRUE(same_counters(rig.counters(2), c2));
    EXPECT_TRUE(same_counters(rig.counters(3), c3));
    EXPECT_EQ(rig.refs.drops, drops_before);
  }

  // The right one works once; the second time it is a double release.
  EXPECT_EQ(rig.release(1, f[0]), ReleaseResult::Ok);
  const auto refs_after = snapshot();
  const auto c1_after = rig.counters(1);
  EXPECT_EQ(c1_after.held, 1u);
  EXPECT_EQ(rig.release(1, f[0]), ReleaseResult::NotHeld);
  EXPECT_EQ(snapshot(), refs_after);
  EXPECT_TRUE(same_counters(rig.counters(1), c1_after));
}

// ---------------------------------------------------------------- unsubscribe, remove

TEST(FanoutUnsubscribe, DropsQueuedKeepsHeldUntilReleased) {
  Rig rig(8);
  rig.subscribe(1, every());
  const auto f = rig.produce_n(3);
  EXPECT_EQ(rig.take(1, 1), std::vector<FrameRef>{f[0]});  // f1, f2 stay queued
  rig.unsubscribe(1);
  EXPECT_TRUE(rig.fan.has(1));
  EXPECT_FALSE(rig.fan.active(1));
  auto c = rig.counters(1);
  EXPECT_EQ(c.held, 1u);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(rig.ring.refs(f[1].slot), 0u);  // its queued frame is let go
  EXPECT_EQ(rig.ring.refs(f[2].slot), 1u);  // only the cache
  EXPECT_EQ(rig.ring.refs(f[0].slot), 1u);  // the held one stays

  rig.must_produce();  // not offered any more
  c = rig.counters(1);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(c.missed, 0u);
  EXPECT_TRUE(rig.take(1).empty());
  EXPECT_EQ(rig.release(1, f[1]), ReleaseResult::NotHeld);  // was never delivered

  EXPECT_EQ(rig.release(1, f[0]), ReleaseResult::Ok);  // the last hold: gone
  EXPECT_FALSE(rig.fan.has(1));
  EXPECT_EQ(rig.ring.counts().ready, 1u);
}

TEST(FanoutUnsubscribe, WithNothingHeldIsGoneAtOnce) {
  Rig rig(4);
  rig.subscribe(1, latest());
  rig.must_produce();  // queued
  rig.unsubscribe(1);
  EXPECT_FALSE(rig.fan.has(1));
  EXPECT_FALSE(rig.fan.active(1));
  rig.unsubscribe(1);  // unknown: harmless
  rig.unsubscribe(77);
}

TEST(FanoutUnsubscribe, ResubscribeReactivates) {
  Rig rig(8);
  rig.subscribe(1, every());
  const FrameRef f0 = rig.must_produce();
  rig.take(1);
  rig.unsubscribe(1);
  rig.must_produce();  // not for 1
  rig.subscribe(1, every());
  EXPECT_TRUE(rig.fan.active(1));
  const FrameRef f2 = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{f2});
  EXPECT_EQ(rig.release(1, f0), ReleaseResult::Ok);
  EXPECT_EQ(rig.release(1, f2), ReleaseResult::Ok);
  EXPECT_TRUE(rig.fan.has(1));  // still subscribed
}

// A client unsubscribes while it holds the newest frame, then subscribes again
// with from_latest before releasing it (the broker re-activates the same
// subscriber id). The cached frame is the one it already holds.
TEST(FanoutUnsubscribe, ResubscribeFromLatestWhileHoldingTheCachedFrame) {
  Rig rig(8);
  rig.subscribe(1, every());
  const FrameRef f0 = rig.must_produce();
  EXPECT_EQ(rig.take(1), std::vector<FrameRef>{f0});
  rig.unsubscribe(1);
  EXPECT_TRUE(rig.fan.has(1));
  rig.subscribe(1, every(0, /*from_latest=*/true));
  // It already holds the cached frame: it is not queued to it again.
  EXPECT_EQ(rig.counters(1).queued, 0u);
  EXPECT_TRUE(rig.take(1).empty());
  EXPECT_EQ(rig.release(1, f0), ReleaseResult::Ok);
  EXPECT_EQ(rig.release(1, f0), ReleaseResult::NotHeld);
  rig.remove(1);
  rig.clear_latest();
  EXPECT_TRUE(rig.ring.unreferenced());
  EXPECT_EQ(rig.ring.counts().free, 8u);
}

TEST(FanoutRemove, DropsEverything) {
  Rig rig(8);
  rig.subscribe(1, every());
  rig.subscribe(2, latest());
  const auto f = rig.produce_n(3);
  EXPECT_EQ(rig.take(1, 2).size(), 2u);  // held 2, queued 1
  EXPECT_EQ(rig.take(2).size(), 1u);
  rig.remove(1);
  EXPECT_FALSE(rig.fan.has(1));
  EXPECT_EQ(rig.counters(1).held, 0u);
  EXPECT_EQ(rig.release(1, f[0]), ReleaseResult::NotHeld);
  rig.remove(2);
  EXPECT_FALSE(rig.fan.has(2));
  EXPECT_TRUE(rig.fan.subscriber_ids().empty());
  const SlotCounts c = rig.ring.counts();
  EXPECT_EQ(c.ready, 1u);  // the cache
  EXPECT_EQ(c.free, 7u);
  rig.remove(1);  // twice, and unknown ids: harmless
  rig.remove(12345);
}

TEST(FanoutRemove, AlsoDropsAnUnsubscribedSubscribersHolds) {
  Rig rig(4);
  rig.subscribe(1, every());
  rig.must_produce();
  rig.take(1);
  rig.unsubscribe(1);
  rig.remove(1);
  EXPECT_FALSE(rig.fan.has(1));
  EXPECT_EQ(rig.ring.counts().ready, 1u);
}

TEST(Fanout, DestructorReleasesEveryReference) {
  SlotRing ring(8);
  {
    RingRefs refs(ring);
    Fanout fan(refs, 8);
    fan.subscribe(1, every());
    fan.subscribe(2, latest(2));
    fan.subscribe(3, every());
    for (uint64_t seq = 0; seq < 3; ++seq) {
      auto s = ring.loan();
      ASSERT_TRUE(s);
      ring.commit(*s);
      fan.publish({kGen, *s, seq});
    }
    fan.take_sendable(1, 1);
    fan.take_sendable(2);
    fan.take_sendable(3);
    fan.unsubscribe(3);  // inactive, still holding
    EXPECT_FALSE(ring.unreferenced());
  }
  EXPECT_TRUE(ring.unreferenced());
  EXPECT_EQ(ring.counts().free, 8u);
}

TEST(Fanout, SubscriberIdsAndOptions) {
  Rig rig(10);
  rig.subscribe(5, every(3));
  rig.subscribe(2, latest(2, true));
  EXPECT_EQ(rig.fan.subscriber_ids(), (std::vector<Id>{2, 5}));
  EXPECT_EQ(rig.fan.options(5).mode, SubscriberMode::Every);
  EXPECT_EQ(rig.fan.options(5).max_hold, 3u);
  EXPECT_EQ(rig.fan.options(2).mode, SubscriberMode::Latest);
  EXPECT_EQ(rig.fan.options(2).window, 2u);
  EXPECT_TRUE(rig.fan.options(2).from_latest);
  EXPECT_TRUE(same_counters(rig.counters(9), SubscriberCounters{}));
}

TEST(Fanout, MixedTrafficKeepsTheInvariants) {
  // A deterministic mix of every and latest subscribers that take, release,
  // unsubscribe and come back, on a small ring where the producer sometimes
  // finds it full.
  Rig rig(6);
  rig.subscribe(1, every(2));
  rig.subscribe(2, latest());
  rig.subscribe(3, every());
  std::vector<std::vector<FrameRef>> held(4);
  uint64_t lcg = 12345;
  auto rnd = [&](uint64_t n) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (lcg >> 33) % n;
  };
  for (int step = 0; step < 2000; ++step) {
    const Id id = 1 + rnd(3);
    switch (rnd(6)) {
      case 0:
      case 1:
        rig.produce();
        break;
      case 2:
        for (const auto& f : rig.take(id, 1 + rnd(3))) held[id].push_back(f);
        break;
      case 3:
        if (!held[id].empty()) {
          const size_t i = rnd(held[id].size());
          EXPECT_EQ(rig.release(id, held[id][i]), ReleaseResult::Ok);
          held[id].erase(held[id].begin() + long(i));
        }
        break;
      case 4:
        if (rnd(10) == 0) {
          rig.unsubscribe(id);
          if (!rig.fan.has(id)) held[id].clear();
        } else if (!rig.fan.active(id)) {
          rig.subscribe(id, id == 2 ? latest() : every(id == 1 ? 2 : 0));
        }
        break;
      case 5:
        if (rnd(20) == 0) {
          rig.remove(id);
          held[id].clear();
          rig.subscribe(id, id == 2 ? latest() : every(id == 1 ? 2 : 0));
        }
        break;
    }
    if (HasFailure()) break;
  }
  for (Id id : {1, 2, 3}) rig.remove(id);
  rig.clear_latest();
  EXPECT_TRUE(rig.ring.unreferenced());
  EXPECT_EQ(rig.ring.counts().free, 6u);
}

TEST(FanoutEvery, ARingThatGrowsBackRestoresWhatWasAskedFor) {
  Rig rig(16);
  rig.subscribe(1, every(10));
  rig.subscribe(2, every());  // the default: slots - 4
  rig.fan.set_slots(8);
  EXPECT_EQ(rig.fan.options(1).max_hold, 6u);
  EXPECT_EQ(rig.fan.options(2).max_hold, 4u);  // the default of 8 slots, not 12 clipped
  rig.fan.set_slots(16);
  EXPECT_EQ(rig.fan.options(1).max_hold, 10u);
  EXPECT_EQ(rig.fan.options(2).max_hold, 12u);
}

// Sequence events: each goes out after the frames before its seq and before any later one,
// whatever was queued when it came; a late joiner's start goes first; an inactive subscriber
// gets none.
TEST(FanoutMessages, AMessageWaitsForTheFramesBeforeItsSeq) {
  Rig r(16);
  r.subscribe(1, every(8));
  r.produce_n(2);  // seqs 0, 1 queued
  auto start = std::make_shared<const std::vector<uint8_t>>(std::vector<uint8_t>{1});
  r.fan.queue_message(start, 2);
  r.produce_n(2);  // seqs 2, 3
  EXPECT_EQ(r.fan.take_message(1), nullptr) << "the start overtook seqs 0 and 1";
  EXPECT_EQ(r.fan.take_next(1)->seq, 0u);
  EXPECT_EQ(r.fan.take_message(1), nullptr);
  EXPECT_EQ(r.fan.take_next(1)->seq, 1u);
  EXPECT_TRUE(r.fan.has_messages(1));
  EXPECT_EQ(r.fan.take_message(1), start);
  EXPECT_FALSE(r.fan.has_messages(1));
  EXPECT_EQ(r.fan.take_next(1)->seq, 2u);
}

TEST(FanoutMessages, AMessageWhoseFramesWereLostGoesWhenNothingEarlierIsQueued) {
  Rig r(16);
  r.subscribe(1, every(8));
  auto finished = std::make_shared<const std::vector<uint8_t>>(std::vector<uint8_t>{2});
  r.fan.queue_message(finished, 5);  // seqs up to 4 were lost or already sent
  EXPECT_EQ(r.fan.take_message(1), finished);
}

TEST(FanoutMessages, ALateJoinersStartGoesFirstAndTheUnsubscribedGetNone) {
  Rig r(16);
  r.produce_n(3);
  r.subscribe(1, every(8, /*from_latest=*/true));
  r.subscribe(2, every(8));
  r.fan.unsubscribe(2);
  auto start = std::make_shared<const std::vector<uint8_t>>(std::vector<uint8_t>{1});
  r.fan.queue_message_to(1, start, 0);
  r.fan.queue_message(start, 3);
  EXPECT_EQ(r.fan.take_message(1), start);  // before the cached frame (seq 2)
  EXPECT_EQ(r.fan.take_next(1)->seq, 2u);
  EXPECT_EQ(r.fan.take_message(1), start);
  EXPECT_FALSE(r.fan.has_messages(2));
}

// ---------------------------------------------------------------- generations

namespace {

// Counts references per (gen, slot), any generation.
class CountingRefs : public RefCounter {
 public:
  void add_ref(const FrameRef& f) override { ++refs[{f.gen, f.slot}]; }
  void drop_ref(const FrameRef& f) override {
    auto& n = refs[{f.gen, f.slot}];
    EXPECT_GT(n, 0u) << "gen " << f.gen << " slot " << f.slot << " dropped below zero";
    --n;
  }
  uint32_t on(uint32_t gen, uint32_t slot) const {
    auto it = refs.find({gen, slot});
    return it == refs.end() ? 0 : it->second;
  }
  uint32_t total() const {
    uint32_t n = 0;
    for (const auto& [k, v] : refs) n += v;
    return n;
  }
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> refs;
};

}  // namespace

// A subscriber may hold frames of the old generation and the new one at the same time: each
// hold is checked and dropped against its own generation, and an emptied generation's table
// serves the next one.
TEST(FanoutGenerations, HoldsSpanTwoGenerations) {
  CountingRefs refs;
  Fanout fan(refs, 8);
  fan.subscribe(1, every(5));
  for (uint32_t slot = 0; slot < 3; ++slot) fan.publish({1, slot, slot});
  const auto old_frames = fan.take_sendable(1);
  ASSERT_EQ(old_frames.size(), 3u);

  fan.clear_latest();  // the generation changes: a smaller ring (max_hold 4)
  fan.set_slots(6);
  fan.publish({2, 0, 3});
  const auto f = fan.take_next(1);
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, (FrameRef{2, 0, 3}));
  EXPECT_EQ(fan.counters(1).held, 4u);
  // Slot 0 is held in both generations, each once.
  EXPECT_EQ(fan.refs_on(1, 0), 1u);
  EXPECT_EQ(fan.refs_on(2, 0), 2u);  // the hold and the cache
  ASSERT_EQ(fan.holders(1, 0).size(), 1u);
  ASSERT_EQ(fan.holders(2, 0).size(), 1u);
  EXPECT_FALSE(fan.holders(2, 0)[0].queued);
  EXPECT_TRUE(fan.holders(2, 1).empty());
  // A release names its generation: the other one's seq or gen is not held.
  EXPECT_EQ(fan.release(1, {2, 0, 0}), ReleaseResult::NotHeld);
  EXPECT_EQ(fan.release(1, {1, 0, 3}), ReleaseResult::NotHeld);
  EXPECT_EQ(fan.release(1, {3, 0, 3}), ReleaseResult::NotHeld);
  EXPECT_EQ(fan.release(1, {1, 0, 0}), ReleaseResult::Ok);
  EXPECT_EQ(fan.refs_on(1, 0), 0u);
  EXPECT_EQ(fan.refs_on(2, 0), 2u);
  EXPECT_EQ(fan.release(1, {1, 1, 1}), ReleaseResult::Ok);
  EXPECT_EQ(fan.release(1, {1, 2, 2}), ReleaseResult::Ok);
  EXPECT_EQ(fan.counters(1).held, 1u);

  // Generation 3, while generation 2's frame is still held; generation 1's table is reused.
  fan.clear_latest();
  fan.publish({3, 0, 4});
  fan.publish({3, 1, 5});
  EXPECT_EQ(fan.take_sendable(1).size(), 2u);
  EXPECT_EQ(fan.counters(1).held, 3u);
  EXPECT_EQ(fan.refs_on(2, 0), 1u);
  EXPECT_EQ(fan.refs_on(3, 0), 1u);
  EXPECT_EQ(fan.refs_on(3, 1), 2u);
  EXPECT_EQ(refs.total(), 4u);

  fan.remove(1);  // drops every hold, whatever its generation
  EXPECT_EQ(refs.on(2, 0), 0u);
  EXPECT_EQ(refs.on(3, 0), 0u);
  EXPECT_EQ(refs.total(), 1u);  // the cache
  fan.clear_latest();
  EXPECT_EQ(refs.total(), 0u);
}

// A slot past the slot count the fanout was told of (a frame of a generation it has not been
// told about yet) is held and released like any other.
TEST(FanoutGenerations, ASlotBeyondTheKnownCountIsHeldToo) {
  CountingRefs refs;
  Fanout fan(refs, 4);
  fan.subscribe(1, every(2));
  fan.publish({5, 40, 9});
  ASSERT_TRUE(fan.take_next(1));
  EXPECT_EQ(fan.refs_on(5, 40), 2u);
  EXPECT_EQ(fan.holders(5, 40).size(), 1u);
  EXPECT_EQ(fan.release(1, {5, 40, 9}), ReleaseResult::Ok);
  EXPECT_EQ(fan.release(1, {5, 40, 9}), ReleaseResult::NotHeld);
  EXPECT_EQ(fan.refs_on(5, 40), 1u);
  fan.clear_latest();
  EXPECT_EQ(refs.total(), 0u);
}

// The queue is a ring: frames keep their order as it wraps around many times, and when the ring
// grows (set_slots) while frames are queued across its end.
TEST(FanoutEvery, TheQueueKeepsSeqOrderAcrossWrapsAndGrowth) {
  CountingRefs refs;
  Fanout fan(refs, 6);
  EXPECT_EQ(fan.subscribe(1, every()).max_hold, 2u);
  uint64_t seq = 0, expect = 0;
  for (int round = 0; round < 200; ++round) {
    const int n = 1 + round % 2;
    for (int i = 0; i < n; ++i, ++seq) fan.publish({1, uint32_t(seq % 6), seq});
    while (auto f = fan.take_next(1)) {
      EXPECT_EQ(f->seq, expect++);
      EXPECT_EQ(fan.release(1, *f), ReleaseResult::Ok);
    }
  }
  // Always one frame left queued, so that the queue's start walks round its storage.
  fan.publish({1, uint32_t(seq % 6), seq}), ++seq;
  for (int i = 0; i < 7; ++i) {
    fan.publish({1, uint32_t(seq % 6), seq}), ++seq;
    const auto f = fan.take_next(1);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->seq, expect++);
    EXPECT_EQ(fan.release(1, *f), ReleaseResult::Ok);
  }
  fan.publish({1, uint32_t(seq % 6), seq}), ++seq;
  EXPECT_EQ(fan.counters(1).queued, 2u);
  // A new generation of 64 slots (max_hold 60): the queue's storage grows with two frames in it.
  fan.set_slots(64);
  for (uint32_t i = 0; i < 30; ++i, ++seq) fan.publish({2, i, seq});
  EXPECT_EQ(fan.counters(1).queued, 32u);
  const auto all = fan.take_sendable(1);
  ASSERT_EQ(all.size(), 32u);
  for (const auto& f : all) EXPECT_EQ(f.seq, expect++);
  for (const auto& f : all) EXPECT_EQ(fan.release(1, f), ReleaseResult::Ok);
  EXPECT_EQ(fan.counters(1).missed, 0u);
  fan.remove(1);
  fan.clear_latest();
  EXPECT_EQ(refs.total(), 0u);
}
