// Stream: a camera's FrameSink over generations of real POSIX shared-memory
// segments, with the overflow policies drop and block. No client sockets: the
// tests are the socket thread themselves (they poll the io_context that the
// camera's wake-up reaches), and, unless a test says otherwise, the camera
// thread too.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <source_location>
#include <string>
#include <thread>
#include <vector>

#include "cameras/sim/sim_camera.hpp"
#include "daemon/stream.hpp"
#include "framebroker/frame_meta_generated.h"
#include "framebroker/internal/segment.hpp"

namespace fbc = framebroker::cameras;
namespace fbd = framebroker::daemon;
namespace shm = framebroker::shm;
using fbd::FrameRef;
using fbd::Overflow;
using fbd::ReleaseResult;
using fbd::Stream;
using fbd::StreamConfig;
using fbd::SubscriberMode;
using fbd::SubscriberOptions;
using namespace std::chrono_literals;

namespace {

// A camera the test drives by hand: start() only remembers the sink, and the
// test (or a thread it starts) plays the camera thread through loan/produce.
class FakeCamera : public fbc::Camera {
 public:
  FakeCamera(std::string name, uint32_t width, uint32_t height) : name_(std::move(name)) {
    set_size(width, height);
  }

  const std::string& name() const override { return name_; }
  std::string driver() const override { return "fake"; }
  fbc::PropertySet& properties() override { return props_; }
  void set(const std::string& prop, const std::string& value) override {
    if (running_) throw fbc::CameraError("running");
    if (prop == "Width") set_size(uint32_t(std::stoul(value)), fmt_.height);
    if (prop == "Height") set_size(fmt_.width, uint32_t(std::stoul(value)));
  }
  fbc::FrameFormat format() const override { return fmt_; }
  void start(fbc::FrameSink& sink, std::optional<uint64_t>) override {
    if (running_) throw fbc::CameraError("already running");
    sink_ = &sink;
    running_ = true;
    ++starts;
  }
  void stop() override { running_ = false; }
  void snap(fbc::FrameSink& sink) override {
    sink_ = &sink;
    produce(0x5a);
  }
  bool running() const override { return running_; }
  uint64_t frames_committed() const override { return committed_; }

  // --- the camera thread, played by the test ---
  std::optional<fbc::Loan> loan() { return sink_->loan(fmt_.frame_bytes()); }
  void commit(const fbc::Loan& loan, uint8_t fill) {
    std::memset(loan.data.data(), fill, loan.data.size());
    fbc::FrameInfo info;
    info.camera_frame_id = next_id_++;
    info.format = fmt_;
    info.exposure_us = 1500;
    info.tags = {{"k", "v"}};
    sink_->commit(loan, info);
    ++committed_;
  }
  // Returns false when the sink had no room (the frame is dropped).
  bool produce(uint8_t fill) {
    auto l = loan();
    if (!l) return false;
    commit(*l, fill);
    return true;
  }
  void hardware_drop() { sink_->drop("lost on the wire"); }
  fbc::FrameSink& sink() { return *sink_; }

  int starts = 0;

 private:
  void set_size(uint32_t w, uint32_t h) {
    fmt_.width = fmt_.roi_w = w;
    fmt_.height = fmt_.roi_h = h;
    fmt_.pixel_type = fbc::PixelType::Mono16;
    fmt_.bit_depth = 16;
    fmt_.stride = w * 2;
  }

  std::string name_;
  fbc::PropertySet props_;
  fbc::FrameFormat fmt_;
  fbc::FrameSink* sink_ = nullptr;
  bool running_ = false;
  uint64_t next_id_ = 0;
  uint64_t committed_ = 0;
};

SubscriberOptions every(uint32_t max_hold = 0) {
  return {SubscriberMode::Every, max_hold, 0, false};
}

const framebroker::meta::FrameMeta* verified_meta(const std::vector<uint8_t>& bytes) {
  flatbuffers::Verifier v(bytes.data(), bytes.size());
  if (!framebroker::meta::VerifyFrameMetaBuffer(v)) return nullptr;
  return framebroker::meta::GetFrameMeta(bytes.data());
}

class StreamTest : public ::testing::Test {
 protected:
  using Loc = std::source_location;

  void SetUp() override {
    std::string base = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& ch : base)
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    base = base.substr(0, 32);
    instance_ = "ut-" + base + "-" + std::to_string(getpid());
    ASSERT_TRUE(shm_entries().empty()) << "stale segments of " << instance_;
  }

  void TearDown() override {
    stream_.reset();
    EXPECT_TRUE(shm_entries().empty())
        << "segments left in /dev/shm: " << ::testing::PrintToString(shm_entries());
    for (const auto& e : shm_entries()) shm::Segment::remove("/" + e);
  }

  Stream& make(StreamConfig cfg, uint32_t width = 64, uint32_t height = 64) {
    if (cfg.name.empty()) cfg.name = "cam";
    auto cam = std::make_unique<FakeCamera>(cfg.name, width, height);
    cam_ = cam.get();
    stream_ = std::make_unique<Stream>(io_, instance_, cfg, std::move(cam),
                                       [this](Stream&) { ++on_frames_calls_; });
    return *stream_;
  }

