// fbproc's reductions along a sequence axis, end to end: a real broker with a counter camera
// running a sequence, a real fbproc process, and a subscriber through the client library. The
// output is a sequence of its own (the reduced axes), and each frame's pixels are checked
// against a max or mean computed here, pixel by pixel, from the counter pattern.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using framebroker::SequenceSpec;
using nlohmann::json;

namespace {

// 256 x 256 pixels: the counter (camera frame id + k) mod 2^16 wraps inside every frame, so
// the max of a volume is not simply its last plane.
constexpr uint32_t kWidth = 256, kHeight = 256, kPixels = kWidth * kHeight;

std::vector<std::string> camera() {
  return {"--no-default-camera", "--camera",
          "sim:name=cam,Width=" + std::to_string(kWidth) + ",Height=" + std::to_string(kHeight) +
              ",Pattern=counter,FrameRate=500,slots=64,start=false"};
}

uint16_t counter(uint64_t frame_id, uint32_t k) {
  return uint16_t(frame_id + k);
}

std::unique_ptr<Process> fbproc(Broker& b, const std::string& op, const std::string& to = "out") {
  return std::make_unique<Process>(std::vector<std::string>{FB_FBPROC_BIN, "--from", "cam", "--to",
                                                            to, "--op", op, "--socket", b.socket()},
                                   b.runtime_dir() + "/fbproc-" + to);
}

bool has_stream(const json& status, const std::string& name) {
  for (const auto& s : status["streams"])
    if (s["name"] == name) return true;
  return false;
}

int exit_code(Process& p, std::chrono::milliseconds t = 15s) {
  auto st = p.wait(t);
  if (!st) return -1;
  return WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
}

struct Output {
  std::vector<uint32_t> t, c, z;
  std::vector<uint64_t> camera_frame_id;
  std::vector<std::vector<uint16_t>> pixels;
};

// Runs `spec` on the camera through `fbproc --op op`; takes the output sequence's frames.
Output run_through(Broker& b, const std::string& op, const SequenceSpec& spec,
                   std::shared_ptr<const framebroker::Sequence>& out_seq,
                   std::optional<framebroker::SequenceEnd>& out_end) {
  auto proc = fbproc(b, op);
  EXPECT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "out"); })) << proc->err();
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("out", {.mode = framebroker::Mode::Every, .max_hold = 16});
  client.camera("cam").start(spec);
  Output got;
  for (int idle = 0; idle < 100 && !sub.sequence_end();) {
    auto f = sub.next(100ms);
    if (!f) {
      ++idle;
      continue;
    }
    got.t.push_back(f->index('t').value_or(0));
    got.c.push_back(f->index('c').value_or(0));
    got.z.push_back(f->index('z').value_or(0));
    got.camera_frame_id.push_back(f->camera_frame_id());
    EXPECT_EQ(f->pixels().size_bytes(), kPixels * 2u);
    const auto* px = reinterpret_cast<const uint16_t*>(f->pixels().data());
    got.pixels.emplace_back(px, px + kPixels);
  }
  out_seq = sub.sequence();
  out_end = sub.sequence_end();
  EXPECT_EQ(stream_of(b.status(), "cam")["dropped"], 0) << "the test needs a lossless run";
  proc->signal(SIGTERM);
  EXPECT_EQ(exit_code(*proc), 0) << proc->err();
  return got;
}

}  // namespace

