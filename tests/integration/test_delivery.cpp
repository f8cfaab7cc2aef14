// Frames reach every subscriber as its mode promises, with real processes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

bool has_subscribers(Broker& b, size_t n) {
  return b.wait_status([&](const json& s) { return s["subscribers"].size() >= n; });
}

}  // namespace

TEST(Delivery, EverySubscriberGets2000CounterFramesExactlyBesideALatestOne) {
  // 128 slots give the every subscriber 124 frames (0.3 s) of slack on a busy CI machine.
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=256,Height=256,PixelType=Mono16,Pattern=counter,FrameRate=400,"
            "slots=128,start=false"});
  auto every = b.fbctl_async({"watch", "cam", "--frames", "2000", "--verify-counter", "--json"});
  auto latest = b.fbctl_async({"watch", "cam", "--mode", "latest", "--duration", "30", "--json"});
  ASSERT_TRUE(has_subscribers(b, 2));
  ASSERT_EQ(b.fbctl({"start", "cam", "--frames", "2000"}).exit_code, 0);

  const json e = watch_summary(*every);
  expect_lossless(e, 2000);
  EXPECT_EQ(e["first_seq"], 0);
  EXPECT_EQ(e["last_seq"], 1999);

  latest->signal(SIGINT);
  const json l = watch_summary(*latest);
  EXPECT_GT(l["frames"].get<int>(), 0);
  EXPECT_EQ(l["out_of_order"], 0);

  const json s = b.status();
  EXPECT_EQ(stream_of(s, "cam")["published"], 2000);
  EXPECT_EQ(stream_of(s, "cam")["dropped"], 0);
  EXPECT_TRUE(slot_invariant_holds(s));
}

TEST(Delivery, LatestSubscriberThatNeverReleasesCostsNothing) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=128,Height=128,Pattern=counter,FrameRate=300,slots=16"});
  auto stuck =
      b.fbctl_async({"watch", "cam", "--mode", "latest", "--hold", "1", "--duration", "60"});
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    auto subs = subscribers(s, stuck->pid());
    return subs.size() == 1 && subs[0]["held"] == 1;
  }));
  const int64_t published_before = stream_of(b.status(), "cam")["published"];
  auto every = b.fbctl_async({"watch", "cam", "--frames", "600", "--verify-counter", "--json"});
  expect_lossless(watch_summary(*every), 600);

  const json s = b.status();
  const auto subs = subscribers(s, stuck->pid());
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0]["held"], 1);
  EXPECT_GT(subs[0]["conflated"].get<int64_t>(), 0);  // it was offered frames and skipped them
  EXPECT_EQ(stream_of(s, "cam")["dropped"], 0);
  EXPECT_GT(stream_of(s, "cam")["published"].get<int64_t>(), published_before + 600);
  EXPECT_TRUE(slot_invariant_holds(s));
}

TEST(Delivery, EverySubscriberThatStopsReadingIsBoundedAndCostsOthersNothing) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=128,Height=128,Pattern=counter,FrameRate=300,slots=32"});
  auto stuck = b.fbctl_async({"watch", "cam", "--max-hold", "8", "--duration", "60", "--json"});
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    auto subs = subscribers(s, stuck->pid());
    return subs.size() == 1 && subs[0]["delivered"].get<int>() > 0;
  }));
  stuck->signal(SIGSTOP);  // it stops reading its socket altogether
  ASSERT_TRUE(b.wait_status(
      [&](const json& s) { return subscribers(s, stuck->pid()).at(0)["missed"].get<int>() > 0; }));
  auto every = b.fbctl_async({"watch", "cam", "--frames", "600", "--verify-counter", "--json"});
  expect_lossless(watch_summary(*every), 600);

  const json s = b.status();
  const auto subs = subscribers(s, stuck->pid());
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0]["held"].get<int>() + subs[0]["queued"].get<int>(), 8);
  EXPECT_GT(subs[0]["missed"].get<int>(), 600);
  EXPECT_EQ(stream_of(s, "cam")["dropped"], 0);
  EXPECT_TRUE(slot_invariant_holds(s));

  // Woken up, it catches up with a gap it can see, and no pixel is wrong.
  const int delivered = subs[0]["delivered"].get<int>();
  stuck->signal(SIGCONT);
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    return subscribers(s, stuck->pid()).at(0)["delivered"].get<int>() > delivered + 5;
  }));
  stuck->signal(SIGINT);
  const json st = watch_summary(*stuck);
  EXPECT_GT(st["gaps"].get<int>(), 0);
  EXPECT_EQ(st["out_of_order"], 0);
}

TEST(Delivery, LateLatestSubscriberGetsTheCachedFrameWhileTheCameraIsStopped) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=64,Height=64,Pattern=counter,FrameRate=1000,start=false"});
  ASSERT_EQ(b.fbctl({"start", "cam", "--frames", "5"}).exit_code, 0);
  ASSERT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["latest_seq"] == 4; }));
  ASSERT_TRUE(b.wait_status([](const json& s) { return s["cameras"][0]["running"] == false; }));

  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("cam", {.mode = framebroker::Mode::Latest, .from_latest = true});
  auto f = sub.next(2s);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->seq(), 4u);
  EXPECT_EQ(f->camera_frame_id(), 4u);
  EXPECT_EQ(f->width(), 64u);
  EXPECT_EQ(f->pixel_type(), framebroker::PixelType::Mono16);
  const auto px = f->pixels();
  ASSERT_EQ(px.size(), 64u * 64u * 2u);
  uint16_t first;
  std::memcpy(&first, px.data(), 2);
  EXPECT_EQ(first, 4);
  EXPECT_FALSE(sub.next(200ms).has_value());  // nothing else: the camera is stopped
}

TEST(Delivery, WithoutFromLatestNothingArrivesWhileStopped) {
  Broker b({"--no-default-camera", "--camera", "sim:name=cam,Width=64,Height=64,start=false"});
  ASSERT_EQ(b.fbctl({"start", "cam", "--frames", "3"}).exit_code, 0);
  ASSERT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["latest_seq"] == 2; }));
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("cam", {.mode = framebroker::Mode::Latest});
  EXPECT_FALSE(sub.next(300ms).has_value());
}

TEST(Delivery, CameraControlThroughTheLibrary) {
  Broker b({"--no-default-camera", "--camera", "sim:name=cam,Width=64,Height=64,start=false"});
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto cam = client.camera("cam");
  cam.set("FrameRate", "250");
  EXPECT_EQ(cam.get("FrameRate"), "250");
  auto props = cam.properties();
  EXPECT_TRUE(std::any_of(props.begin(), props.end(), [](auto& p) { return p.name == "Pattern"; }));
  try {
    cam.set("Width", "999999");
    FAIL() << "out-of-range Width accepted";
  } catch (const framebroker::Error& e) {
    EXPECT_EQ(e.code(), framebroker::Errc::Refused);
    EXPECT_NE(std::string(e.what()).find("Width"), std::string::npos);
  }
  auto sub = client.subscribe("cam");
  cam.start(10);
  int n = 0;
  while (auto f = sub.next(2s)) {
    EXPECT_EQ(f->seq(), uint64_t(n));
    if (++n == 10) break;
  }
  EXPECT_EQ(n, 10);
  EXPECT_EQ(client.status().streams.at(0).published, 10u);
}