  // The socket thread's turn: run whatever the camera's wake-up made ready
  // (the drain of the committed frames).
  void pump() {
    io_.restart();
    while (io_.poll() > 0) {
    }
  }

  // Names in /dev/shm of this test's instance.
  std::set<std::string> shm_entries() const {
    std::set<std::string> out;
    const std::string prefix = shm::instance_segment_prefix(instance_);
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
      const std::string n = e.path().filename().string();
      if (n.rfind(prefix, 0) == 0) out.insert(n);
    }
    return out;
  }
  std::string seg_file(uint32_t gen) const {
    return shm::segment_name(instance_, stream_->name(), gen).substr(1);
  }
  bool seg_exists(uint32_t gen) const { return shm_entries().count(seg_file(gen)) != 0; }

  // free + writing + ready == slots in every live generation, and each slot's
  // ref count equals the holds the fanout lists against it.
  void check(Loc loc = Loc::current()) {
    SCOPED_TRACE(testing::Message() << "invariants checked at line " << loc.line());
    Stream& s = *stream_;
    size_t retired = 0;
    for (uint32_t g = 1; g <= s.current()->gen; ++g) {
      fbd::Generation* gen = s.generation(g);
      if (!gen) continue;
      if (gen != s.current()) ++retired;
      const auto c = gen->ring->counts();
      EXPECT_EQ(c.free + c.writing + c.ready, gen->ring->size()) << "gen " << g;
      EXPECT_EQ(gen->ring->size(), gen->segment->slots()) << "gen " << g;
      for (uint32_t slot = 0; slot < gen->ring->size(); ++slot)
        EXPECT_EQ(gen->ring->refs(slot), s.fanout().refs_on(g, slot))
            << "gen " << g << " slot " << slot;
      if (gen != s.current()) {
        EXPECT_FALSE(gen->ring->unreferenced()) << "gen " << g << " lingers";
      }
      EXPECT_TRUE(seg_exists(g)) << "gen " << g << " is live but its segment is gone";
    }
    EXPECT_EQ(retired, s.retired_generations());
  }

  std::vector<FrameRef> take(uint64_t sub, Loc loc = Loc::current()) {
    auto v = stream_->fanout().take_sendable(sub);
    check(loc);
    return v;
  }
  void release(uint64_t sub, const FrameRef& f, Loc loc = Loc::current()) {
    EXPECT_EQ(stream_->fanout().release(sub, f), ReleaseResult::Ok)
        << "seq " << f.seq << " (line " << loc.line() << ")";
    check(loc);
  }
  void produce(uint8_t fill, Loc loc = Loc::current()) {
    EXPECT_TRUE(cam_->produce(fill)) << "no slot for the frame (line " << loc.line() << ")";
    check(loc);
  }

  boost::asio::io_context io_;
  std::string instance_;
  FakeCamera* cam_ = nullptr;
  std::unique_ptr<Stream> stream_;
  int on_frames_calls_ = 0;
};

