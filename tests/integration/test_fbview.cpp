// fbview against a real broker, spoken to over HTTP and WebSocket like the page does.
#include <gtest/gtest.h>

#include <regex>
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

TEST(Fbview, RefusesWebSocketsFromPagesOfOtherOriginsWith403) {
  Broker broker(kCounterCamera);
  Viewer viewer(broker, {"--allow-origin", "https://Dashboard.example:8443/", "--allow-origin",
                         "http://scope-pc.lab:8080"});
  const std::string port = std::to_string(viewer.port());
  auto upgrade = [&](const std::string& origin) {
    return http_request(viewer.port(), "GET", "/ws?stream=cam", true, origin);
  };
  const HttpReply evil = upgrade("http://evil.example");
  EXPECT_EQ(evil.status, 403) << evil.body;
  EXPECT_NE(json::parse(evil.body)["error"].get<std::string>().find("'http://evil.example'"),
            std::string::npos)
      << evil.body;
  EXPECT_EQ(upgrade("http://evil.example/ws?stream=bogus").status, 403);
  for (const std::string& other : std::vector<std::string>{
           "null", "http://127.0.0.1:" + std::to_string(viewer.port() ^ 1),
           "https://127.0.0.1:" + port, "http://127.0.0.1:" + port + ".evil.example",
           "http://localhost.evil.example:" + port, "http://127.0.0.1", "https://dashboard.example",
           "http://scope-pc.lab:8081", "file://"})
    EXPECT_EQ(upgrade(other).status, 403) << other;
  // A refused upgrade tells no more than that: not even whether the stream exists.
  EXPECT_EQ(http_request(viewer.port(), "GET", "/ws?stream=bogus", true, "null").status, 403);
  EXPECT_THROW(ViewClient(viewer.port(), "/ws?stream=cam", "http://evil.example"),
               std::runtime_error);

  for (const std::string& own : std::vector<std::string>{
           "http://127.0.0.1:" + port, "http://localhost:" + port, "HTTP://LOCALHOST:" + port,
           "http://[::1]:" + port, "https://dashboard.example:8443", "http://scope-pc.lab:8080"})
    EXPECT_EQ(upgrade(own).status, 101) << own;
  EXPECT_EQ(upgrade("").status, 101) << "no Origin: not a browser";
  ViewClient ws(viewer.port(), "/ws?stream=cam", "http://127.0.0.1:" + port);
  ws.ready();
  EXPECT_TRUE(ws.next_frame(10s));
  EXPECT_NE(viewer.process().err().find("refused a WebSocket from a page of origin "
                                        "'http://evil.example'"),
            std::string::npos)
      << viewer.process().err();

  for (const char* bad : {"*", "null", "evil.example", "http://x/path", "http://x:99999"}) {
    Result r = run({FB_FBVIEW_BIN, "--listen", "127.0.0.1:0", "--allow-origin", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("--allow-origin"), std::string::npos) << r.err;
  }
}

// Values a page could send that do not fit the integers they become.
TEST(Fbview, ClampsOutOfRangeNumbersAndTheSessionGoesOn) {
  Broker broker(kCounterCamera);
  Viewer viewer(broker);
  ViewClient ws(viewer.port(), "/ws?stream=cam");
  ws.send(json{{"type", "ready"}, {"max_width", 1e300}, {"max_height", -5}, {"gamma", 1e300}});
  auto f = ws.next_frame(10s);
  ASSERT_TRUE(f);
  // 512x256 into at most 8192x1: one row, averaged over 256x256 blocks.
  EXPECT_EQ(f->header["scale"], 256) << f->header;
  EXPECT_EQ(f->header["width"], 2);
  EXPECT_EQ(f->header["height"], 1);
  EXPECT_EQ(f->header["gamma"], 10.0);

  ws.send(json::parse(R"({"type": "ready", "max_width": -1e300, "max_height": 64.9,
                          "region": [-5, 10.7, 1e300, 2.5], "auto": "off",
                          "black": -1e300, "white": 1e300, "gamma": -5})"));
  f = ws.next_frame(10s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->header["region"], json::parse("[0, 10, 512, 2]")) << f->header;
  EXPECT_EQ(f->header["scale"], 512);
  EXPECT_EQ(f->header["gamma"], 0.1);
  EXPECT_EQ(f->header["black"], -1e30);
  EXPECT_EQ(f->header["white"], 1e30);

  ws.send(json{{"type", "ready"}, {"max_width", "wide"}});
  auto err = ws.next_text("error", 5s);
  ASSERT_TRUE(err);
  EXPECT_NE(err->at("message").get<std::string>().find("max_width must be a number"),
            std::string::npos)
      << *err;
  ASSERT_TRUE(ws.next_frame(10s)) << "a bad ready still gets a frame";

  // Probes far outside any frame are outside, not wrapped onto pixel 0.
  for (const json& xy :
       {json{1e20, 3}, json{4294967296.5, 3}, json{3, 1e300}, json{-5, 3}, json{-1e300, -1e300}}) {
    ws.send(json{{"type", "probe"}, {"x", xy[0]}, {"y", xy[1]}});
    auto p = ws.next_text("probe", 5s);
    ASSERT_TRUE(p) << xy;
    EXPECT_TRUE(p->at("value").is_null()) << xy << " " << *p;
  }
  ws.ready(256, {{"auto", "minmax"}});
  EXPECT_TRUE(ws.next_frame(10s));
  EXPECT_TRUE(viewer.process().running());
}

TEST(Fbview, LevelsAndGammaRestyleTheLastFrameWhileTheCameraIsStopped) {
  Broker broker(kCounterCamera);
  Viewer viewer(broker);
  ViewClient ws(viewer.port(), "/ws?stream=cam");
  const json linear = {{"auto", "off"}, {"black", 0}, {"white", 65535}, {"gamma", 1}};
  ws.ready(256, linear);
  std::optional<ViewFrame> last = ws.next_frame(10s);
  ASSERT_TRUE(last);
  ASSERT_EQ(broker.fbctl({"stop", "cam"}).exit_code, 0);
  // Frames taken before the stop may still come; afterwards a ready stays unanswered.
  for (int i = 0; i < 5; ++i) {
    ws.ready(256, linear);
    auto f = ws.next_frame(1500ms);
    if (!f) break;
    last = std::move(f);
  }
  ASSERT_FALSE(ws.next_frame(500ms)) << "the camera still runs";
  const uint64_t seq = last->header["seq"];

  json dark = linear;
  dark["type"] = "restyle";
  dark["gamma"] = 3;
  ws.send(dark);
  auto f = ws.next_frame(5s);
  ASSERT_TRUE(f) << "levels changed, the picture did not";
  EXPECT_EQ(f->header["seq"], seq) << "the same frame, restyled";
  EXPECT_EQ(f->header["restyled"], true);
  EXPECT_EQ(f->header["gamma"], 3.0);
  EXPECT_EQ(f->header["width"], last->header["width"]);
  ASSERT_EQ(f->pixels.size(), last->pixels.size());
  size_t darker = 0;
  for (size_t i = 0; i < f->pixels.size(); ++i) {
    EXPECT_LE(f->pixels[i], last->pixels[i]);
    darker += f->pixels[i] < last->pixels[i];
  }
  EXPECT_GT(darker, f->pixels.size() / 2);

  // Min-max contrast on the same frame spreads it over the 8-bit range.
  ws.send(json{{"type", "restyle"}, {"auto", "minmax"}});
  f = ws.next_frame(5s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->header["seq"], seq);
  EXPECT_EQ(f->header["black"], f->header["hist_min"]);
  EXPECT_EQ(f->header["white"], f->header["hist_max"]);
  EXPECT_EQ(*std::max_element(f->pixels.begin(), f->pixels.end()), 255);
  EXPECT_FALSE(ws.next_frame(500ms)) << "one frame per restyle, and no new frames";

  // The ready still outstanding gets the next new frame, in the newest style.
  ASSERT_EQ(broker.fbctl({"start", "cam"}).exit_code, 0);
  f = ws.next_frame(10s);
  ASSERT_TRUE(f);
  EXPECT_GT(f->header["seq"].get<uint64_t>(), seq);
  EXPECT_EQ(f->header["restyled"], false);
  EXPECT_EQ(f->header["black"], f->header["hist_min"]);
}

// A sequence's frames tell the page their index on each axis and their channel's name, and a
// tab can ask for one channel only: by name or index in its ready, by ?channel= on the
// WebSocket, or by default with fbview --channel.
TEST(Fbview, SequenceFramesCarryTheirIndexAndChannelAndOneChannelCanBeShownAlone) {
  Broker broker({"--no-default-camera", "--camera",
                 "sim:name=cam,Width=64,Height=32,FrameRate=200,Pattern=counter,slots=16,"
                 "start=false"});
  Viewer viewer(broker);
  // Not a second Viewer: it would share the first one's log, and so its port.
  Process only_561(
      {FB_FBVIEW_BIN, "--socket", broker.socket(), "--listen", "127.0.0.1:0", "--channel", "561"},
      broker.runtime_dir() + "/fbview-561");
  uint16_t port_561 = 0;
  for (int i = 0; i < 500 && !port_561; ++i) {
    std::smatch m;
    const std::string out = only_561.out();
    if (std::regex_search(out, m, std::regex(R"(serving http://127\.0\.0\.1:(\d+)/)")))
      port_561 = uint16_t(std::stoi(m[1]));
    else
      std::this_thread::sleep_for(20ms);
  }
  ASSERT_NE(port_561, 0) << only_561.err();
  ViewClient ws(viewer.port(), "/ws?stream=cam");
  ViewClient by_query(viewer.port(), "/ws?stream=cam&channel=1");
  ViewClient by_flag(port_561, "/ws?stream=cam");
  const Result started = broker.fbctl(
      {"start", "cam", "--axes", "t=1000,c=2,z=3", "--order", "tcz", "--channels", "488,561"});
  ASSERT_EQ(started.exit_code, 0) << started.err;

  // Takes `n` frames from `client`, sending `ready` after each; returns their headers.
  const auto take = [](ViewClient& client, int n, const json& extra) {
    std::vector<json> headers;
    for (int i = 0; i < n; ++i) {
      client.ready(64, extra);
      auto f = client.next_frame(10s);
      if (!f) break;
      headers.push_back(f->header);
    }
    return headers;
  };
  const char* names[] = {"488", "561"};
  std::set<std::string> channels_seen;
  for (const json& h : take(ws, 30, json::object())) {
    const json& q = h["sequence"];
    ASSERT_TRUE(q.is_object()) << h;
    EXPECT_EQ(q["id"], 1);
    EXPECT_EQ(q["axes"], "t=1000,c=2,z=3");
    EXPECT_EQ(q["channels"], json::parse(R"(["488", "561"])"));
    const int64_t p = q["position"];
    EXPECT_EQ(h["camera_frame_id"], p) << "the camera counts from 0 at the start";
    EXPECT_EQ(q["index"], (json{{"t", p / 6}, {"c", p / 3 % 2}, {"z", p % 3}})) << h;
    EXPECT_EQ(q["channel"], names[p / 3 % 2]);
    EXPECT_EQ(h["channel_filter"], "");
    channels_seen.insert(q["channel"].get<std::string>());
  }
  EXPECT_EQ(channels_seen.size(), 2u) << "30 frames of a 2-channel sequence, all of one channel";

  // By name, then by index: only that channel comes, for as long as the tab asks.
  for (const auto& [filter, c] : std::vector<std::pair<json, int>>{{"561", 1}, {0, 0}}) {
    const auto headers = take(ws, 15, {{"channel", filter}});
    ASSERT_EQ(headers.size(), 15u) << filter;
    for (const json& h : headers) {
      EXPECT_EQ(h["sequence"]["index"]["c"], c) << filter << " " << h;
      EXPECT_EQ(h["sequence"]["channel"], names[c]);
    }
    EXPECT_EQ(headers.back()["channel_filter"], filter.is_string() ? filter : json("0"));
  }
  // The filter sticks until a ready says otherwise.
  for (const json& h : take(ws, 5, json::object())) EXPECT_EQ(h["sequence"]["index"]["c"], 0);
  for (ViewClient* c : {&by_query, &by_flag})
    for (const json& h : take(*c, 10, json::object())) {
      EXPECT_EQ(h["sequence"]["index"]["c"], 1)
          << (c == &by_query ? "?channel=1 " : "--channel ") << h;
      EXPECT_EQ(h["sequence"]["channel"], "561");
    }

  // A channel the sequence does not have: the tab is told, and sees every channel.
  ws.ready(64, {{"channel", "405"}});
  auto err = ws.next_text("error", 10s);
  ASSERT_TRUE(err);
  EXPECT_NE(err->at("message").get<std::string>().find(
                "sequence 1 has no channel '405' (channels: 488, 561); showing every channel"),
            std::string::npos)
      << *err;
  channels_seen.clear();
  for (const json& h : take(ws, 30, {{"channel", "405"}}))
    channels_seen.insert(h["sequence"]["channel"].get<std::string>());
  EXPECT_EQ(channels_seen.size(), 2u);
  ws.send(json{{"type", "ready"}, {"channel", json::array()}});
  EXPECT_TRUE(ws.next_text("error", 10s)) << "a channel that is neither name nor index";
}
