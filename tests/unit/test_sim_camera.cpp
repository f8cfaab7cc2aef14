#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "cameras/sim/sim_camera.hpp"

namespace fbc = framebroker::cameras;
using namespace std::chrono_literals;

namespace {

// A FrameSink over one heap buffer that records every commit (with a copy of its pixels)
// and can refuse chosen loans to play a full ring.
class FakeSink : public fbc::FrameSink {
 public:
  struct Commit {
    fbc::FrameInfo info;
    std::vector<std::byte> pixels;
  };

  std::set<size_t> refuse;  // 0-based loan() calls that return nullopt

  std::optional<fbc::Loan> loan(size_t bytes) override {
    std::lock_guard lock(mutex_);
    if (refuse.count(loans_++)) return std::nullopt;
    if (buffer_.size() < bytes) buffer_.resize(bytes);
    return fbc::Loan{std::span(buffer_).first(bytes), 0, 0};
  }

  void commit(const fbc::Loan& loan, const fbc::FrameInfo& info) override {
    std::lock_guard lock(mutex_);
    commits_.push_back({info, {loan.data.begin(), loan.data.end()}});
    changed_.notify_all();
  }

  void abort(const fbc::Loan&) override {
    std::lock_guard lock(mutex_);
    ++aborts_;
  }

  void drop(std::string_view) override {
    std::lock_guard lock(mutex_);
    ++drops_;
  }

  bool wait_for_commits(size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 5s, [&] { return commits_.size() >= n; });
  }

  std::vector<Commit> commits() const {
    std::lock_guard lock(mutex_);
    return commits_;
  }

  std::vector<uint64_t> ids() const {
    std::lock_guard lock(mutex_);
    std::vector<uint64_t> out;
    for (const auto& c : commits_) out.push_back(c.info.camera_frame_id);
    return out;
  }

  size_t loans() const {
    std::lock_guard lock(mutex_);
    return loans_;
  }
  int drops() const {
    std::lock_guard lock(mutex_);
    return drops_;
  }
  int aborts() const {
    std::lock_guard lock(mutex_);
    return aborts_;
  }