std::vector<uint64_t> seqs(const std::vector<FrameRef>& frames) {
  std::vector<uint64_t> out;
  for (const auto& f : frames) out.push_back(f.seq);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- basics

TEST_F(StreamTest, CreatesItsFirstGenerationSegment) {
  StreamConfig cfg;
  cfg.slots = 5;
  Stream& s = make(cfg);
  ASSERT_NE(s.current(), nullptr);
  EXPECT_EQ(s.current()->gen, 1u);
  EXPECT_EQ(s.current()->ring->size(), 5u);
  EXPECT_EQ(s.current()->segment->slot_bytes(), shm::round_up_to_page(64 * 64 * 2));
  EXPECT_EQ(s.current()->segment->name(), "/fb." + instance_ + ".cam.1");
  EXPECT_EQ(shm_entries(), std::set<std::string>{"fb." + instance_ + ".cam.1"});
  EXPECT_EQ(s.fanout().default_max_hold(), 1u);
  EXPECT_EQ(s.latest_seq(), -1);
  EXPECT_EQ(s.current()->ring->counts().free, 5u);
  check();
}

TEST_F(StreamTest, CommitsAreBatchedIntoOneDrainAndPublished) {
  StreamConfig cfg;
  cfg.slots = 8;
  Stream& s = make(cfg);
  s.fanout().subscribe(1, every());
  s.start(std::nullopt);
  produce(0x11);
  produce(0x22);
  produce(0x33);
  // Nothing is published until the socket thread runs.
  EXPECT_EQ(s.latest_seq(), -1);
  EXPECT_EQ(s.current()->ring->counts().ready, 3u);
  pump();
  EXPECT_EQ(on_frames_calls_, 1);  // one wake-up for the three commits
  check();
  EXPECT_EQ(s.published(), 3u);
  EXPECT_EQ(s.latest_seq(), 2);

  const auto frames = take(1);
  ASSERT_EQ(seqs(frames), (std::vector<uint64_t>{0, 1, 2}));
  auto reader = shm::Segment::open_readonly(s.current()->segment->name());
  const uint8_t fills[] = {0x11, 0x22, 0x33};
  for (size_t i = 0; i < frames.size(); ++i) {
    const FrameRef& f = frames[i];
    EXPECT_EQ(f.gen, 1u);
    const auto* m = verified_meta(s.meta_of(f));
    ASSERT_NE(m, nullptr) << "frame " << i << " has no valid metadata";
    EXPECT_EQ(m->seq(), f.seq);
    EXPECT_EQ(m->gen(), 1u);
    EXPECT_EQ(m->slot(), f.slot);
    EXPECT_EQ(m->camera_frame_id(), i);
    EXPECT_EQ(m->width(), 64u);
    EXPECT_EQ(m->height(), 64u);
    EXPECT_EQ(m->stride(), 128u);
    EXPECT_EQ(m->bytes(), 64u * 64 * 2);
    EXPECT_EQ(m->exposure_us(), 1500);
    ASSERT_NE(m->stream(), nullptr);
    EXPECT_EQ(m->stream()->str(), "cam");
    ASSERT_NE(m->tags(), nullptr);
    EXPECT_EQ(m->tags()->size(), 1u);
    EXPECT_EQ(s.current()->segment->records()[f.slot].seq, f.seq);
    const auto px = reader->slot(f.slot);
    EXPECT_EQ(px[0], std::byte(fills[i]));
    EXPECT_EQ(px[64 * 64 * 2 - 1], std::byte(fills[i]));
  }
  for (const auto& f : frames) release(1, f);
  s.stop();
}

TEST_F(StreamTest, DrainWithNothingCommittedDoesNotNotify) {
  Stream& s = make({});
  s.drain();
  pump();
  EXPECT_EQ(on_frames_calls_, 0);
  EXPECT_EQ(s.published(), 0u);
}

TEST_F(StreamTest, StartOrSnapWhileRunningThrows) {
  Stream& s = make({});
  s.start(std::nullopt);
  EXPECT_THROW(s.start(std::nullopt), fbc::CameraError);
  EXPECT_THROW(s.snap(), fbc::CameraError);
  s.stop();
  EXPECT_NO_THROW(s.snap());
  pump();
  EXPECT_EQ(s.latest_seq(), 0);
  check();
}

TEST_F(StreamTest, AbortGivesTheSlotBack) {
  StreamConfig cfg;
  cfg.slots = 2;
  Stream& s = make(cfg);
  s.start(std::nullopt);
  auto l = cam_->loan();
  ASSERT_TRUE(l);
  EXPECT_EQ(s.current()->ring->counts().writing, 1u);
  check();
  cam_->sink().abort(*l);
  EXPECT_EQ(s.current()->ring->counts().free, 2u);
  check();
  produce(1);
  produce(2);
  pump();
  check();
  EXPECT_EQ(s.dropped(), 0u);
  s.stop();
}

// ---------------------------------------------------------------- generations

TEST_F(StreamTest, NewGenerationWhenWidthOutgrowsTheSlotWhileStopped) {
  StreamConfig cfg;
  cfg.slots = 4;
  Stream& s = make(cfg, 64, 64);  // 8 KiB frames
  s.fanout().subscribe(1, every(10));
  s.start(std::nullopt);
  produce(0xab);
  pump();
  const auto held = take(1);
  ASSERT_EQ(held.size(), 1u);
  const FrameRef old = held[0];
  EXPECT_EQ(old.gen, 1u);
  s.stop();

  auto reader = shm::Segment::open_readonly(s.current()->segment->name());
  cam_->set("Width", "128");  // 16 KiB: does not fit
  s.start(std::nullopt);
  ASSERT_EQ(s.current()->gen, 2u);
  EXPECT_GE(s.current()->segment->slot_bytes(), 128u * 64 * 2);
  EXPECT_EQ(s.retired_generations(), 1u);  // held by subscriber 1
  EXPECT_TRUE(seg_exists(1));
  EXPECT_TRUE(seg_exists(2));
  EXPECT_FALSE(s.fanout().latest());  // the cache does not carry over
  check();

  // The held frame of generation 1 is intact while new frames go to gen 2.
  produce(0xcd);
  pump();
  const auto fresh = take(1);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].gen, 2u);
  EXPECT_EQ(fresh[0].seq, old.seq + 1);
  const auto* m = verified_meta(s.meta_of(fresh[0]));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->width(), 128u);
  EXPECT_EQ(m->gen(), 2u);
  EXPECT_EQ(reader->slot(old.slot)[0], std::byte{0xab});
  ASSERT_NE(s.generation(1), nullptr);
  EXPECT_EQ(s.generation(1)->ring->refs(old.slot), 1u);

  // The last reference goes: the old segment is unlinked.
  release(1, old);
  EXPECT_EQ(s.retired_generations(), 0u);
  EXPECT_EQ(s.generation(1), nullptr);
  EXPECT_FALSE(seg_exists(1));
  EXPECT_TRUE(seg_exists(2));
  // A reader that mapped it keeps its mapping.
  EXPECT_EQ(reader->slot(old.slot)[0], std::byte{0xab});
  release(1, fresh[0]);
  s.stop();
}

