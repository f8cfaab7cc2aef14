// Broker restart: a real framebrokerd killed with SIGKILL and started again on the same instance.
// A subscriber with ConnectOptions::reconnect goes on (restart event, then the new broker's
// frames); one without gets BrokerLost as before; fbsave --reconnect keeps one dataset; fbbench
// restart reports its keys with no stale segment.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace fs = std::filesystem;
using framebroker::Errc;
using framebroker::Error;

namespace {

// Starts with the broker, so that a restarted broker serves frames at once.
const std::vector<std::string> kCamera = {
    "--no-default-camera", "--camera",
    "sim:name=cam,Width=32,Height=16,Pattern=counter,FrameRate=200,slots=64"};

void kill_broker(Broker& b) {
  b.process().signal(SIGKILL);
  ASSERT_TRUE(b.process().wait(10s));
}

framebroker::Client connect(const Broker& b, bool reconnect) {
  framebroker::ConnectOptions co;
  co.socket_path = b.socket();
  co.client_name = reconnect ? "reconnecting" : "plain";
  co.reconnect = reconnect;
  return framebroker::Client::connect(co);
}

// The sim camera's counter pattern: pixel k of frame f holds (f + k) mod 2^16.
bool counter_ok(const framebroker::Frame& f) {
  const auto px = f.pixels();
  for (size_t k = 0; k < px.size() / 2; ++k) {
    uint16_t v;
    std::memcpy(&v, px.data() + 2 * k, 2);
    if (v != uint16_t(f.camera_frame_id() + k)) return false;
  }
  return true;
}

std::optional<framebroker::Frame> next_frame(framebroker::Subscription& sub,
                                             std::chrono::seconds within = 10s) {
  const auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end)
    if (auto f = sub.next(200ms)) return f;
  return std::nullopt;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

}  // namespace

TEST(Reconnect, SubscriberGetsTheRestartAndFramesAgainWhileAPlainOneGetsBrokerLost) {
  Broker b(kCamera);
  auto client = connect(b, true);
  auto sub = client.subscribe("cam", {.mode = framebroker::Mode::Every});
  auto plain_client = connect(b, false);
  auto plain = plain_client.subscribe("cam", {.mode = framebroker::Mode::Latest});

  auto held = next_frame(sub);  // held across the restart
  ASSERT_TRUE(held);
  uint64_t last_seq = held->seq();
  for (int i = 0; i < 5; ++i) {
    auto f = next_frame(sub);
    ASSERT_TRUE(f);
    EXPECT_FALSE(f->after_restart());
    last_seq = f->seq();
  }
  ASSERT_TRUE(next_frame(plain));
  EXPECT_FALSE(sub.restart());

  kill_broker(b);

  // Without reconnect: BrokerLost once what was queued is taken.
  bool lost = false;
  for (int i = 0; i < 2000 && !lost; ++i) {
    try {
      plain.next(10ms);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::BrokerLost) << e.what();
      lost = true;
    }
  }
  EXPECT_TRUE(lost);

  // With reconnect: no throw while the broker is away. Frames queued before the kill come first.
  const auto away = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - away < 300ms) {
    std::optional<framebroker::Frame> f;
    ASSERT_NO_THROW(f = sub.next(50ms));
    if (f) {
      EXPECT_FALSE(f->after_restart());
      last_seq = f->seq();
    }
  }
  // The held frame of the dead broker is still readable.
  EXPECT_TRUE(counter_ok(*held));

  b.start(kCamera);
  auto first = next_frame(sub, 20s);
  ASSERT_TRUE(first) << "no frame after the restart";
  EXPECT_TRUE(first->after_restart());
  EXPECT_TRUE(counter_ok(*first));
  auto r = sub.restart();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count, 1u);
  EXPECT_TRUE(r->had_frame);
  EXPECT_EQ(r->last_seq_before, last_seq);
  EXPECT_EQ(r->first_seq_after, first->seq());
  EXPECT_FALSE(r->reason.empty());
  EXPECT_EQ(sub.info().stream, "cam");
  uint64_t seq = first->seq();
  first.reset();
  for (int i = 0; i < 20; ++i) {
    auto f = next_frame(sub);
    ASSERT_TRUE(f);
    EXPECT_FALSE(f->after_restart());
    EXPECT_GT(f->seq(), seq);
    EXPECT_TRUE(counter_ok(*f));
    seq = f->seq();
  }
  // Releasing the old broker's frame goes nowhere: the new broker sees no bad release.
  EXPECT_TRUE(counter_ok(*held));
  held->release();
  client.flush();
  EXPECT_TRUE(b.wait_status([](const json& s) {
    for (const auto& sb : subscribers(s))
      if (sb["client"] == "reconnecting" && sb["delivered"].get<uint64_t>() > 0) return true;
    return false;
  }));
  EXPECT_TRUE(client.take_async_errors().empty());
  EXPECT_TRUE(slot_invariant_holds(b.status()));
}

