// fbview against a real broker, spoken to over HTTP and WebSocket like the page does.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "fbview_client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

const std::vector<std::string> kCounterCamera = {
    "--no-default-camera", "--camera",
    "sim:name=cam,Width=512,Height=256,FrameRate=200,Pattern=counter,slots=16"};

}  // namespace

TEST(Fbview, ServesThePageAndTheStreamsAndRefusesBadRequestsClearly) {
  Broker broker(kCounterCamera);
  Viewer viewer(broker);
  HttpReply page = http_request(viewer.port(), "GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.content_type.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("id=\"view\""), std::string::npos) << "the canvas";

  HttpReply streams = http_request(viewer.port(), "GET", "/api/streams");
  ASSERT_EQ(streams.status, 200);
  const json j = json::parse(streams.body);
  EXPECT_EQ(j["broker"]["connected"], true);
  ASSERT_EQ(j["streams"].size(), 1u);
  EXPECT_EQ(j["streams"][0]["name"], "cam");
  EXPECT_EQ(j["streams"][0]["width"], 512);

  HttpReply missing = http_request(viewer.port(), "GET", "/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json::parse(missing.body)["error"], "no such page: /nope");
  EXPECT_EQ(http_request(viewer.port(), "POST", "/").status, 405);
  HttpReply unknown = http_request(viewer.port(), "GET", "/ws?stream=bogus", true);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["error"], "unknown stream 'bogus'; streams: cam");
  EXPECT_THROW(ViewClient(viewer.port(), "/ws?stream=bogus"), std::runtime_error);

  // A malformed WebSocket message gets an error; the same socket then works.
  ViewClient ws(viewer.port(), "/ws?stream=cam");
  ws.send(json{{"type", "dance"}});
  auto err = ws.next_text("error", 5s);
  ASSERT_TRUE(err);
  EXPECT_NE(err->at("message").get<std::string>().find("unknown message type 'dance'"),
            std::string::npos);
  ws.send(json{{"type", "ready"}, {"region", "everything"}});
  EXPECT_TRUE(ws.next_text("error", 5s));
  EXPECT_TRUE(ws.next_frame(10s)) << "a bad ready still gets a frame, or the page would wait";
  ws.ready();
  EXPECT_TRUE(ws.next_frame(10s));
  // And fbview still serves everyone else.
  EXPECT_EQ(http_request(viewer.port(), "GET", "/api/streams").status, 200);
  EXPECT_TRUE(viewer.process().running());
}

TEST(Fbview, SendsOneFramePerReadyShrunkAndMappedTo8Bit) {
  Broker broker(kCounterCamera);
  Viewer viewer(broker);
  ViewClient ws(viewer.port(), "/ws?stream=cam");
  ws.ready(256, {{"auto", "minmax"}});
  auto f = ws.next_frame(10s);
  ASSERT_TRUE(f);
  const json& h = f->header;
  EXPECT_EQ(h["stream"], "cam");
  EXPECT_EQ(h["pixel_type"], "Mono16");
  EXPECT_EQ(h["source_width"], 512);
  EXPECT_EQ(h["scale"], 2);  // 512x256 into 256x256
  EXPECT_EQ(h["width"], 256);
  EXPECT_EQ(h["height"], 128);
  ASSERT_EQ(f->pixels.size(), 256u * 128u);
  EXPECT_EQ(h["histogram"].size(), 256u);
  // Min-max contrast spreads the counter ramp over the whole 8-bit range.
  const auto [lo, hi] = std::minmax_element(f->pixels.begin(), f->pixels.end());
  EXPECT_EQ(*lo, 0);
  EXPECT_EQ(*hi, 255);

  // Back-pressure: no second frame until the page says it drew the first.
  EXPECT_FALSE(ws.next_frame(500ms)) << "a frame without a ready";
  ws.ready(256, {{"region", {256, 0, 64, 32}}});  // a 1:1 view of part of the frame
  auto g = ws.next_frame(10s);
  ASSERT_TRUE(g);
  EXPECT_GT(g->header["seq"].get<uint64_t>(), h["seq"].get<uint64_t>());
  EXPECT_EQ(g->header["scale"], 1);
  EXPECT_EQ(g->header["width"], 64);
  EXPECT_EQ(g->header["region"], json::parse("[256, 0, 64, 32]"));
  // At ~100 ms between frames at 200 fps, the viewer skipped frames: conflated, counted.
  EXPECT_GT(g->header["conflated"].get<uint64_t>(), 0u);

  // The value under the cursor: counter pixel (x, y) of frame id f is (f + y * 512 + x) mod 2^16.
  ws.send(json{{"type", "probe"}, {"x", 260}, {"y", 3}});
  auto p = ws.next_text("probe", 5s);
  ASSERT_TRUE(p);
  const uint64_t id = g->header["camera_frame_id"];
  EXPECT_EQ(p->at("value").get<double>(), double((id + 3 * 512 + 260) % 65536));
  ws.send(json{{"type", "probe"}, {"x", 10}, {"y", 3}});  // outside the region shown
  EXPECT_TRUE(ws.next_text("probe", 5s)->at("value").is_null());
}