TEST_F(StreamTest, OldGenerationGoesAtOnceWhenNothingHoldsIt) {
  StreamConfig cfg;
  cfg.slots = 3;
  Stream& s = make(cfg, 64, 64);
  s.start(std::nullopt);
  produce(1);
  produce(2);
  pump();
  s.stop();
  cam_->set("Height", "256");
  s.start(std::nullopt);
  EXPECT_EQ(s.current()->gen, 2u);
  EXPECT_EQ(s.retired_generations(), 0u);
  EXPECT_FALSE(seg_exists(1));
  EXPECT_EQ(shm_entries().size(), 1u);
  check();
  s.stop();
}

TEST_F(StreamTest, NoNewGenerationWhenTheFormatStillFits) {
  StreamConfig cfg;
  cfg.slots = 3;
  Stream& s = make(cfg, 64, 64);
  s.start(std::nullopt);
  produce(1);
  pump();
  s.stop();
  cam_->set("Width", "32");  // smaller
  s.start(std::nullopt);
  EXPECT_EQ(s.current()->gen, 1u);
  produce(2);
  pump();
  EXPECT_EQ(s.latest_seq(), 1);
  s.stop();
  cam_->set("Width", "64");  // back to the slot size exactly
  s.snap();
  EXPECT_EQ(s.current()->gen, 1u);
  EXPECT_EQ(shm_entries().size(), 1u);
  pump();
  check();
}

TEST_F(StreamTest, GenerationsChainAndEachGoesWithItsLastHolder) {
  StreamConfig cfg;
  cfg.slots = 4;  // max_hold is capped at 2, so each generation's frame has its own holder
  Stream& s = make(cfg, 16, 16);
  std::vector<FrameRef> held;
  uint64_t sub = 0;
  for (uint32_t w : {16u, 4096u, 8192u}) {  // 512 B, 128 KiB, 256 KiB frames
    s.fanout().subscribe(++sub, every());
    cam_->set("Width", std::to_string(w));
    s.start(std::nullopt);
    produce(uint8_t(w));
    pump();
    for (const auto& f : take(sub)) held.push_back(f);
    s.fanout().unsubscribe(sub);  // it keeps its hold until it releases it
    check();
    s.stop();
  }
  ASSERT_EQ(held.size(), 3u);
  EXPECT_EQ(held[0].gen, 1u);
  EXPECT_EQ(held[1].gen, 2u);
  EXPECT_EQ(held[2].gen, 3u);
  EXPECT_EQ(s.current()->gen, held[2].gen);
  EXPECT_EQ(s.retired_generations(), 2u);
  EXPECT_EQ(shm_entries().size(), 3u);
  release(2, held[1]);  // the middle one first
  EXPECT_FALSE(seg_exists(held[1].gen));
  EXPECT_TRUE(seg_exists(held[0].gen));
  EXPECT_EQ(s.retired_generations(), 1u);
  release(1, held[0]);
  EXPECT_EQ(s.retired_generations(), 0u);
  EXPECT_EQ(shm_entries().size(), 1u);
  release(3, held[2]);
  EXPECT_TRUE(seg_exists(held[2].gen));  // the current one stays
  EXPECT_TRUE(s.fanout().subscriber_ids().empty());
}

TEST_F(StreamTest, DestroyingTheStreamUnlinksEveryGenerationEvenWithHolds) {
  StreamConfig cfg;
  cfg.slots = 4;
  Stream& s = make(cfg, 64, 64);
  s.fanout().subscribe(1, every());
  s.start(std::nullopt);
  produce(1);
  pump();
  take(1);
  s.stop();
  cam_->set("Width", "256");
  s.start(std::nullopt);
  produce(2);
  pump();
  EXPECT_EQ(shm_entries().size(), 2u);
  stream_.reset();  // with the camera still "running" and holds in both generations
  EXPECT_TRUE(shm_entries().empty());
}

