// The aravis adapter on Aravis' in-process Fake camera, feeding a real Stream (the broker's ring
// and fanout, without sockets): the pixels land where Aravis wrote them (zero copy), no frame is
// memcpy'd on the broker side, 16-bit frame ids are widened, start/stop leaks no slot, and a
// genicam.* value reaches exactly one feature node.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cameras/aravis/aravis_camera.hpp"
#include "daemon/stream.hpp"
#include "framebroker/frame_meta_generated.h"

// fb_unit_tests links with -Wl,--wrap=memcpy: every memcpy call of our code (broker, adapter)
// comes here, so a copy of a whole frame would be counted.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<size_t> g_frame_bytes{0};
std::atomic<uint64_t> g_frame_copies{0};
}  // namespace

extern "C" void* __real_memcpy(void* dst, const void* src, size_t n);
extern "C" void* __wrap_memcpy(void* dst, const void* src, size_t n) {
  if (g_counting.load(std::memory_order_relaxed) && n >= g_frame_bytes.load()) ++g_frame_copies;
  return __real_memcpy(dst, src, n);
}

namespace {

using namespace std::chrono_literals;
namespace fbc = framebroker::cameras;
namespace fbd = framebroker::daemon;

class AravisFake : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cam = std::make_unique<fbc::AravisCamera>("arv", "Fake_1");
    cam->set("FrameRate", "500");
    cam_ = cam.get();
    fbd::StreamConfig cfg;
    cfg.name = "arv";
    cfg.slots = 16;
    stream_ = std::make_unique<fbd::Stream>(io_, "ut-arv-" + std::to_string(getpid()), cfg,
                                            std::move(cam), [](fbd::Stream&) {});
  }
  void TearDown() override {
    if (stream_) stream_->stop();
    stream_.reset();
  }

  // Runs the socket thread's side until `n` more frames were committed (or 20 s passed).
  bool run_frames(uint64_t n) {
    const uint64_t target = cam_->frames_committed() + n;
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (cam_->frames_committed() < target && std::chrono::steady_clock::now() < end) {
      io_.restart();
      io_.run_for(10ms);
    }
    io_.restart();
    io_.poll();
    return cam_->frames_committed() >= target;
  }

  boost::asio::io_context io_;
  fbc::AravisCamera* cam_ = nullptr;
  std::unique_ptr<fbd::Stream> stream_;
};

}  // namespace

TEST_F(AravisFake, FramesLandInTheSlotAravisFilledAndAreNeverCopied) {
  const auto fmt = cam_->format();
  ASSERT_EQ(fmt.width, 512u);
  ASSERT_EQ(fmt.pixel_type, fbc::PixelType::Mono8);
  g_frame_bytes = fmt.frame_bytes();
  g_counting = true;
  bool counter_works;
  {  // does the counter see a frame-sized memcpy of our code? (Not under ASan, which
     // intercepts memcpy before the wrapper.)
    std::vector<char> a(fmt.frame_bytes() + size_t(getpid() % 2)), b(a.size());
    std::memcpy(b.data(), a.data(), a.size());
    counter_works = g_frame_copies.exchange(0) == 1;
  }
  stream_->start(std::nullopt);
  const bool got = run_frames(300);
  stream_->stop();
  g_counting = false;
  io_.restart();
  io_.poll();  // the socket thread's drain of the last commits
  ASSERT_TRUE(got) << cam_->last_error();
  if (counter_works)
    EXPECT_EQ(g_frame_copies.load(), 0u) << "a whole frame was memcpy'd";
  else
    std::cout << "[   info   ] memcpy is intercepted here (sanitizer build): copies not counted\n";

  // The last buffer Aravis filled is a slot of the shared-memory segment, at the slot's offset.
  fbd::Generation* g = stream_->current();
  const void* filled = cam_->last_buffer_data();
  std::optional<uint32_t> slot;
  for (uint32_t i = 0; i < g->segment->slots(); ++i)
    if (g->segment->writable_slot(i).data() == filled) slot = i;
  ASSERT_TRUE(slot) << "Aravis wrote outside the ring";
  // ... and it holds the newest frame, with a widened id: the Fake starts near the 16-bit wrap.
  EXPECT_EQ(int64_t(g->segment->records()[*slot].seq), stream_->latest_seq());
  const auto& meta = g->meta[*slot];
  const auto* m = framebroker::meta::GetFrameMeta(meta.data());
  EXPECT_GT(m->camera_frame_id(), 65535u) << "300 frames from 65401 cross the wrap";
}

