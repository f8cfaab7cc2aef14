// ReleaseLanes, the broker's side of a client's release lanes, driven the way a client (honest
// or not) would write them: through its own mapping of the memfd.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "release_lanes.hpp"

using framebroker::daemon::FrameRef;
using framebroker::daemon::ReleaseLanes;
namespace shm = framebroker::shm;

namespace {

// The client's view: its own writable mapping of the fd the broker would pass it.
struct ClientView {
  explicit ClientView(const ReleaseLanes& lanes) {
    void* p = ::mmap(nullptr, sizeof(shm::LanesLayout), PROT_READ | PROT_WRITE, MAP_SHARED,
                     lanes.fd(), 0);
    EXPECT_NE(p, MAP_FAILED);
    layout = static_cast<shm::LanesLayout*>(p);
  }
  ~ClientView() { ::munmap(layout, sizeof(shm::LanesLayout)); }
  void write(uint32_t lane, uint32_t epoch, FrameRef f) {
    auto& l = layout->lanes[lane - 1];
    const uint64_t h = l.head.load();
    l.records[h % shm::kLaneRecords] = {f.seq, f.gen, f.slot, epoch, 0};
    l.head.store(h + 1);
  }
  shm::ReleaseLane& lane(uint32_t n) { return layout->lanes[n - 1]; }
  shm::LanesLayout* layout;
};

// What a subscriber holds, as the fanout would answer.
struct Holds {
  std::set<uint64_t> seqs;
  bool operator()(const FrameRef& f) { return seqs.erase(f.seq) == 1; }
};

}  // namespace

TEST(ReleaseLanes, HeaderSaysWhatTheClientMustCheck) {
  ReleaseLanes lanes;
  ClientView c(lanes);
  EXPECT_EQ(std::memcmp(c.layout->header.magic, shm::kLanesMagic, 8), 0);
  EXPECT_EQ(c.layout->header.lanes, shm::kLanes);
  EXPECT_EQ(c.layout->header.records, shm::kLaneRecords);
  EXPECT_EQ(c.layout->header.lane_bytes, sizeof(shm::ReleaseLane));
}

TEST(ReleaseLanes, TheClientCannotResizeTheMemfd) {
  ReleaseLanes lanes;
  EXPECT_NE(::ftruncate(lanes.fd(), 0), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(lanes.fd(), 1 << 30), 0);
  EXPECT_EQ(errno, EPERM);
}

TEST(ReleaseLanes, RecordsOfTheCurrentEpochAreReleasedInOrder) {
  ReleaseLanes lanes;
  ClientView c(lanes);
  const auto a = lanes.assign(7);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->lane, 1u);
  EXPECT_EQ(a->epoch, 1u);
  EXPECT_EQ(lanes.assign(7)->lane, 1u);  // the same lane while it lasts
  Holds held{{10, 11, 12}};
  std::vector<uint64_t> order;
  for (uint64_t seq : {10, 11, 12}) c.write(a->lane, a->epoch, {1, uint32_t(seq % 4), seq});
  std::string problem;
  const auto n = lanes.drain(
      7,
      [&](const FrameRef& f) {
        order.push_back(f.seq);
        return held(f);
      },
      problem);
  ASSERT_TRUE(n) << problem;
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(order, (std::vector<uint64_t>{10, 11, 12}));
  EXPECT_EQ(c.lane(1).tail.load(), 3u);  // the client sees the room come back
  EXPECT_EQ(lanes.drain(7, held, problem), 0u);
}

TEST(ReleaseLanes, StaleRecordsOfAnEndedSubscriptionAreSkipped) {
  ReleaseLanes lanes;
  ClientView c(lanes);
  const auto first = *lanes.assign(1);
  lanes.unassign(1);
  c.write(first.lane, first.epoch, {1, 0, 5});  // written after the broker took the holds back
  const auto second = *lanes.assign(2);
  EXPECT_EQ(second.lane, first.lane);
  EXPECT_EQ(second.epoch, first.epoch + 1);
  c.write(second.lane, second.epoch, {1, 1, 9});
  Holds held{{9}};
  std::string problem;
  const auto n = lanes.drain(2, held, problem);
  ASSERT_TRUE(n) << problem;
  EXPECT_EQ(*n, 1u);
  EXPECT_TRUE(held.seqs.empty());
}