TEST_F(StreamTest, RingMbSetsTheSlotCountAndAChangeMakesANewGeneration) {
  const uint64_t mib = 1024 * 1024;
  StreamConfig cfg;
  cfg.slots = 3;  // ignored when ring_mb is set
  cfg.ring_mb = 1;
  Stream& s = make(cfg, 64, 64);
  const auto slots_for = [&](uint64_t frame) {
    return uint32_t(std::max<uint64_t>(2, mib / shm::round_up_to_page(frame)));
  };
  const uint32_t first = slots_for(64 * 64 * 2);
  EXPECT_EQ(s.current()->ring->size(), first);
  EXPECT_EQ(s.current()->segment->slots(), first);
  EXPECT_EQ(s.fanout().default_max_hold(), first > 5 ? first - 4 : 1);

  // A frame twice the size: fewer slots in a new generation.
  cam_->set("Width", "128");
  s.start(std::nullopt);
  const uint32_t second = slots_for(128 * 64 * 2);
  ASSERT_NE(second, first);
  EXPECT_EQ(s.current()->gen, 2u);
  EXPECT_EQ(s.current()->ring->size(), second);
  EXPECT_EQ(s.fanout().default_max_hold(), second > 5 ? second - 4 : 1);
  s.stop();

  // Back to the smaller frame: it fits the slots, but the count changes.
  cam_->set("Width", "64");
  s.start(std::nullopt);
  EXPECT_EQ(s.current()->gen, 3u);
  EXPECT_EQ(s.current()->ring->size(), first);
  s.stop();

  // A frame larger than half the ring still gets two slots.
  cam_->set("Width", "1024");
  cam_->set("Height", "1024");
  s.start(std::nullopt);
  EXPECT_EQ(s.current()->ring->size(), 2u);
  EXPECT_EQ(s.current()->gen, 4u);
  produce(7);
  pump();
  check();
  EXPECT_EQ(shm_entries().size(), 1u);
  s.stop();
}

TEST_F(StreamTest, SubscriberSpanningGenerationsKeepsTheInvariant) {
  StreamConfig cfg;
  cfg.slots = 6;
  Stream& s = make(cfg, 64, 64);
  s.fanout().subscribe(1, every());
  s.fanout().subscribe(2, {SubscriberMode::Latest, 0, 1, false});
  s.start(std::nullopt);
  produce(1);
  produce(2);
  pump();
  const auto a = take(1);
  const auto b = take(2);
  s.stop();
  cam_->set("Width", "512");
  s.start(std::nullopt);
  produce(3);
  pump();
  check();
  for (const auto& f : a) release(1, f);
  EXPECT_EQ(s.retired_generations(), 1u);  // the viewer still holds one
  for (const auto& f : b) release(2, f);
  EXPECT_EQ(s.retired_generations(), 0u);
  // The viewer is now sent the newest frame, from generation 2.
  const auto v = take(2);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].gen, 2u);
  release(2, v[0]);
  s.stop();
}

// ---------------------------------------------------------------- overflow: drop