TEST_F(AravisFake, StartStopCyclesLeakNoSlot) {
  for (int i = 0; i < 5; ++i) {
    stream_->start(std::nullopt);
    ASSERT_TRUE(run_frames(20)) << cam_->last_error();
    stream_->stop();
    io_.restart();
    io_.poll();
  }
  const auto c = stream_->current()->ring->counts();
  EXPECT_EQ(c.writing, 0u) << "slots still lent to Aravis";
  EXPECT_LE(c.ready, 1u);  // the latest cache
  EXPECT_EQ(c.free + c.ready, stream_->current()->segment->slots());
}

TEST_F(AravisFake, PropertiesAndGenicamFeaturesReadBack) {
  cam_->set("Width", "256");
  cam_->set("Height", "128");
  EXPECT_EQ(cam_->get("Width"), "256");
  EXPECT_EQ(cam_->format().frame_bytes(), 256u * 128u);
  cam_->set("Exposure", "2.5");  // ms
  EXPECT_EQ(cam_->get("genicam.ExposureTimeAbs"), "2500");
  cam_->set("genicam.AcquisitionFrameRate", "40");
  EXPECT_EQ(cam_->get("FrameRate"), "40");
  EXPECT_EQ(cam_->get("genicam.DeviceModelName"), "Fake");
  EXPECT_TRUE(cam_->properties().has("genicam.DeviceModelName"));
  EXPECT_THROW(cam_->get("genicam.NoSuchFeature"), fbc::PropertyError);
  EXPECT_THROW(cam_->set("genicam.DeviceModelName", "x"), fbc::PropertyError);
  EXPECT_THROW(cam_->set("Width", "99999"), fbc::PropertyError);
  stream_->start(std::nullopt);
  EXPECT_THROW(cam_->set("Width", "64"), fbc::PropertyError) << "format change while running";
  ASSERT_TRUE(run_frames(5));
  stream_->stop();
  EXPECT_EQ(stream_->current()->segment->slot_bytes() >= 256u * 128u, true);
}

namespace {

// The kind of PropertyError `f` throws, or nullopt when it throws none.
template <typename F>
std::optional<fbc::PropertyError::Kind> refusal(F&& f) {
  try {
    f();
  } catch (const fbc::PropertyError& e) {
    return e.kind;
  }
  return std::nullopt;
}

}  // namespace