TEST(ReleaseLanes, EveryLaneTakenMeansTheSocket) {
  ReleaseLanes lanes;
  for (uint64_t sub = 1; sub <= shm::kLanes; ++sub) EXPECT_TRUE(lanes.assign(sub));
  EXPECT_FALSE(lanes.assign(100));
}

TEST(ReleaseLanes, ANotHeldFrameIsAViolationAndTheLaneDies) {
  ReleaseLanes lanes;
  ClientView c(lanes);
  const auto a = *lanes.assign(3);
  c.write(a.lane, a.epoch, {1, 2, 40});
  c.write(a.lane, a.epoch, {1, 2, 40});  // double release
  Holds held{{40}};
  std::string problem;
  EXPECT_FALSE(lanes.drain(3, held, problem));
  EXPECT_NE(problem.find("does not hold"), std::string::npos) << problem;
  EXPECT_TRUE(lanes.dead());
  c.write(a.lane, a.epoch, {1, 2, 41});
  EXPECT_EQ(lanes.drain(3, held, problem), 0u);  // nothing more is read
}

TEST(ReleaseLanes, HeadMovedBackwardsOrTooFarIsAViolation) {
  for (const int64_t jump : {int64_t(-1), int64_t(shm::kLaneRecords) + 1}) {
    ReleaseLanes lanes;
    ClientView c(lanes);
    const auto a = *lanes.assign(3);
    c.write(a.lane, a.epoch, {1, 0, 1});
    Holds held{{1}};
    std::string problem;
    ASSERT_EQ(lanes.drain(3, held, problem), 1u);
    c.lane(a.lane).head.store(uint64_t(1 + jump));
    EXPECT_FALSE(lanes.drain(3, held, problem)) << jump;
    EXPECT_NE(problem.find("head moved"), std::string::npos) << problem;
  }
}

TEST(ReleaseLanes, ARecordOfAnEpochNotYetGivenIsAViolation) {
  ReleaseLanes lanes;
  ClientView c(lanes);
  const auto a = *lanes.assign(3);
  c.write(a.lane, a.epoch + 1, {1, 0, 1});
  Holds held{{1}};
  std::string problem;
  EXPECT_FALSE(lanes.drain(3, held, problem));
  EXPECT_NE(problem.find("epoch"), std::string::npos) << problem;
}

TEST(ReleaseLanes, RandomBytesOverTheWholeMappingNeverReleaseWhatIsNotHeld) {
  std::mt19937_64 rng(17);
  for (int round = 0; round < 200; ++round) {
    ReleaseLanes lanes;
    ClientView c(lanes);
    for (uint64_t sub = 1; sub <= 4; ++sub) lanes.assign(sub);
    auto* bytes = reinterpret_cast<uint8_t*>(c.layout);
    for (size_t i = 0; i < sizeof(shm::LanesLayout); i += 8) {
      const uint64_t v = rng();
      std::memcpy(bytes + i, &v, std::min<size_t>(8, sizeof(shm::LanesLayout) - i));
    }
    Holds held{{1, 2, 3}};
    std::string problem;
    const auto n = lanes.drain_all([&](uint64_t, const FrameRef& f) { return held(f); }, problem);
    EXPECT_TRUE(!n || *n <= 3);  // at most what was held, and never a crash
  }
}

TEST(ReleaseLanes, TheWakeFlagIsRearmedAtEachDrain) {
  ReleaseLanes lanes;
  ClientView c(lanes);
  const auto a = *lanes.assign(5);
  EXPECT_EQ(c.lane(a.lane).wake.load(), 0u);
  lanes.set_wake(5, true);
  EXPECT_EQ(c.lane(a.lane).wake.load(), 1u);
  c.lane(a.lane).wake.store(0);  // the client took it and nudged
  c.write(a.lane, a.epoch, {1, 0, 1});
  Holds held{{1}};
  std::string problem;
  ASSERT_EQ(lanes.drain(5, held, problem), 1u);
  EXPECT_EQ(c.lane(a.lane).wake.load(), 1u);  // asks again for the next one
  lanes.set_wake(5, false);
  EXPECT_EQ(c.lane(a.lane).wake.load(), 0u);
}