TEST_F(StreamTest, OverflowDropSkipsSeqCountsDropsAndLeaksNoSlot) {
  StreamConfig cfg;
  cfg.slots = 4;
  Stream& s = make(cfg);
  // One subscriber may hold at most slots - 2 = 2: two of them fill the ring.
  EXPECT_EQ(s.fanout().subscribe(1, every(10)).max_hold, 2u);  // holds everything it is sent
  s.start(std::nullopt);
  produce(0);
  produce(1);
  pump();
  const auto first = take(1);
  ASSERT_EQ(seqs(first), (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(s.fanout().subscribe(2, every(10)).max_hold, 2u);  // and 2 gets the next two
  produce(2);
  produce(3);
  pump();
  const auto second = take(2);
  ASSERT_EQ(seqs(second), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(s.fanout().counters(1).missed, 2u);
  EXPECT_EQ(s.current()->ring->counts().free, 0u);
  // Two frames find no free slot.
  EXPECT_FALSE(cam_->produce(4));
  check();
  EXPECT_FALSE(cam_->produce(5));
  check();
  EXPECT_EQ(s.dropped_full(), 2u);
  EXPECT_EQ(s.dropped(), 2u);
  EXPECT_EQ(s.published(), 4u);

  release(1, first[0]);  // one slot comes back
  produce(6);
  pump();
  // A frame the hardware lost costs a seq too.
  cam_->hardware_drop();
  EXPECT_EQ(s.dropped_camera(), 1u);
  EXPECT_EQ(s.dropped(), 3u);
  release(1, first[1]);
  produce(8);
  pump();
  const auto next = take(1);
  EXPECT_EQ(seqs(next), (std::vector<uint64_t>{6, 8}));  // the gaps show the losses
  EXPECT_EQ(s.published(), 6u);
  EXPECT_EQ(s.latest_seq(), 8);
  EXPECT_EQ(s.fanout().counters(1).missed, 2u);  // 2 and 3 (it was full)
  EXPECT_EQ(s.fanout().counters(2).missed, 2u);  // 6 and 8 (it was full)

  for (const auto& f : second) release(2, f);
  for (const auto& f : next) release(1, f);
  // Only the cache holds a slot now: nothing leaked.
  const auto c = s.current()->ring->counts();
  EXPECT_EQ(c.ready, 1u);
  EXPECT_EQ(c.free, 3u);
  EXPECT_EQ(c.writing, 0u);
  s.fanout().remove(1);
  s.fanout().remove(2);
  check();
  s.stop();
}

// One every-subscriber that asked for the whole ring and never releases: the
// camera still finds a slot for every frame; the subscriber misses instead.
TEST_F(StreamTest, OneStuckSubscriberCannotTakeTheWholeRing) {
  StreamConfig cfg;
  cfg.slots = 6;
  Stream& s = make(cfg);
  EXPECT_EQ(s.fanout().subscribe(1, every(6)).max_hold, 4u);
  s.start(std::nullopt);
  constexpr int kFrames = 50;
  for (int i = 0; i < kFrames; ++i) {
    produce(uint8_t(i));
    pump();
    take(1);  // and never released
  }
  EXPECT_EQ(s.dropped(), 0u);
  EXPECT_EQ(s.published(), uint64_t(kFrames));
  EXPECT_EQ(s.latest_seq(), kFrames - 1);
  const auto c = s.fanout().counters(1);
  EXPECT_EQ(c.held, 4u);
  EXPECT_EQ(c.delivered, 4u);
  EXPECT_EQ(c.missed, uint64_t(kFrames) - 4);
  EXPECT_EQ(s.current()->ring->counts().ready, 5u);  // its 4 and the cache
  EXPECT_EQ(s.current()->ring->counts().free, 1u);
  s.stop();
}

// A new generation with fewer slots lowers the cap of existing subscribers.
TEST_F(StreamTest, FewerSlotsInANewGenerationLowerMaxHold) {
  StreamConfig cfg;
  cfg.ring_mb = 1;
  Stream& s = make(cfg, 64, 64);  // 8 KiB frames: 128 slots
  ASSERT_EQ(s.current()->ring->size(), 128u);
  EXPECT_EQ(s.fanout().subscribe(1, every(100)).max_hold, 100u);
  EXPECT_EQ(s.fanout().subscribe(2, {SubscriberMode::Latest, 0, 50, false}).window, 50u);
  cam_->set("Width", "512");  // 64 KiB frames: 16 slots
  s.start(std::nullopt);
  ASSERT_EQ(s.current()->gen, 2u);
  ASSERT_EQ(s.current()->ring->size(), 16u);
  EXPECT_EQ(s.fanout().options(1).max_hold, 14u);
  EXPECT_EQ(s.fanout().options(2).window, 14u);
  s.stop();
  cam_->set("Width", "4096");  // 512 KiB frames: 2 slots
  s.start(std::nullopt);
  ASSERT_EQ(s.current()->ring->size(), 2u);
  EXPECT_EQ(s.fanout().options(1).max_hold, 1u);
  EXPECT_EQ(s.fanout().options(2).window, 1u);
  check();
  s.stop();
}

TEST_F(StreamTest, OverflowDropOfAFrameLargerThanTheSlot) {
  StreamConfig cfg;
  cfg.slots = 3;
  Stream& s = make(cfg, 64, 64);
  s.start(std::nullopt);
  EXPECT_FALSE(cam_->sink().loan(s.current()->segment->slot_bytes() + 1));
  EXPECT_EQ(s.dropped_full(), 1u);
  EXPECT_EQ(s.current()->ring->counts().free, 3u);  // no slot taken
  check();
  produce(1);
  pump();
  EXPECT_EQ(s.latest_seq(), 1);
  s.stop();
}

TEST_F(StreamTest, NoSubscribersNeverFillsTheRing) {
  StreamConfig cfg;
  cfg.slots = 2;
  Stream& s = make(cfg);
  s.start(std::nullopt);
  for (int i = 0; i < 50; ++i) {
    produce(uint8_t(i));
    pump();
  }
  EXPECT_EQ(s.dropped(), 0u);
  EXPECT_EQ(s.published(), 50u);
  EXPECT_EQ(s.current()->ring->counts().ready, 1u);  // the cache
  s.stop();
}

// ---------------------------------------------------------------- overflow: block

TEST_F(StreamTest, OverflowBlockWaitsForARelease) {
  StreamConfig cfg;
  cfg.slots = 2;
  cfg.overflow = Overflow::Block;
  cfg.block_timeout = 60s;  // far longer than the test may take
  Stream& s = make(cfg);
  EXPECT_EQ(s.fanout().subscribe(1, every(10)).max_hold, 1u);  // capped on 2 slots
  s.start(std::nullopt);
  produce(1);
  produce(2);
  pump();
  // The subscriber holds frame 0, the cache frame 1: the ring is full.
  const auto held = take(1);
  ASSERT_EQ(seqs(held), std::vector<uint64_t>{0});
  EXPECT_EQ(s.fanout().counters(1).missed, 1u);
  EXPECT_EQ(s.current()->ring->counts().free, 0u);

  // The camera thread asks for a slot and has to wait.
  auto fut = std::async(std::launch::async, [&] { return cam_->loan(); });
  EXPECT_EQ(fut.wait_for(100ms), std::future_status::timeout) << "loan() did not block";
  release(1, held[0]);  // frees a slot (the cache holds the other frame)
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready) << "the producer was not woken";
  auto l = fut.get();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->slot, held[0].slot);
  cam_->commit(*l, 3);
  pump();
  const auto next = take(1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].seq, 2u);  // nothing was dropped
  EXPECT_EQ(s.dropped(), 0u);
  release(1, next[0]);
  s.stop();
}