  void clear() {
    std::lock_guard lock(mutex_);
    commits_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::byte> buffer_;
  std::vector<Commit> commits_;
  size_t loans_ = 0;
  int drops_ = 0;
  int aborts_ = 0;
};

bool wait_until_idle(const fbc::Camera& cam) {
  for (auto end = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(1ms))
    if (!cam.running()) return true;
  return false;
}

std::vector<uint64_t> iota_ids(uint64_t n) {
  std::vector<uint64_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

template <class T>
T pixel(const std::vector<std::byte>& pixels, size_t k) {
  T v;
  std::memcpy(&v, pixels.data() + k * sizeof(T), sizeof(T));
  return v;
}

// Every pixel k of frame f must hold (f + k) mod 2^bits; returns the first mismatch.
template <class T>
::testing::AssertionResult is_counter_frame(const FakeSink::Commit& c) {
  const uint64_t f = c.info.camera_frame_id;
  const size_t n = size_t(c.info.format.width) * c.info.format.height;
  if (c.pixels.size() != n * sizeof(T))
    return ::testing::AssertionFailure() << "frame " << f << " has " << c.pixels.size() << " bytes";
  for (size_t k = 0; k < n; ++k) {
    const T want = T((f + k) % (uint64_t(std::numeric_limits<T>::max()) + 1));
    if (pixel<T>(c.pixels, k) != want)
      return ::testing::AssertionFailure() << "frame " << f << " pixel " << k << " is "
                                           << +pixel<T>(c.pixels, k) << ", want " << +want;
  }
  return ::testing::AssertionSuccess();
}

// Unpaced, so tests never wait on FrameRate.
void make_fast(fbc::SimCamera& cam, const char* pattern = "counter") {
  cam.set("FrameRate", "0");
  cam.set("Pattern", pattern);
}

}  // namespace

TEST(PixelFormat, NamesRoundTrip) {
  for (auto t : {fbc::PixelType::Mono8, fbc::PixelType::Mono10, fbc::PixelType::Mono12,
                 fbc::PixelType::Mono14, fbc::PixelType::Mono16, fbc::PixelType::Mono32F,
                 fbc::PixelType::RGB8, fbc::PixelType::BGRA8, fbc::PixelType::RGB16})
    EXPECT_EQ(fbc::parse_pixel_type(fbc::to_string(t)), t);
  EXPECT_EQ(fbc::to_string(fbc::PixelType::Mono32F), "Mono32F");
  EXPECT_EQ(fbc::parse_pixel_type("mono16"), std::nullopt);
}

TEST(SimCamera, CounterMono16IsExactAndWrapsInsideAFrame) {
  fbc::SimCamera cam("sim0");
  make_fast(cam);
  FakeSink sink;
  cam.start(sink, 3);  // 512x512 = 4 wraps of 2^16 per frame
  ASSERT_TRUE(wait_until_idle(cam));
  auto commits = sink.commits();
  ASSERT_EQ(commits.size(), 3u);
  for (const auto& c : commits) {
    EXPECT_EQ(c.info.format.pixel_type, fbc::PixelType::Mono16);
    EXPECT_TRUE(is_counter_frame<uint16_t>(c));
  }
}

TEST(SimCamera, CounterWrapsWithTheFrameId) {
  // Tiny frames, so running past id 2^16 is quick; checks every pixel of every frame.
  fbc::SimCamera cam("sim0");
  make_fast(cam);
  cam.set("Width", "8");
  cam.set("Height", "8");
  FakeSink sink;
  cam.start(sink, 65536 + 70);
  ASSERT_TRUE(wait_until_idle(cam));
  auto commits = sink.commits();
  ASSERT_EQ(commits.size(), 65536u + 70);
  for (const auto& c : commits) ASSERT_TRUE(is_counter_frame<uint16_t>(c));
}

TEST(SimCamera, CounterMono8IsExact) {
  fbc::SimCamera cam("sim0");
  make_fast(cam);
  cam.set("PixelType", "Mono8");
  cam.set("Width", "40");
  cam.set("Height", "10");
  FakeSink sink;
  cam.start(sink, 300);  // ids past 255, and 400 pixels wrap inside each frame
  ASSERT_TRUE(wait_until_idle(cam));
  auto commits = sink.commits();
  ASSERT_EQ(commits.size(), 300u);
  for (const auto& c : commits) {
    EXPECT_EQ(c.info.format.pixel_type, fbc::PixelType::Mono8);
    ASSERT_TRUE(is_counter_frame<uint8_t>(c));
  }
  EXPECT_EQ(pixel<uint8_t>(commits[257].pixels, 0), 1);
  EXPECT_EQ(pixel<uint8_t>(commits[257].pixels, 399), uint8_t(257 + 399));
}

TEST(SimCamera, FrameCountProducesExactlyThatManyThenStops) {
  fbc::SimCamera cam("sim0");
  make_fast(cam);
  FakeSink sink;
  cam.start(sink, 7);
  ASSERT_TRUE(wait_until_idle(cam));
  EXPECT_EQ(sink.ids(), iota_ids(7));
  EXPECT_EQ(cam.frames_committed(), 7u);
  EXPECT_EQ(sink.loans(), 7u);
  EXPECT_FALSE(cam.running());
}

TEST(SimCamera, PacedFrameCountProducesExactlyThatMany) {
  fbc::SimCamera cam("sim0");
  cam.set("FrameRate", "500");
  FakeSink sink;
  cam.start(sink, 5);
  ASSERT_TRUE(wait_until_idle(cam));
  EXPECT_EQ(sink.ids(), iota_ids(5));
}

TEST(SimCamera, StartAfterStopRestartsIdsAtZero) {
  fbc::SimCamera cam("sim0");
  make_fast(cam);
  FakeSink sink;
  cam.start(sink, std::nullopt);
  ASSERT_TRUE(sink.wait_for_commits(10));
  cam.stop();
  EXPECT_FALSE(cam.running());
  const auto first = sink.ids();
  EXPECT_EQ(first, iota_ids(first.size()));

  sink.clear();
  cam.start(sink, 3);
  ASSERT_TRUE(wait_until_idle(cam));
  EXPECT_EQ(sink.ids(), iota_ids(3));

  sink.clear();
  cam.start(sink, 2);  // after a run that ended by itself
  ASSERT_TRUE(wait_until_idle(cam));
  EXPECT_EQ(sink.ids(), iota_ids(2));
  EXPECT_EQ(cam.frames_committed(), first.size() + 5);
}

TEST(SimCamera, RefusedLoanSkipsThatIdAndCarriesOn) {
  fbc::SimCamera cam("sim0");
  make_fast(cam);
  FakeSink sink;
  sink.refuse = {1, 3, 4};
  cam.start(sink, 7);
  ASSERT_TRUE(wait_until_idle(cam));
  EXPECT_EQ(sink.ids(), (std::vector<uint64_t>{0, 2, 5, 6}));
  EXPECT_EQ(sink.loans(), 7u);
  EXPECT_EQ(sink.drops(), 0);  // the sink counts its own refusals
  EXPECT_EQ(sink.aborts(), 0);
  EXPECT_EQ(cam.frames_committed(), 4u);
  for (const auto& c : sink.commits()) EXPECT_TRUE(is_counter_frame<uint16_t>(c));
}

TEST(SimCamera, StopInterruptsASlowFrameRate) {
  fbc::SimCamera cam("sim0");
  cam.set("FrameRate", "0.02");
  FakeSink sink;
  cam.start(sink, std::nullopt);
  ASSERT_TRUE(sink.wait_for_commits(1));  // frame 0 is due at once; frame 1 in 50 s
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(sink.loans(), 1u);  // paced: frame 1 is far off
  auto stopped = std::async(std::launch::async, [&] { cam.stop(); });
  ASSERT_EQ(stopped.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(cam.running());
  cam.stop();  // twice is fine
  EXPECT_EQ(sink.loans(), 1u);
}

TEST(SimCamera, StopWhenIdleIsHarmless) {
  fbc::SimCamera cam("sim0");
  cam.stop();
  cam.stop();
  EXPECT_FALSE(cam.running());
}

TEST(SimCamera, NewFrameRateAppliesWhileWaiting) {
  fbc::SimCamera cam("sim0");
  cam.set("FrameRate", "0.01");  // next frame in 100 s
  FakeSink sink;
  cam.start(sink, std::nullopt);
  ASSERT_TRUE(sink.wait_for_commits(1));
  cam.set("FrameRate", "0");
  EXPECT_TRUE(sink.wait_for_commits(20));
  cam.stop();
  const auto ids = sink.ids();
  EXPECT_EQ(ids, iota_ids(ids.size()));
}

TEST(SimCamera, DefaultFormat) {
  fbc::SimCamera cam("sim0");
  EXPECT_EQ(cam.name(), "sim0");
  EXPECT_EQ(cam.driver(), "sim");
  const auto f = cam.format();
  EXPECT_EQ(f.width, 512u);
  EXPECT_EQ(f.height, 512u);
  EXPECT_EQ(f.stride, 1024u);
  EXPECT_EQ(f.pixel_type, fbc::PixelType::Mono16);
  EXPECT_EQ(f.bit_depth, 16);
  EXPECT_EQ(f.frame_bytes(), 512u * 1024);
  EXPECT_EQ(cam.properties().names(),
            (std::vector<std::string>{"Width", "Height", "PixelType", "BitDepth", "Exposure",
                                      "FrameRate", "Binning", "Pattern", "Seed"}));
}

TEST(SimCamera, FormatFollowsProperties) {
  fbc::SimCamera cam("sim0");
  cam.set("Width", "640");
  cam.set("Height", "480");
  cam.set("PixelType", "Mono8");
  cam.set("Binning", "2");
  EXPECT_EQ(cam.get("BitDepth"), "8");
  const auto f = cam.format();
  EXPECT_EQ(f.width, 320u);
  EXPECT_EQ(f.height, 240u);
  EXPECT_EQ(f.stride, 320u);
  EXPECT_EQ(f.pixel_type, fbc::PixelType::Mono8);
  EXPECT_EQ(f.bit_depth, 8);
  EXPECT_EQ(f.roi_x, 0u);
  EXPECT_EQ(f.roi_y, 0u);
  EXPECT_EQ(f.roi_w, 320u);
  EXPECT_EQ(f.roi_h, 240u);
  EXPECT_EQ(f.binning_x, 2);
  EXPECT_EQ(f.binning_y, 2);

  cam.set("PixelType", "Mono16");
  cam.set("Binning", "4");
  EXPECT_EQ(cam.get("BitDepth"), "16");
  EXPECT_EQ(cam.format().width, 160u);
  EXPECT_EQ(cam.format().stride, 320u);
  EXPECT_EQ(cam.format().bit_depth, 16);

  FakeSink sink;
  cam.set("Exposure", "2.5");
  cam.snap(sink);
  ASSERT_EQ(sink.commits().size(), 1u);
  EXPECT_EQ(sink.commits()[0].info.format, cam.format());
  EXPECT_EQ(sink.commits()[0].pixels.size(), cam.format().frame_bytes());
  EXPECT_DOUBLE_EQ(sink.commits()[0].info.exposure_us, 2500);
  EXPECT_FALSE(sink.commits()[0].info.hw_timestamp_ns);
}

TEST(SimCamera, FormatPropertiesAreBusyWhileRunning) {
  fbc::SimCamera cam("sim0");
  cam.set("FrameRate", "0.5");
  FakeSink sink;
  cam.start(sink, std::nullopt);
  for (const char* prop : {"Width", "Height", "PixelType", "Binning"}) {
    try {
      cam.set(prop, prop == std::string("PixelType") ? "Mono8" : "2");
      ADD_FAILURE() << prop << " changed while running";
    } catch (const fbc::PropertyError& e) {
      EXPECT_EQ(e.kind, fbc::PropertyError::Kind::Busy) << prop;
    }
  }
  cam.set("Exposure", "3");  // not a format property
  EXPECT_EQ(cam.get("Exposure"), "3");
  cam.stop();
  cam.set("Width", "256");
  EXPECT_EQ(cam.format().width, 256u);
}

TEST(SimCamera, PropertyErrors) {
  fbc::SimCamera cam("sim0");
  using Kind = fbc::PropertyError::Kind;
  auto kind_of = [&](const char* prop, const char* value) -> std::optional<Kind> {
    try {
      cam.set(prop, value);
    } catch (const fbc::PropertyError& e) {
      return e.kind;
    }
    return std::nullopt;
  };
  EXPECT_EQ(kind_of("Foo", "1"), Kind::Unknown);
  EXPECT_EQ(kind_of("Width", "99999"), Kind::Invalid);
  EXPECT_EQ(kind_of("Width", "4"), Kind::Invalid);
  EXPECT_EQ(kind_of("Width", "12x"), Kind::Invalid);
  EXPECT_EQ(kind_of("PixelType", "Mono12"), Kind::Invalid);
  EXPECT_EQ(kind_of("Pattern", "stars"), Kind::Invalid);
  EXPECT_EQ(kind_of("Binning", "3"), Kind::Invalid);
  EXPECT_EQ(kind_of("Binning", "8"), Kind::Invalid);
  EXPECT_EQ(kind_of("Exposure", "0"), Kind::Invalid);
  EXPECT_EQ(kind_of("FrameRate", "-1"), Kind::Invalid);
  EXPECT_EQ(kind_of("Seed", "-1"), Kind::Invalid);
  EXPECT_EQ(kind_of("Seed", "2147483648"), Kind::Invalid);
  EXPECT_EQ(kind_of("BitDepth", "8"), Kind::ReadOnly);
  EXPECT_EQ(kind_of("Seed", "2147483647"), std::nullopt);
  EXPECT_EQ(cam.get("Width"), "512");
  EXPECT_EQ(cam.get("BitDepth"), "16");
}

TEST(SimCamera, SnapProducesExactlyOneFrame) {
  fbc::SimCamera cam("sim0");
  make_fast(cam);
  FakeSink sink;
  cam.snap(sink);
  cam.snap(sink);
  EXPECT_EQ(sink.ids(), (std::vector<uint64_t>{0, 0}));
  EXPECT_EQ(sink.loans(), 2u);
  EXPECT_EQ(cam.frames_committed(), 2u);
  EXPECT_FALSE(cam.running());
  EXPECT_TRUE(is_counter_frame<uint16_t>(sink.commits()[1]));
}

TEST(SimCamera, SnapAndStartRefuseWhileRunning) {
  fbc::SimCamera cam("sim0");
  cam.set("FrameRate", "0.5");
  FakeSink sink;
  cam.start(sink, std::nullopt);
  EXPECT_THROW(cam.snap(sink), fbc::CameraError);
  EXPECT_THROW(cam.start(sink, std::nullopt), fbc::CameraError);
  cam.stop();
  sink.clear();
  cam.snap(sink);
  EXPECT_EQ(sink.ids(), (std::vector<uint64_t>{0}));
}

TEST(SimCamera, SnapWithFullRingThrows) {
  fbc::SimCamera cam("sim0");
  FakeSink sink;
  sink.refuse = {0};
  EXPECT_THROW(cam.snap(sink), fbc::CameraError);
  EXPECT_EQ(cam.frames_committed(), 0u);
}

TEST(SimCamera, DestructorStopsARunningCamera) {
  FakeSink sink;
  {
    fbc::SimCamera cam("sim0");
    cam.set("FrameRate", "0");
    cam.start(sink, std::nullopt);
    ASSERT_TRUE(sink.wait_for_commits(2));
  }
  const size_t loans = sink.loans();
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(sink.loans(), loans);
}

// The non-counter patterns: plausible content, deterministic for a seed and frame id.
TEST(SimCamera, PatternsLookRight) {
  auto snap_of = [](const char* pattern, const char* seed = "1") {
    fbc::SimCamera cam("sim0");
    cam.set("Pattern", pattern);
    cam.set("Seed", seed);
    FakeSink sink;
    cam.snap(sink);
    return sink.commits().at(0).pixels;
  };
  auto as_u16 = [](const std::vector<std::byte>& b) {
    std::vector<uint16_t> v(b.size() / 2);
    std::memcpy(v.data(), b.data(), b.size());
    return v;
  };

  auto empty = as_u16(snap_of("empty"));
  EXPECT_TRUE(std::all_of(empty.begin(), empty.end(), [](uint16_t v) { return v == 0; }));

  auto spots = as_u16(snap_of("spots"));
  std::vector<uint16_t> sorted = spots;
  std::sort(sorted.begin(), sorted.end());
  const uint16_t median = sorted[sorted.size() / 2];
  EXPECT_GT(median, 65535 * 0.03);  // dim background, about 5%
  EXPECT_LT(median, 65535 * 0.07);
  EXPECT_GT(sorted.back(), 65535 * 0.6);  // bead peaks near 3/4 of full scale
  EXPECT_LT(sorted.back(), 65535 * 0.85);
  EXPECT_NE(sorted.front(), sorted[sorted.size() / 4]);  // some background noise
  EXPECT_EQ(snap_of("spots"), snap_of("spots"));
  EXPECT_NE(snap_of("spots", "1"), snap_of("spots", "2"));

  auto noise = snap_of("noise");
  EXPECT_EQ(noise, snap_of("noise"));
  EXPECT_NE(noise, snap_of("noise", "2"));
  auto noise16 = as_u16(noise);
  std::set<uint16_t> distinct(noise16.begin(), noise16.end());
  EXPECT_GT(distinct.size(), 30000u);

  auto gradient = as_u16(snap_of("gradient"));
  EXPECT_LT(gradient[0], gradient[100]);        // rises along a row
  EXPECT_EQ(gradient[1], gradient[512]);        // diagonal: (1,0) == (0,1)
  EXPECT_NE(gradient[0], gradient[512 * 511]);  // and down a column
}

TEST(SimCamera, PatternsMoveWithTheFrameId) {
  for (const char* pattern : {"spots", "gradient", "noise"}) {
    fbc::SimCamera cam("sim0");
    make_fast(cam, pattern);
    FakeSink sink;
    cam.start(sink, 40);
    ASSERT_TRUE(wait_until_idle(cam));
    auto commits = sink.commits();
    ASSERT_EQ(commits.size(), 40u);
    EXPECT_NE(commits[0].pixels, commits[39].pixels) << pattern;
  }
}

TEST(SimCamera, AFreeRunningCameraDoesNotSpinWhileTheRingIsFull) {
  fbc::SimCamera cam("sim");
  cam.set("FrameRate", "0");
  cam.set("Width", "64");
  cam.set("Height", "64");
  FakeSink sink;
  for (size_t i = 0; i < 1'000'000; ++i) sink.refuse.insert(i);  // a ring that stays full
  cam.start(sink, std::nullopt);
  std::this_thread::sleep_for(200ms);
  cam.stop();
  // At least 50 us per refused frame: a spinning loop would make hundreds of
  // thousands of loans (and burn a seq on each) in this time.
  EXPECT_LT(sink.loans(), 200ms / 50us + 100);
  EXPECT_GT(sink.loans(), 0u);
}