// Aravis' feature strings are space-separated assignments and accept raw register writes
// (R[addr]=value). A genicam.* value or name that carries one must be refused and change nothing:
// the device's Width and Height stay, also while running, when they are format-locked.
TEST_F(AravisFake, GenicamValuesAndNamesCannotSmuggleAssignmentsOrRegisterWrites) {
  const std::string rate = cam_->get("genicam.AcquisitionFrameRate");
  auto unchanged = [&](const std::string& what) {
    EXPECT_EQ(cam_->get("genicam.Width"), "512") << what;
    EXPECT_EQ(cam_->get("genicam.Height"), "512") << what;
    EXPECT_EQ(cam_->get("Width"), "512") << what;
    EXPECT_EQ(cam_->get("genicam.AcquisitionFrameRate"), rate) << what;
    // So that each case is judged on its own.
    cam_->set("Width", "512");
    cam_->set("Height", "512");
    cam_->set("FrameRate", rate);
  };
  const std::vector<std::string> values = {
      "1 Width=64",  "1\tHeight=64", "1\nWidth=64",        "1 R[0x100]=64",     "1 R[0x104]=0x40",
      "R[0x100]=64", "1 'Width'=64", "1 \"Width\"=\"64\"", "1 AcquisitionStop",
  };
  for (const auto& v : values) {
    EXPECT_EQ(refusal([&] { cam_->set("genicam.AcquisitionFrameRate", v); }),
              fbc::PropertyError::Kind::Invalid)
        << "value '" << v << "'";
    unchanged("after value '" + v + "'");
  }
  const std::vector<std::string> names = {
      "genicam.Width=64", "genicam.AcquisitionFrameRate=1 Width",
      "genicam.R[0x100]", "genicam.Width Height",
      "genicam.",         "genicam.Width\n",
  };
  for (const auto& n : names) {
    EXPECT_EQ(refusal([&] { cam_->set(n, "64"); }), fbc::PropertyError::Kind::Invalid)
        << "name '" << n << "'";
    EXPECT_EQ(refusal([&] { cam_->get(n); }), fbc::PropertyError::Kind::Invalid)
        << "name '" << n << "'";
    unchanged("after name '" + n + "'");
  }

  // While running, Width is busy: a second assignment riding on another feature must not get
  // past that check either.
  stream_->start(std::nullopt);
  ASSERT_TRUE(run_frames(3)) << cam_->last_error();
  EXPECT_EQ(refusal([&] { cam_->set("genicam.Width", "64"); }), fbc::PropertyError::Kind::Busy);
  EXPECT_EQ(refusal([&] { cam_->set("genicam.AcquisitionFrameRate", "100 Width=64"); }),
            fbc::PropertyError::Kind::Invalid);
  EXPECT_EQ(refusal([&] { cam_->set("genicam.AcquisitionFrameRate", "100 R[0x100]=64"); }),
            fbc::PropertyError::Kind::Invalid);
  stream_->stop();
  unchanged("after the running attempts");
  EXPECT_EQ(cam_->format().width, 512u);
}

TEST_F(AravisFake, GenicamFeaturesAreSetWithTheCallForTheirType) {
  cam_->set("genicam.Width", "256");  // integer
  EXPECT_EQ(cam_->get("genicam.Width"), "256");
  EXPECT_EQ(cam_->get("Width"), "256") << "the named mirror follows";
  cam_->set("genicam.Width", "0x100");
  EXPECT_EQ(cam_->get("genicam.Width"), "256");
  EXPECT_EQ(refusal([&] { cam_->set("genicam.Width", "12abc"); }),
            fbc::PropertyError::Kind::Invalid);
  EXPECT_EQ(refusal([&] { cam_->set("genicam.Width", "100000"); }),
            fbc::PropertyError::Kind::Invalid)
      << "above the node's maximum";

  cam_->set("genicam.PixelFormat", "Mono16");  // enumeration
  EXPECT_EQ(cam_->get("PixelType"), "Mono16");
  EXPECT_EQ(cam_->get("genicam.PixelFormat"), "Mono16");  // and the listing has it now
  EXPECT_EQ(cam_->properties().info("genicam.PixelFormat").type, fbc::PropertyType::Enum)
      << "an enumeration is listed as one, not as the integer it also is";
  EXPECT_EQ(refusal([&] { cam_->set("genicam.PixelFormat", "Mono99"); }),
            fbc::PropertyError::Kind::Invalid);

  cam_->set("genicam.AcquisitionFrameRate", "40");  // float
  EXPECT_EQ(cam_->get("FrameRate"), "40");
  EXPECT_EQ(refusal([&] { cam_->set("genicam.AcquisitionFrameRate", "fast"); }),
            fbc::PropertyError::Kind::Invalid);

  cam_->set("genicam.TestBoolean", "true");  // boolean
  EXPECT_EQ(cam_->get("genicam.TestBoolean"), "true");
  cam_->set("genicam.TestBoolean", "0");
  EXPECT_EQ(cam_->get("genicam.TestBoolean"), "false");
  EXPECT_EQ(refusal([&] { cam_->set("genicam.TestBoolean", "maybe"); }),
            fbc::PropertyError::Kind::Invalid);

  cam_->set("genicam.TestStringReg", "hello");  // string
  EXPECT_EQ(cam_->get("genicam.TestStringReg"), "hello");

  EXPECT_EQ(refusal([&] { cam_->set("genicam.AcquisitionStart", "1"); }),
            fbc::PropertyError::Kind::ReadOnly)
      << "commands are not run through properties";
}