TEST(Fbview, SaysWhenTheBrokerIsGoneAndResumesWhenItIsBack) {
  Broker broker(kCounterCamera);
  Viewer viewer(broker);
  ViewClient ws(viewer.port(), "/ws?stream=cam");
  ws.ready();
  ASSERT_TRUE(ws.next_frame(10s));
  broker.process().signal(SIGTERM);
  ASSERT_TRUE(broker.process().wait(10s));
  ws.ready();
  auto lost = ws.next_text("status", 10s);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->at("broker"), "lost");
  EXPECT_EQ(
      json::parse(http_request(viewer.port(), "GET", "/api/streams").body)["broker"]["connected"],
      false);

  broker.start(kCounterCamera);
  auto back = ws.next_text("status", 15s);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->at("broker"), "connected");
  ws.ready();
  EXPECT_TRUE(ws.next_frame(10s)) << viewer.process().err();
}

TEST(Fbview, TabsAtFullSpeedCostAnEverySubscriberNothing) {
  Broker broker(kCounterCamera);
  Viewer viewer(broker);
  auto saver =
      broker.fbctl_async({"watch", "cam", "--frames", "1000", "--verify-counter", "--json"});
  ViewClient a(viewer.port(), "/ws?stream=cam"), b(viewer.port(), "/ws?stream=cam");
  std::set<uint64_t> seen_a, seen_b;
  a.ready(1024);
  b.ready(64);
  const auto end = std::chrono::steady_clock::now() + 6s;
  while (saver->running() && std::chrono::steady_clock::now() < end) {
    if (auto f = a.next_frame(20ms)) {  // as fast as frames come: ready at once
      seen_a.insert(f->header["seq"].get<uint64_t>());
      a.ready(1024);
    }
    if (auto f = b.next_frame(20ms)) {
      seen_b.insert(f->header["seq"].get<uint64_t>());
      b.ready(64);
    }
  }
  expect_lossless(watch_summary(*saver), 1000);
  EXPECT_GT(seen_a.size(), 50u);
  EXPECT_GT(seen_b.size(), 50u);
  const json s = broker.status();
  EXPECT_EQ(stream_of(s, "cam")["dropped"], 0);
}

TEST(Fbview, ListensOnLoopbackUnlessToldAndThenWarns) {
  Broker broker(kCounterCamera);
  Viewer local(broker);
  EXPECT_EQ(local.process().err().find("anyone"), std::string::npos) << local.process().err();
  Process open({FB_FBVIEW_BIN, "--socket", broker.socket(), "--listen", "0.0.0.0:0"},
               broker.runtime_dir() + "/fbview-open");
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (open.err().find("anyone who can reach") == std::string::npos &&
         std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(20ms);
  EXPECT_NE(open.err().find("listening on 0.0.0.0: anyone who can reach"), std::string::npos)
      << open.err();
  Result bad = run({FB_FBVIEW_BIN, "--listen", "localhost:80:1"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}