TEST(Reconnect, GivesUpAfterTheConfiguredTime) {
  Broker b(kCamera);
  framebroker::ConnectOptions co;
  co.socket_path = b.socket();
  co.reconnect = true;
  co.reconnect_give_up = 300ms;
  auto client = framebroker::Client::connect(co);
  auto sub = client.subscribe("cam", {.mode = framebroker::Mode::Latest});
  ASSERT_TRUE(next_frame(sub));
  kill_broker(b);
  const auto t0 = std::chrono::steady_clock::now();
  bool lost = false;
  while (!lost && std::chrono::steady_clock::now() - t0 < 20s) {
    try {
      sub.next(50ms);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::BrokerLost);
      EXPECT_NE(std::string(e.what()).find("did not come back"), std::string::npos) << e.what();
      lost = true;
    }
  }
  EXPECT_TRUE(lost);
  b.start(kCamera);  // stopped cleanly by the harness
}

TEST(Reconnect, FbsaveKeepsOneDatasetAcrossARestartAndRecordsTheOutage) {
  Broker b(kCamera);
  const std::string out = b.runtime_dir() + "/run.ome.zarr";
  Process save({FB_FBSAVE_BIN, "cam", "-o", out, "--reconnect", "--json", "--socket", b.socket()},
               b.runtime_dir() + "/fbsave");
  auto saver_delivered = [](uint64_t n) {
    return [n](const json& s) {
      for (const auto& sb : subscribers(s))
        if (sb["role"] == "saver" && sb["delivered"].get<uint64_t>() >= n) return true;
      return false;
    };
  };
  ASSERT_TRUE(b.wait_status(saver_delivered(100), 20s)) << save.err();
  kill_broker(b);
  std::this_thread::sleep_for(300ms);  // an outage the saver waits through
  ASSERT_TRUE(save.running()) << save.err();
  b.start(kCamera);
  ASSERT_TRUE(b.wait_status(saver_delivered(100), 20s)) << save.err();
  save.signal(SIGINT);
  auto st = save.wait(30s);
  ASSERT_TRUE(st);
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << save.err();
  const json summary = json::parse(save.out());
  EXPECT_EQ(summary["broker_restarts"], 1);
  EXPECT_TRUE(summary["error"].is_null()) << summary;

  // python3-zarr reads every frame, each with the right pixels, in order.
  auto r = run({"/usr/bin/python3",
                std::string(FB_SOURCE_DIR) + "/tests/integration/check_dataset.py", "zarr", out});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json d = json::parse(r.out);
  EXPECT_EQ(d["bad_frames"], 0);
  EXPECT_EQ(d["frames"], summary["frames_written"]);
  EXPECT_GE(d["frames"].get<int>(), 200);

  const json fb = read_json(out + "/.zattrs")["framebroker"];
  ASSERT_TRUE(fb.contains("discontinuities")) << fb.dump().substr(0, 400);
  const auto& dis = fb["discontinuities"];
  ASSERT_EQ(dis.size(), 1u);
  const auto seqs = d["seqs"].get<std::vector<uint64_t>>();
  const size_t at = dis[0]["frame"].get<size_t>();
  ASSERT_GT(at, 0u);
  ASSERT_LT(at, seqs.size());
  EXPECT_EQ(dis[0]["first_seq_after"].get<uint64_t>(), seqs[at]);
  EXPECT_EQ(dis[0]["last_seq_before"].get<uint64_t>(), seqs[at - 1]);
  EXPECT_NE(dis[0]["reason"].get<std::string>().find("broker restarted"), std::string::npos);
  EXPECT_GE(dis[0]["outage_ms"].get<uint64_t>(), 300u);
  // In order on each side of the outage; every gap is listed as missed.
  for (size_t i = 1; i < seqs.size(); ++i) {
    if (i != at) EXPECT_GT(seqs[i], seqs[i - 1]) << "frame " << i;
  }
  EXPECT_EQ(fb["frames_written"], d["frames"]);
}

TEST(Reconnect, FbbenchRestartReportsEachCycleWithNoStaleSegment) {
  auto r = run({FB_FBBENCH_BIN, "restart", "--cycles", "3", "--clients", "2", "--json"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  for (const char* key : {"reconnect_p50_ms", "reconnect_max_ms", "cycles", "clients",
                          "stale_segments_left", "broker_ready_p50_ms"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["cycles"], 3);
  EXPECT_EQ(j["clients"], 2);
  EXPECT_EQ(j["stale_segments_left"], 0);
  EXPECT_EQ(j["per_cycle"].size(), 3u);
  for (const auto& c : j["per_cycle"]) EXPECT_GT(c["segments_before"].get<int>(), 0);
  EXPECT_GT(j["reconnect_max_ms"].get<double>(), 0);
  EXPECT_GE(j["reconnect_max_ms"].get<double>(), j["reconnect_p50_ms"].get<double>());
}