// t=2,c=2,z=5 -> max-project=z: a sequence t=2,c=2 of 4 frames, each the max over the 5 z
// planes of its volume, from the first plane's provenance.
TEST(FbprocSequences, MaxProjectZGivesOneFramePerVolume) {
  Broker b(camera());
  auto spec = SequenceSpec::parse("t=2,c=2,z=5", "tcz");
  spec.channels = {"488", "561"};
  spec.z_step_um = 0.5;
  spec.interval_ms = 10;
  spec.metadata = R"({"axis_order": "tcz", "note": "mip"})";
  std::shared_ptr<const framebroker::Sequence> seq;
  std::optional<framebroker::SequenceEnd> end;
  const Output got = run_through(b, "max-project=z", spec, seq, end);

  ASSERT_NE(seq, nullptr) << "no output sequence";
  EXPECT_EQ(seq->spec.axes_text(), "t=2,c=2");
  EXPECT_EQ(seq->spec.order(), "tc");
  EXPECT_EQ(seq->spec.channels, spec.channels);
  EXPECT_EQ(seq->spec.interval_ms, 10);
  EXPECT_EQ(seq->spec.metadata, spec.metadata);
  ASSERT_TRUE(end) << "no SequenceFinished on the output";
  EXPECT_TRUE(end->complete);
  EXPECT_EQ(end->frames, 4u);
  ASSERT_EQ(got.pixels.size(), 4u);
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    const uint64_t volume = got.t[i] * 2 + got.c[i];
    EXPECT_EQ(volume, i) << "outputs in acquisition order";
    EXPECT_EQ(got.camera_frame_id[i], volume * 5) << "provenance: the volume's first plane";
    uint64_t bad = 0;
    for (uint32_t k = 0; k < kPixels; ++k) {
      uint16_t expect = 0;
      for (uint64_t z = 0; z < 5; ++z) expect = std::max(expect, counter(volume * 5 + z, k));
      bad += got.pixels[i][k] != expect;
    }
    EXPECT_EQ(bad, 0u) << "volume t=" << got.t[i] << " c=" << got.c[i];
  }
}

// t=4,c=1,z=2 -> mean=t:2: a sequence t=2,c=1,z=2, each frame the mean (rounded down) of the
// same (c, z) plane at two consecutive time points; the interval doubles.
TEST(FbprocSequences, MeanOverBlocksOfTimePoints) {
  Broker b(camera());
  auto spec = SequenceSpec::parse("t=4,c=1,z=2", "tcz");
  spec.interval_ms = 10;
  std::shared_ptr<const framebroker::Sequence> seq;
  std::optional<framebroker::SequenceEnd> end;
  const Output got = run_through(b, "mean=t:2", spec, seq, end);

  ASSERT_NE(seq, nullptr) << "no output sequence";
  EXPECT_EQ(seq->spec.axes_text(), "t=2,c=1,z=2");
  EXPECT_EQ(seq->spec.interval_ms, 20);
  ASSERT_TRUE(end) << "no SequenceFinished on the output";
  EXPECT_EQ(end->frames, 4u);
  ASSERT_EQ(got.pixels.size(), 4u);
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    const uint64_t first = uint64_t(got.t[i]) * 4 + got.z[i];  // (t=2T, z) and (t=2T+1, z)
    uint64_t bad = 0;
    for (uint32_t k = 0; k < kPixels; ++k) {
      const uint16_t expect = uint16_t((uint32_t(counter(first, k)) + counter(first + 2, k)) / 2);
      bad += got.pixels[i][k] != expect;
    }
    EXPECT_EQ(bad, 0u) << "output t=" << got.t[i] << " z=" << got.z[i];
  }
}

// An axis op needs a sequence with that axis: clear errors, exit 1.
TEST(FbprocSequences, AxisOpsRefuseStreamsWithoutTheAxis) {
  Broker b(camera());
  {
    auto proc = fbproc(b, "max-project=z");
    ASSERT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "out"); })) << proc->err();
    ASSERT_EQ(b.fbctl({"start", "cam", "--frames", "3"}).exit_code, 0);
    EXPECT_EQ(exit_code(*proc), 1) << proc->err();
    EXPECT_NE(proc->err().find("reduces an axis of a sequence"), std::string::npos) << proc->err();
  }
  {
    auto proc = fbproc(b, "max-project=p", "out2");
    ASSERT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "out2"); })) << proc->err();
    ASSERT_EQ(b.fbctl({"start", "cam", "--frames", "4", "--axes", "t=2,z=2"}).exit_code, 0);
    EXPECT_EQ(exit_code(*proc), 1) << proc->err();
    EXPECT_NE(proc->err().find("reduces the p axis, but the sequence (t=2,z=2) has none"),
              std::string::npos)
        << proc->err();
  }
  const Result bad =
      run({FB_FBPROC_BIN, "--from", "cam", "--to", "x", "--op", "mean=t2", "--socket", b.socket()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("write it as mean=t (the whole axis) or mean=t:K"), std::string::npos)
      << bad.err;
}

