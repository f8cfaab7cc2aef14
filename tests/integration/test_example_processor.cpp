// examples/processor.cpp as a user would run it: a simulated camera -> the example (2x2 bin,
// published with Overflow::Block) -> a subscriber, which checks every output pixel against the
// bin computed here from the camera's counter pattern, every frame and the provenance.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

constexpr uint32_t kWidth = 64, kHeight = 48;

// The sim camera's counter pattern: pixel k of frame id f holds (f + k) mod 2^16.
uint16_t counter(uint64_t id, uint32_t x, uint32_t y) {
  return uint16_t(id + uint64_t(y) * kWidth + x);
}

// The 2x2 mean, computed independently of the example.
uint16_t binned(uint64_t id, uint32_t x, uint32_t y) {
  uint32_t sum = 0;
  for (uint32_t dy = 0; dy < 2; ++dy)
    for (uint32_t dx = 0; dx < 2; ++dx) sum += counter(id, 2 * x + dx, 2 * y + dy);
  return uint16_t(sum / 4);
}

bool has_stream(const json& s, const std::string& name) {
  for (const auto& st : s["streams"])
    if (st["name"] == name) return true;
  return false;
}

}  // namespace

TEST(ExampleProcessor, BinsEveryFrameOfACameraWithProvenance) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=" + std::to_string(kWidth) + ",Height=" + std::to_string(kHeight) +
                ",PixelType=Mono16,Pattern=counter,FrameRate=200,slots=64,start=false"});
  Process proc({FB_EXAMPLE_PROCESSOR_BIN, "cam", "cam.bin2", b.socket()},
               b.runtime_dir() + "/processor");
  ASSERT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "cam.bin2"); })) << proc.err();
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  // A small max_hold and pauses below: the example has to wait for us (Block), never drop;
  // meanwhile the camera's frames wait in its 64 slots (a camera cannot be held back).
  auto sub = client.subscribe("cam.bin2", {.mode = framebroker::Mode::Every, .max_hold = 2});
  constexpr int kFrames = 200;
  ASSERT_EQ(b.fbctl({"start", "cam", "--frames", std::to_string(kFrames)}).exit_code, 0);

  std::optional<int64_t> first_source;
  for (int i = 0; i < kFrames; ++i) {
    auto f = sub.next(10s);
    ASSERT_TRUE(f) << "frame " << i << " never came; " << proc.err();
    EXPECT_EQ(f->seq(), uint64_t(i));
    ASSERT_EQ(f->width(), kWidth / 2);
    ASSERT_EQ(f->height(), kHeight / 2);
    ASSERT_EQ(f->pixel_type(), framebroker::PixelType::Mono16);
    const auto& m = f->meta();
    ASSERT_NE(m.source_stream(), nullptr);
    EXPECT_EQ(m.source_stream()->str(), "cam");
    if (!first_source) first_source = m.source_seq();
    EXPECT_EQ(m.source_seq(), *first_source + i) << "a gap in source_seq";
    const uint64_t id = f->camera_frame_id();
    const auto* px = reinterpret_cast<const uint16_t*>(f->pixels().data());
    int wrong = 0;
    for (uint32_t y = 0; y < kHeight / 2; ++y)
      for (uint32_t x = 0; x < kWidth / 2; ++x)
        wrong += px[y * (f->stride() / 2) + x] != binned(id, x, y);
    EXPECT_EQ(wrong, 0) << "frame " << i << " (camera frame " << id << ")";
    if (i % 40 == 0) std::this_thread::sleep_for(20ms);  // a slow moment
  }
  EXPECT_EQ(*first_source, 0);
  EXPECT_FALSE(sub.next(300ms).has_value()) << "more frames than the camera made";

  const json s = b.status();
  EXPECT_EQ(stream_of(s, "cam")["dropped"], 0);
  EXPECT_EQ(stream_of(s, "cam.bin2")["published"], kFrames);
  EXPECT_EQ(stream_of(s, "cam.bin2")["producer"]["kind"], "client");
  for (const auto& x : subscribers(s)) EXPECT_EQ(x["missed"], 0) << x.dump();

  // SIGTERM: the example leaves its loop, and the output ends after its last frame.
  proc.signal(SIGTERM);
  const auto st = proc.wait(10s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << proc.err();
  EXPECT_FALSE(sub.next(5s).has_value());
  EXPECT_TRUE(sub.ended());
}

TEST(ExampleProcessor, StopsWhenItsSourceEnds) {
  Broker b({"--no-default-camera"});
  // The source is itself a published stream, whose producer makes 3 frames and then holds on.
  Process pub({FB_PUBLISHER_BIN, b.socket(), "src2", "hold"}, b.runtime_dir() + "/pub");
  ASSERT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "src2"); })) << pub.err();
  Process proc({FB_EXAMPLE_PROCESSOR_BIN, "src2", "src2.bin2", b.socket()},
               b.runtime_dir() + "/processor");
  ASSERT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "src2.bin2"); }))
      << proc.err();
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("src2.bin2", {.mode = framebroker::Mode::Every});
  // The source's producer goes: the example sees the end, exits 0, and its own stream ends.
  pub.signal(SIGKILL);
  const auto st = proc.wait(10s);
  ASSERT_TRUE(st.has_value()) << "the example kept running after its source ended";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << proc.err();
  while (sub.next(5s)) {
  }
  EXPECT_TRUE(sub.ended());
}
