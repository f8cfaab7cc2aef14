// Release lanes against the real broker: a client scribbling on its own lanes, moving head
// backwards or releasing twice through them is told why and disconnected, and nobody else
// loses a frame; clients with and without lanes see the same frames.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "framebroker/client.hpp"
#include "framebroker/internal/release_lanes.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace wire = framebroker::wire;
namespace shm = framebroker::shm;

namespace {

const std::vector<std::string> kCamera = {
    "--no-default-camera", "--camera",
    "sim:name=cam,Width=128,Height=128,Pattern=counter,FrameRate=200,slots=32"};

// A raw client with release lanes, subscribed `every` to cam and holding its first frame.
struct LaneClient {
  explicit LaneClient(Broker& b) : raw(b.socket()) {
    raw.hello(wire::kProtocolVersion, /*release_lanes=*/true);
    auto welcome = raw.receive_reply();
    EXPECT_TRUE(welcome && welcome->envelope()->message_as_Welcome());
    EXPECT_EQ(welcome->envelope()->message_as_Welcome()->release_lanes(), shm::kLanes);
    const int fd = raw.take_passed_fd();
    EXPECT_GE(fd, 0);
    void* p = ::mmap(nullptr, sizeof(shm::LanesLayout), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT_NE(p, MAP_FAILED);
    layout = static_cast<shm::LanesLayout*>(p);
    lanes_fd = fd;
    flatbuffers::FlatBufferBuilder fbb;
    wire::finish(fbb, 2, wire::Message::Subscribe,
                 wire::CreateSubscribe(fbb, fbb.CreateString("cam"), wire::Mode::Every));
    raw.send(fbb);
    auto sub = raw.receive_reply();
    const auto* s = sub ? sub->envelope()->message_as_Subscribed() : nullptr;
    EXPECT_TRUE(s);
    if (!s) return;
    lane = s->release_lane();
    epoch = s->release_epoch();
  }
  // Waits for the first frame delivered (it stays held).
  void take_first_frame() {
    for (int i = 0; i < 100 && !frame; ++i) {
      auto m = raw.receive(5s);
      if (!m) break;
      if (const auto* d = m->envelope()->message_as_Deliver(); d && d->frames()->size() > 0) {
        const auto* f = d->frames()->Get(0);
        frame = wire::SlotRef(f->seq(), f->gen(), f->slot());
      }
    }
  }
  ~LaneClient() {
    if (layout) ::munmap(layout, sizeof(shm::LanesLayout));
    if (lanes_fd >= 0) ::close(lanes_fd);
  }
  shm::ReleaseLane& my_lane() { return layout->lanes[lane - 1]; }
  void write(const wire::SlotRef& f, uint32_t with_epoch) {
    auto& l = my_lane();
    const uint64_t h = l.head.load();
    l.records[h % shm::kLaneRecords] = {f.seq(), f.gen(), f.slot(), with_epoch, 0};
    l.head.store(h + 1);
  }
  // Tells the broker to drain the lanes. The camera thread may have drained them first (at its
  // next commit) and already closed a connection that broke the rules: then the send fails, and
  // error_before_close() reads why.
  void nudge() {
    flatbuffers::FlatBufferBuilder fbb;
    wire::finish(fbb, 0, wire::Message::ReleasesWritten, wire::CreateReleasesWritten(fbb));
    try {
      raw.send(fbb);
    } catch (const std::runtime_error&) {
    }
  }
  // The Error the broker sent before it closed the connection.
  std::string error_before_close() {
    std::string text;
    for (int i = 0; i < 1000; ++i) {
      auto m = raw.receive(5s);
      if (!m) break;
      if (const auto* e = m->envelope()->message_as_Error())
        text = e->message() ? e->message()->str() : "?";
    }
    return raw.closed() ? text : "(still connected)";
  }

  RawClient raw;
  shm::LanesLayout* layout = nullptr;
  int lanes_fd = -1;
  uint32_t lane = 0, epoch = 0;
  std::optional<wire::SlotRef> frame;
};

int held_by(Broker& b, const std::string& client) {
  const json status = b.status();
  for (const auto& s : status["subscribers"])
    if (s["client"] == client) return s["held"].get<int>();
  return -1;
}

}  // namespace

TEST(ReleaseLanes, AReleaseThroughTheLaneFreesTheFrame) {
  Broker b(idle_counter_camera());
  LaneClient c(b);
  ASSERT_GT(c.lane, 0u);
  ASSERT_EQ(b.fbctl({"start", "cam", "--frames", "3"}).exit_code, 0);
  c.take_first_frame();
  ASSERT_TRUE(c.frame);
  ASSERT_TRUE(wait_held(b, 3));
  c.write(*c.frame, c.epoch);  // no nudge: fbctl status collects it
  EXPECT_TRUE(b.wait_status([&](const json&) { return held_by(b, "raw-test") == 2; }))
      << "held stayed at " << held_by(b, "raw-test");
  EXPECT_FALSE(c.raw.closed());
  EXPECT_TRUE(slot_invariant_holds(b.status()));
}

TEST(ReleaseLanes, ScribblingOverTheLanesDisconnectsOnlyThatClient) {
  Broker b(kCamera);
  others_lose_nothing(b, [&] {
    LaneClient c(b);
    c.take_first_frame();
    ASSERT_TRUE(c.frame);
    std::mt19937_64 rng(5);
    auto* bytes = reinterpret_cast<uint64_t*>(c.layout);
    for (size_t i = 0; i < sizeof(shm::LanesLayout) / 8; ++i) bytes[i] = rng();
    c.nudge();
    EXPECT_NE(c.error_before_close(), "(still connected)");
    EXPECT_EQ(::ftruncate(c.lanes_fd, 0), -1);  // and it cannot pull the memory away either
  });
  EXPECT_TRUE(b.wait_status(
      [&](const json& s) { return subscribers(s).empty() && slot_invariant_holds(s); }));
}

TEST(ReleaseLanes, HeadMovedBackwardsIsReportedAndDisconnects) {
  Broker b(kCamera);
  others_lose_nothing(b, [&] {
    LaneClient c(b);
    c.take_first_frame();
    ASSERT_TRUE(c.frame);
    c.write(*c.frame, c.epoch);
    c.nudge();
    ASSERT_TRUE(b.wait_status([&](const json& s) {
      for (const auto& sub : s["subscribers"])
        if (sub["client"] == "raw-test") return true;
      return false;
    }));
    c.my_lane().head.store(0);
    c.nudge();
    const std::string why = c.error_before_close();
    EXPECT_NE(why.find("head moved"), std::string::npos) << why;
  });
}

TEST(ReleaseLanes, DoubleReleaseThroughTheLaneIsReportedAndDisconnects) {
  Broker b(kCamera);
  others_lose_nothing(b, [&] {
    LaneClient c(b);
    c.take_first_frame();
    ASSERT_TRUE(c.frame);
    c.write(*c.frame, c.epoch);
    c.write(*c.frame, c.epoch);
    c.nudge();
    const std::string why = c.error_before_close();
    EXPECT_NE(why.find("does not hold"), std::string::npos) << why;
  });
}

TEST(ReleaseLanes, ARecordOfAnotherEpochIsReportedAndDisconnects) {
  Broker b(kCamera);
  LaneClient c(b);
  c.take_first_frame();
  ASSERT_TRUE(c.frame);
  c.write(*c.frame, c.epoch + 5);
  c.nudge();
  const std::string why = c.error_before_close();
  EXPECT_NE(why.find("epoch"), std::string::npos) << why;
  EXPECT_TRUE(b.process().running());
}

TEST(ReleaseLanes, ClientsWithAndWithoutLanesBothGetEveryFrame) {
  Broker b(kCamera);
  ::setenv("FRAMEBROKER_RELEASE_LANES", "off", 1);
  auto socket_only =
      b.fbctl_async({"watch", "cam", "--frames", "300", "--verify-counter", "--json"});
  ::unsetenv("FRAMEBROKER_RELEASE_LANES");
  auto with_lanes =
      b.fbctl_async({"watch", "cam", "--frames", "300", "--verify-counter", "--json"});
  expect_lossless(watch_summary(*socket_only), 300);
  expect_lossless(watch_summary(*with_lanes), 300);
  EXPECT_TRUE(b.wait_status([](const json& s) { return slot_invariant_holds(s); }));
}

TEST(ReleaseLanes, SubscriptionsBeyondTheLanesReleaseOverTheSocket) {
  // One connection, one subscription more than it has lanes: the last one is given none and
  // its releases go over the socket. Every subscription must still get every frame (each ring
  // holds all 60, so reading one stream after another misses nothing).
  const int streams = int(shm::kLanes) + 1;
  std::vector<std::string> args{"--no-default-camera"};
  for (int i = 0; i < streams; ++i) {
    args.push_back("--camera");
    args.push_back("sim:name=c" + std::to_string(i) +
                   ",Width=16,Height=16,Pattern=counter,FrameRate=200,slots=80,start=false");
  }
  Broker b(args);
  auto client = connect_to(b);
  std::vector<framebroker::Subscription> subs;
  for (int i = 0; i < streams; ++i) subs.push_back(client.subscribe("c" + std::to_string(i)));
  for (int i = 0; i < streams; ++i) client.camera("c" + std::to_string(i)).start(60);
  for (int i = 0; i < streams; ++i) {
    std::vector<uint64_t> seqs;
    while (seqs.size() < 60) {
      auto f = subs[size_t(i)].next(5s);
      ASSERT_TRUE(f) << "c" << i << " stopped after " << seqs.size() << " frames";
      seqs.push_back(f->seq());
    }  // each frame is released as it goes out of scope
    EXPECT_EQ(seqs.back() - seqs.front(), 59u) << "c" << i << " lost frames";
  }
  client.status();  // a request sends the socket releases still batched, as any would
  EXPECT_TRUE(b.wait_status([](const json& s) {
    for (const auto& sub : s["subscribers"])
      if (sub["held"] != 0) return false;
    return slot_invariant_holds(s);
  }));
}