// A publisher's explicit indices, out of order and with a plane never sent: max-project=z
// groups by the z index, not by arrival, and a lost plane simply does not contribute (its
// volume is made when a frame past it arrives).
TEST(FbprocSequences, MaxProjectGroupsByIndexAndLostPlanesDoNotContribute) {
  Broker b(camera());
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto pub = client.advertise("made", {.width = 32, .height = 16, .pixel_type = "Mono16"});
  Process proc({FB_FBPROC_BIN, "--from", "made", "--to", "mip", "--op", "max-project=z", "--socket",
                b.socket()},
               b.runtime_dir() + "/fbproc-mip");
  ASSERT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "mip"); })) << proc.err();
  auto reader = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = reader.subscribe("mip", {.mode = framebroker::Mode::Every, .max_hold = 8});

  // Pixel k of plane (t, z): differs by z in a way that makes the max a mix of planes.
  auto plane = [](uint32_t t, uint32_t z, uint32_t k) {
    return uint16_t((k * (z + 1) * 37 + t) % 1000);
  };
  const std::vector<std::array<uint32_t, 2>> sent = {{0, 2}, {0, 0}, {1, 1}, {1, 0}, {1, 2}};
  pub.begin_sequence(SequenceSpec::parse("t=2,z=3", "tz"));
  for (const auto& [t, z] : sent) {
    auto loan = pub.loan(5s);
    ASSERT_TRUE(loan);
    auto* px = reinterpret_cast<uint16_t*>(loan->pixels().data());
    for (uint32_t k = 0; k < 32 * 16; ++k) px[k] = plane(t, z, k);
    loan->commit({.index = {t, z}});
  }
  pub.end_sequence();

  std::vector<std::pair<uint32_t, std::vector<uint16_t>>> got;
  for (int idle = 0; idle < 100 && !sub.sequence_end();) {
    auto f = sub.next(100ms);
    if (!f) {
      ++idle;
      continue;
    }
    const auto* px = reinterpret_cast<const uint16_t*>(f->pixels().data());
    got.emplace_back(f->index('t').value_or(99), std::vector<uint16_t>(px, px + 32 * 16));
  }
  ASSERT_NE(sub.sequence(), nullptr);
  EXPECT_EQ(sub.sequence()->spec.axes_text(), "t=2");
  ASSERT_EQ(got.size(), 2u);
  for (const auto& [t, pixels] : got) {
    uint64_t bad = 0;
    for (uint32_t k = 0; k < 32 * 16; ++k) {
      uint16_t expect = 0;
      for (const auto& [st, sz] : sent)
        if (st == t) expect = std::max(expect, plane(st, sz, k));
      bad += pixels[k] != expect;
    }
    EXPECT_EQ(bad, 0u) << "volume t=" << t;
  }
  EXPECT_EQ(got[0].first, 0u);
  EXPECT_EQ(got[1].first, 1u);
}

// copy (like bin, roi and none) passes a sequence on as it is, each frame with its index.
TEST(FbprocSequences, CopyPassesTheSequenceOn) {
  Broker b(camera());
  auto spec = SequenceSpec::parse("t=2,z=3", "tz");
  spec.z_step_um = 2;
  std::shared_ptr<const framebroker::Sequence> seq;
  std::optional<framebroker::SequenceEnd> end;
  const Output got = run_through(b, "copy", spec, seq, end);
  ASSERT_NE(seq, nullptr);
  EXPECT_EQ(seq->spec, spec);
  ASSERT_TRUE(end);
  ASSERT_EQ(got.pixels.size(), 6u);
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    EXPECT_EQ(got.t[i] * 3 + got.z[i], got.camera_frame_id[i]);
    uint64_t bad = 0;
    for (uint32_t k = 0; k < kPixels; ++k)
      bad += got.pixels[i][k] != counter(got.camera_frame_id[i], k);
    EXPECT_EQ(bad, 0u);
  }
}
