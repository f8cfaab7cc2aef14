// The aravis driver against a GigE Vision camera on the wire: fb_test_gv_camera serves Aravis'
// fake GigE camera on 127.0.0.1 (GVCP control, GVSP stream over UDP), optionally losing a
// fraction of its stream packets. Each of its frames is Mono8 with every byte equal to the low
// byte of the frame's GVSP id, so a torn frame (mixed values) or a stale slot (another frame's
// value) delivered as good shows.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

// One fake GigE camera on lo. Helpers started side by side wait for each other (one GVCP port),
// hence the long wait for `ready`.
struct GvCamera {
  std::unique_ptr<Process> proc;
  std::string address, device_id;
  std::string skip_reason;  // set when the fake camera cannot serve here
  std::string log_prefix;

  GvCamera(const std::string& serial, double lost_ratio, int width, int height) {
    static int n = 0;
    log_prefix = "/tmp/fb_test_gv_camera-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    const std::string& prefix = log_prefix;
    proc = std::make_unique<Process>(
        std::vector<std::string>{FB_GV_CAMERA_BIN, "--serial", serial, "--lost-ratio",
                                 std::to_string(lost_ratio), "--width", std::to_string(width),
                                 "--height", std::to_string(height)},
        prefix);
    const auto end = Clock::now() + 60s;
    while (Clock::now() < end) {
      std::istringstream out(proc->out());
      std::string word;
      if (out >> word && word == "ready") {
        out >> address >> device_id;
        return;
      }
      if (!proc->running()) {
        skip_reason =
            "fb_test_gv_camera cannot serve a fake GigE Vision camera on lo here: " + proc->err();
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  ~GvCamera() {
    if (proc && proc->running()) {
      proc->signal(SIGTERM);
      if (!proc->wait(10s)) proc->signal(SIGKILL);
    }
    proc.reset();
    std::remove((log_prefix + ".out").c_str());
    std::remove((log_prefix + ".err").c_str());
  }
  bool ready() const { return !address.empty(); }
};

std::string unique_serial() {
  return "FB" + std::to_string(getpid() % 1000000);
}

// Every byte of the image is the same; returns it, or -1 with the first odd byte in `where`.
int uniform_value(const framebroker::Frame& f, std::string& where) {
  const auto px = f.pixels();
  const size_t row = size_t(f.width());  // Mono8
  if (f.height() == 0 || row == 0 || size_t(f.stride()) * (f.height() - 1) + row > px.size()) {
    where = "pixels span " + std::to_string(px.size()) + " bytes, too short for the image";
    return -1;
  }
  const auto first = px[0];
  for (uint32_t y = 0; y < f.height(); ++y) {
    const std::byte* r = px.data() + size_t(y) * f.stride();
    for (size_t x = 0; x < row; ++x) {
      if (r[x] != first) {
        where = "byte (" + std::to_string(x) + "," + std::to_string(y) + ") is " +
                std::to_string(int(r[x])) + ", byte (0,0) is " + std::to_string(int(first));
        return -1;
      }
    }
  }
  return int(first);
}

struct Received {
  uint64_t seq, camera_frame_id;
};

// Checks one delivered frame: Mono8 of the helper's size, uniform, and carrying its own id's
// value (not a stale slot's). Returns false (with a failure recorded) when it is not.
bool check_frame(const framebroker::Frame& f, int width, int height) {
  EXPECT_EQ(f.pixel_type(), framebroker::PixelType::Mono8);
  EXPECT_EQ(f.width(), uint32_t(width));
  EXPECT_EQ(f.height(), uint32_t(height));
  std::string where;
  const int v = uniform_value(f, where);
  if (v < 0) {
    ADD_FAILURE() << "frame seq " << f.seq() << " (camera frame " << f.camera_frame_id()
                  << ") was delivered torn: " << where;
    return false;
  }
  // The helper fills frame n with n & 0xFF (its GVSP id); the adapter widens GVSP ids by whole
  // multiples of 0x10000, which keeps the low byte.
  if (v != int(f.camera_frame_id() & 0xFF)) {
    ADD_FAILURE() << "frame seq " << f.seq() << " (camera frame " << f.camera_frame_id()
                  << ") holds the pixels of another frame (value " << v << ")";
    return false;
  }
  return true;
}

std::string camera_spec(const std::string& device, int fps) {
  return "aravis:name=gige,device=" + device + ",FrameRate=" + std::to_string(fps) +
         ",slots=32,start=false";
}

bool camera_idle(Broker& b) {
  return b.wait_status(
      [](const json& s) {
        for (const auto& c : s["cameras"])
          if (c["name"] == "gige") return !c["running"].get<bool>();
        return false;
      },
      20s);
}

// A broker with the camera `gv` serves (stopped), or null with a failure recorded. Opened by IP
// address, not by device id: the fake camera answers broadcast discovery on every interface,
// and when the answer through eth0 wins Aravis streams to eth0's address through a packet socket
// on eth0, which never sees the loopback packets.
std::unique_ptr<Broker> broker_for(const GvCamera& gv, int fps) {
  if (!gv.ready()) {
    ADD_FAILURE() << "fb_test_gv_camera did not get ready in 60 s: " << gv.proc->err();
    return nullptr;
  }
  try {
    return std::make_unique<Broker>(
        std::vector<std::string>{"--no-default-camera", "--camera", camera_spec(gv.address, fps)});
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the broker cannot open the fake GigE camera at " << gv.address << ": "
                  << e.what();
    return nullptr;
  }
}

}  // namespace

TEST(AravisGigE, FramesArriveOverLoopbackWithoutLoss) {
  constexpr int kWidth = 256, kHeight = 256, kFps = 50, kFrames = 150;
  GvCamera gv(unique_serial(), 0.0, kWidth, kHeight);
  if (!gv.skip_reason.empty()) GTEST_SKIP() << gv.skip_reason;
  auto broker = broker_for(gv, kFps);
  ASSERT_TRUE(broker);
  auto client = framebroker::Client::connect({.socket_path = broker->socket()});
  auto sub = client.subscribe("gige", {});
  const auto started = Clock::now();
  ASSERT_EQ(broker->fbctl({"start", "gige"}).exit_code, 0);

  std::vector<Received> got;
  const auto end = Clock::now() + 60s;
  while (got.size() < size_t(kFrames) && Clock::now() < end) {
    auto f = sub.next(5s);
    if (!f) continue;
    if (!check_frame(*f, kWidth, kHeight)) break;
    got.push_back({f->seq(), f->camera_frame_id()});
  }
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  ASSERT_EQ(got.size(), size_t(kFrames))
      << "frames in " << secs << " s; status: " << broker->status().dump(1)
      << "\nbroker log tail: " << broker->process().err().substr(0, 4000);
  for (size_t i = 1; i < got.size(); ++i) {
    EXPECT_GT(got[i].camera_frame_id, got[i - 1].camera_frame_id) << "at frame " << i;
    EXPECT_EQ(got[i].seq, got[i - 1].seq + 1) << "at frame " << i;
  }
  EXPECT_EQ(got.front().seq, 0u);

  ASSERT_EQ(broker->fbctl({"stop", "gige"}).exit_code, 0);
  ASSERT_TRUE(camera_idle(*broker));
  const json s = broker->status();
  const json& st = stream_of(s, "gige");
  EXPECT_EQ(st["dropped"], 0) << st.dump(1);
  EXPECT_EQ(st["dropped_reasons"]["camera"], 0);
  EXPECT_GE(st["published"].get<uint64_t>(), uint64_t(kFrames));
  EXPECT_TRUE(slot_invariant_holds(s));
  std::cout << "[ info ] " << got.size() << " frames over GigE loopback in " << secs << " s\n";
}

TEST(AravisGigE, LostPacketsAreCountedCameraDropsNeverCorruptFrames) {
  // 256x256 Mono8 at the negotiated 1400-byte packets is ~50 packets a frame: losing 1 % of the
  // packets loses about 40 % of the frames and leaves plenty whole.
  constexpr int kWidth = 256, kHeight = 256, kFps = 50;
  constexpr double kLostRatio = 0.01;
  constexpr auto kRun = 6s;
  GvCamera gv(unique_serial(), kLostRatio, kWidth, kHeight);
  if (!gv.skip_reason.empty()) GTEST_SKIP() << gv.skip_reason;
  auto broker = broker_for(gv, kFps);
  ASSERT_TRUE(broker);
  auto client = framebroker::Client::connect({.socket_path = broker->socket()});
  auto sub = client.subscribe("gige", {});
  ASSERT_EQ(broker->fbctl({"start", "gige"}).exit_code, 0);

  std::vector<Received> got;
  bool all_good = true;
  const auto end = Clock::now() + kRun;
  while (Clock::now() < end && all_good) {
    if (auto f = sub.next(1s)) {
      all_good = check_frame(*f, kWidth, kHeight);
      got.push_back({f->seq(), f->camera_frame_id()});
    }
  }
  ASSERT_TRUE(all_good);
  ASSERT_EQ(broker->fbctl({"stop", "gige"}).exit_code, 0);
  ASSERT_TRUE(camera_idle(*broker));
  // What was published before the stop is still on its way: drain it.
  while (auto f = sub.next(2s)) {
    ASSERT_TRUE(check_frame(*f, kWidth, kHeight));
    got.push_back({f->seq(), f->camera_frame_id()});
  }

  const json s = broker->status();
  const json& st = stream_of(s, "gige");
  const uint64_t published = st["published"], dropped = st["dropped"],
                 dropped_camera = st["dropped_reasons"]["camera"];
  std::cout << "[ info ] lost ratio " << kLostRatio << ": " << got.size() << " frames delivered, "
            << published << " published, " << dropped_camera << " camera drops, "
            << st["dropped_reasons"]["ring_full"] << " ring-full drops\n";
  ASSERT_GT(got.size(), 20u) << "too few whole frames to judge: " << st.dump(1);
  EXPECT_GT(dropped_camera, 0u) << "frames that lost packets were not counted: " << st.dump(1);

  // Every seq is a published frame or a drop. The subscriber was there from seq 0 and kept up
  // (every mode, nothing missed), so it saw every published frame, and the seqs it did not see
  // are exactly the drops.
  const auto subs = subscribers(s);
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0]["missed"], 0);
  EXPECT_EQ(got.size(), published);
  uint64_t unseen = got.front().seq;  // before the first frame
  for (size_t i = 1; i < got.size(); ++i) {
    ASSERT_GT(got[i].seq, got[i - 1].seq) << "out of order at frame " << i;
    EXPECT_GT(got[i].camera_frame_id, got[i - 1].camera_frame_id) << "at frame " << i;
    unseen += got[i].seq - got[i - 1].seq - 1;
    // A dropped seq is a frame the camera sent and we lost: it shows as a camera id gap too.
    EXPECT_LE(got[i].seq - got[i - 1].seq, got[i].camera_frame_id - got[i - 1].camera_frame_id)
        << "more drops than frames missing between camera frames " << got[i - 1].camera_frame_id
        << " and " << got[i].camera_frame_id;
  }
  EXPECT_LE(unseen, dropped);
  EXPECT_GE(published + dropped, uint64_t(st["latest_seq"].get<int64_t>() + 1));
  EXPECT_EQ(got.back().seq, uint64_t(st["latest_seq"].get<int64_t>()));
  // Drops after the last published frame are seqs no subscriber sees either.
  EXPECT_EQ(unseen + (published + dropped - 1 - got.back().seq), dropped);
  EXPECT_TRUE(slot_invariant_holds(s));
}