TEST_F(StreamTest, OverflowBlockFromACameraThread) {
  // The producer runs on its own thread for many frames; the socket thread
  // (this one) releases them. With block, nothing is ever dropped.
  StreamConfig cfg;
  cfg.slots = 4;
  cfg.overflow = Overflow::Block;
  cfg.block_timeout = 10s;
  Stream& s = make(cfg);
  // A subscriber may hold at most slots - 2, so on its own it could miss a
  // frame when the drains batch up. Subscriber 2 pins two slots for good:
  // then every frame being published, plus all that 1 has in flight, fit in
  // the other slots - 2, and 1 is never full, however the drains batch up.
  EXPECT_EQ(s.fanout().subscribe(1, every(4)).max_hold, 2u);
  EXPECT_EQ(s.fanout().subscribe(2, every(4)).max_hold, 2u);
  s.start(std::nullopt);
  std::vector<uint64_t> got;
  produce(0);
  produce(1);
  pump();
  ASSERT_EQ(take(2).size(), 2u);  // never released
  for (const auto& f : take(1)) {
    got.push_back(f.seq);
    release(1, f);
  }
  ASSERT_EQ(got.size(), 2u);
  constexpr int kFrames = 200;
  auto producer = std::async(std::launch::async, [&] {
    int ok = 0;
    for (int i = 0; i < kFrames; ++i) ok += cam_->produce(uint8_t(i)) ? 1 : 0;
    return ok;
  });
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got.size() < size_t(kFrames + 2) && std::chrono::steady_clock::now() < deadline) {
    io_.restart();
    if (io_.poll() == 0) std::this_thread::yield();
    for (const auto& f : s.fanout().take_sendable(1)) {
      got.push_back(f.seq);
      EXPECT_EQ(s.fanout().release(1, f), ReleaseResult::Ok);
    }
  }
  ASSERT_EQ(producer.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(producer.get(), kFrames);
  pump();
  check();
  EXPECT_EQ(s.dropped(), 0u);
  ASSERT_EQ(got.size(), size_t(kFrames + 2));
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i);
  EXPECT_EQ(s.fanout().counters(1).missed, 0u);
  EXPECT_EQ(s.fanout().counters(2).missed, uint64_t(kFrames));
  EXPECT_EQ(s.fanout().counters(2).held, 2u);
  s.stop();
}

TEST_F(StreamTest, OverflowBlockWaitIsBoundedByBlockTimeout) {
  StreamConfig cfg;
  cfg.slots = 2;
  cfg.overflow = Overflow::Block;
  cfg.block_timeout = 50ms;
  Stream& s = make(cfg);
  s.fanout().subscribe(1, every(10));
  s.start(std::nullopt);
  produce(1);
  produce(2);
  pump();
  // The subscriber holds frame 0, the cache frame 1: the ring is full.
  const auto held = take(1);
  ASSERT_EQ(seqs(held), std::vector<uint64_t>{0});
  EXPECT_EQ(s.current()->ring->counts().free, 0u);

  auto fut = std::async(std::launch::async, [&] { return cam_->loan(); });
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready) << "block_timeout was not honoured";
  EXPECT_FALSE(fut.get());
  EXPECT_EQ(s.dropped_full(), 1u);  // the frame was dropped and its seq used up
  check();
  release(1, held[0]);
  produce(3);
  pump();
  const auto next = take(1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].seq, 3u);
  release(1, next[0]);
  s.stop();
}

TEST_F(StreamTest, StopWakesABlockedProducer) {
  StreamConfig cfg;
  cfg.slots = 2;
  cfg.overflow = Overflow::Block;
  cfg.block_timeout = 20s;  // far longer than the 5 s the test waits
  Stream& s = make(cfg);
  s.fanout().subscribe(1, every(10));
  s.start(std::nullopt);
  produce(1);
  produce(2);
  pump();
  const auto held = take(1);  // frame 0; the cache holds frame 1: the ring is full
  ASSERT_EQ(held.size(), 1u);
  auto fut = std::async(std::launch::async, [&] { return cam_->loan(); });
  // One stop() is enough: it wakes a wait under way, and the interrupt is
  // sticky, so a wait that starts after it returns at once too.
  s.stop();
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready) << "stop() did not wake the producer";
  EXPECT_FALSE(fut.get());
  EXPECT_EQ(s.dropped_full(), 1u);
  auto again = std::async(std::launch::async, [&] { return cam_->loan(); });
  ASSERT_EQ(again.wait_for(5s), std::future_status::ready) << "the interrupt was not sticky";
  EXPECT_FALSE(again.get());
  EXPECT_EQ(s.dropped_full(), 2u);

  // start() resumes the waits: the producer waits for a release again.
  s.start(std::nullopt);
  auto blocked = std::async(std::launch::async, [&] { return cam_->loan(); });
  EXPECT_EQ(blocked.wait_for(100ms), std::future_status::timeout) << "loan() did not block";
  release(1, held[0]);
  ASSERT_EQ(blocked.wait_for(5s), std::future_status::ready) << "the producer was not woken";
  auto l = blocked.get();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->slot, held[0].slot);
  cam_->sink().abort(*l);
  check();
  EXPECT_EQ(s.dropped_full(), 2u);
  s.stop();
}

// snap() runs on the socket thread, the one that frees slots: with overflow
// block it must not wait for one (it could only time out).
TEST_F(StreamTest, SnapNeverBlocksEvenWithOverflowBlock) {
  StreamConfig cfg;
  cfg.slots = 2;
  cfg.overflow = Overflow::Block;
  cfg.block_timeout = 20s;  // far longer than the 5 s the test waits
  Stream& s = make(cfg);
  s.fanout().subscribe(1, every());
  s.snap();
  pump();
  s.snap();
  pump();
  const auto held = take(1);  // frame 0; the cache holds frame 1: the ring is full
  ASSERT_EQ(seqs(held), std::vector<uint64_t>{0});
  EXPECT_EQ(s.current()->ring->counts().free, 0u);
  auto fut = std::async(std::launch::async, [&] { s.snap(); });
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready) << "snap() waited for a slot";
  fut.get();
  EXPECT_EQ(s.dropped_full(), 1u);
  pump();
  EXPECT_EQ(s.latest_seq(), 1);
  check();
  release(1, held[0]);
  s.snap();
  pump();
  EXPECT_EQ(s.latest_seq(), 3);  // seq 2 went to the dropped frame
  release(1, take(1).at(0));
  check();
}

// ---------------------------------------------------------------- with the simulated camera

TEST_F(StreamTest, SimCameraFillsTheRingAndDropsTheRest) {
  StreamConfig cfg;
  cfg.name = "sim";
  cfg.slots = 4;
  auto cam = std::make_unique<fbc::SimCamera>("sim");
  fbc::SimCamera* sim = cam.get();
  sim->set("Width", "64");
  sim->set("Height", "32");
  sim->set("FrameRate", "0");
  sim->set("Pattern", "counter");
  stream_ = std::make_unique<Stream>(io_, instance_, cfg, std::move(cam), nullptr);
  Stream& s = *stream_;
  // Nobody drains while it runs, so exactly the first four frames find a slot.
  s.start(20);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (sim->running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  ASSERT_FALSE(sim->running()) << "20 frames did not finish within 5 s";
  s.stop();
  EXPECT_EQ(s.published(), 4u);
  EXPECT_EQ(s.dropped_full(), 16u);
  pump();
  check();
  EXPECT_EQ(s.latest_seq(), 3);
  const auto l = s.fanout().latest();
  ASSERT_TRUE(l);
  const auto* m = verified_meta(s.meta_of(*l));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->camera_frame_id(), 3u);
  EXPECT_EQ(m->width(), 64u);
  EXPECT_EQ(m->height(), 32u);
  // The counter pattern: pixel 0 of frame 3 holds 3.
  uint16_t px0 = 0;
  std::memcpy(&px0, s.current()->segment->writable_slot(l->slot).data(), 2);
  EXPECT_EQ(px0, 3u);
}

TEST_F(StreamTest, SimCameraSnap) {
  StreamConfig cfg;
  cfg.name = "sim";
  cfg.slots = 3;
  auto cam = std::make_unique<fbc::SimCamera>("sim");
  cam->set("Width", "32");
  cam->set("Height", "32");
  stream_ = std::make_unique<Stream>(io_, instance_, cfg, std::move(cam), nullptr);
  stream_->snap();
  pump();
  EXPECT_EQ(stream_->latest_seq(), 0);
  EXPECT_EQ(stream_->published(), 1u);
  check();
}

// The round trip (commit -> every client released it) counts each frame once, when its last
// client lets go, whether the latest-frame cache still holds it or not.
TEST_F(StreamTest, RecycleCountsAFrameWhenItsLastClientReleasesIt) {
  StreamConfig cfg;
  cfg.slots = 8;
  Stream& s = make(cfg);
  s.fanout().subscribe(1, every());
  s.fanout().subscribe(2, every());
  s.start(std::nullopt);
  produce(0x11);
  pump();
  const auto a = take(1), b = take(2);
  ASSERT_EQ(a.size(), 1u);
  release(1, a[0]);
  EXPECT_EQ(s.recycle().count(), 0u) << "subscriber 2 still holds it";
  produce(0x22);  // the cache moves on while subscriber 2 holds the first frame
  pump();
  EXPECT_EQ(s.recycle().count(), 0u) << "moving the cache is not a client's release";
  release(2, b[0]);
  EXPECT_EQ(s.recycle().count(), 1u);
  for (uint64_t sub : {1, 2})
    for (const auto& f : take(sub)) release(sub, f);
  EXPECT_EQ(s.recycle().count(), 2u) << "the second frame, still cached, counts once";
  EXPECT_GT(s.recycle().max_ns(), 0u);
  s.stop();
  s.start(std::nullopt);
  EXPECT_EQ(s.recycle().count(), 0u) << "a start begins a new count";
}