TEST(AravisGigE, ADisconnectedCameraIsAnErrorThenComesBackWithItsSettings) {
  const std::string serial = unique_serial();
  auto camera = std::make_unique<GvCamera>(serial, 0.0, 256, 256);
  if (!camera->ready()) GTEST_SKIP() << camera->skip_reason;
  Broker broker(
      {"--no-default-camera", "--camera",
       "aravis:name=gige,device=" + camera->address + ",FrameRate=50,slots=32,Width=128"});
  auto published = [&] { return stream_of(broker.status(), "gige")["published"].get<uint64_t>(); };
  ASSERT_TRUE(broker.wait_status(
      [](const json& s) { return stream_of(s, "gige")["published"].get<uint64_t>() > 20; }, 20s))
      << broker.process().err();

  camera->proc->signal(SIGKILL);  // the cable is pulled
  ASSERT_TRUE(broker.wait_status(
      [](const json& s) {
        return s["cameras"][0]["state"] == "error" &&
               s["cameras"][0]["error"].get<std::string>().find("lost") != std::string::npos;
      },
      30s))
      << broker.fbctl({"cameras"}).out;
  camera.reset();

  auto again = std::make_unique<GvCamera>(serial, 0.0, 256, 256);  // plugged back in
  ASSERT_TRUE(again->ready()) << again->skip_reason;
  const uint64_t before = published();
  ASSERT_TRUE(broker.wait_status(
      [&](const json& s) {
        return s["cameras"][0]["state"] == "running" &&
               stream_of(s, "gige")["published"].get<uint64_t>() > before + 20;
      },
      60s))
      << broker.fbctl({"cameras"}).out << broker.process().err();
  EXPECT_EQ(broker.fbctl({"get", "gige", "Width"}).out, "128\n") << "settings replayed";

  // And a broker whose camera just vanished still stops promptly.
  again->proc->signal(SIGKILL);
  std::this_thread::sleep_for(1s);
  broker.process().signal(SIGTERM);
  EXPECT_TRUE(broker.process().wait(20s)) << "framebrokerd hung on shutdown";
}
