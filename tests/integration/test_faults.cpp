// Crashes and restarts: killed clients, killed brokers, read-only mappings.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

TEST(Faults, SigkillOfAHolderGivesItsSlotsBackAtOnce) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=128,Height=128,FrameRate=200,slots=16"});
  auto holder = b.fbctl_async({"watch", "cam", "--hold", "10", "--duration", "60"});
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    auto subs = subscribers(s, holder->pid());
    return subs.size() == 1 && subs[0]["held"] == 10;
  }));
  holder->signal(SIGKILL);
  ASSERT_TRUE(holder->wait(5s).has_value());
  const auto killed = std::chrono::steady_clock::now();

  // Within 100 ms the broker has taken every hold back.
  json s;
  bool gone = false;
  while (std::chrono::steady_clock::now() - killed < 100ms) {
    auto client = framebroker::Client::connect({.socket_path = b.socket()});
    auto st = client.status();
    if (std::none_of(st.subscribers.begin(), st.subscribers.end(),
                     [&](auto& x) { return x.pid == holder->pid(); })) {
      gone = true;
      break;
    }
  }
  EXPECT_TRUE(gone) << "the killed client's holds were still listed 100 ms after SIGKILL";
  s = b.status();  // and the same seen through fbctl status --json
  EXPECT_TRUE(subscribers(s, holder->pid()).empty());
  EXPECT_TRUE(slot_invariant_holds(s));
  // Only the latest cache and the frame being written remain referenced.
  EXPECT_LE(stream_of(s, "cam")["ready"].get<int>(), 2);
}

TEST(Faults, WritingIntoAMappedSlotFaults) {
  Broker b({"--no-default-camera", "--camera", "sim:name=cam,Width=64,Height=64,FrameRate=100"});
  // ASan would turn the fault into its own report and exit code; we want the signal.
  Process probe({FB_PROBE_BIN, b.socket(), "cam", "write"}, b.runtime_dir() + "/probe",
                {"ASAN_OPTIONS=handle_segv=0:detect_leaks=0"});
  auto st = probe.wait(20s);
  ASSERT_TRUE(st.has_value());
  EXPECT_NE(probe.out().find("writing into slot"), std::string::npos) << probe.err();
  EXPECT_EQ(probe.out().find("write succeeded"), std::string::npos);
  ASSERT_TRUE(WIFSIGNALED(*st)) << "exit status " << *st << ": " << probe.err();
  EXPECT_TRUE(WTERMSIG(*st) == SIGSEGV || WTERMSIG(*st) == SIGBUS) << WTERMSIG(*st);
  // The broker did not notice anything but a disconnect.
  EXPECT_TRUE(b.process().running());
  EXPECT_TRUE(slot_invariant_holds(b.status()));
}

TEST(Faults, SecondBrokerOnTheSameInstanceNamesTheFirst) {
  Broker b({"--no-default-camera"});
  auto second = b.start_another({"--no-default-camera"});
  auto st = second->wait(20s);
  ASSERT_TRUE(st.has_value());
  ASSERT_TRUE(WIFEXITED(*st));
  EXPECT_NE(WEXITSTATUS(*st), 0);
  EXPECT_NE(second->err().find("pid " + std::to_string(b.process().pid())), std::string::npos)
      << second->err();
  EXPECT_TRUE(b.process().running());
  EXPECT_EQ(b.fbctl({"status"}).exit_code, 0);  // the first one is untouched
}

TEST(Faults, AfterSigkillOfTheBrokerANewOneStartsCleanAndClientsSeeBrokerLost) {
  Broker b({"--no-default-camera", "--camera", "sim:name=cam,Width=64,Height=64,FrameRate=100"});
  auto watcher = b.fbctl_async({"watch", "cam", "--duration", "60"});
  ASSERT_TRUE(
      b.wait_status([&](const json& s) { return !subscribers(s, watcher->pid()).empty(); }));
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("cam");
  ASSERT_TRUE(sub.next(5s).has_value());
  ASSERT_EQ(b.segments().size(), 1u);

  b.process().signal(SIGKILL);
  ASSERT_TRUE(b.process().wait(5s).has_value());

  // The library reports BrokerLost (after handing out what had already arrived).
  bool lost = false;
  try {
    for (int i = 0; i < 1000; ++i) sub.next(1s);
  } catch (const framebroker::Error& e) {
    lost = e.code() == framebroker::Errc::BrokerLost;
  }
  EXPECT_TRUE(lost);
  // fbctl watch says so and exits 3.
  auto st = watcher->wait(10s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 3);
  EXPECT_NE(watcher->err().find("lost the broker"), std::string::npos) << watcher->err();

  // The killed broker left its socket and segment; a new one clears them.
  b.start({"--no-default-camera", "--camera", "sim:name=cam,Width=64,Height=64,FrameRate=100"});
  EXPECT_NE(b.process().err().find("stale"), std::string::npos) << b.process().err();
  const json s = b.status();
  EXPECT_EQ(stream_of(s, "cam")["gen"], 1);
  EXPECT_EQ(b.segments().size(), 1u);
  auto fresh = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub2 = fresh.subscribe("cam");
  EXPECT_TRUE(sub2.next(5s).has_value());
}

TEST(Faults, SigtermStopsCleanlyAndRemovesSocketAndSegments) {
  Broker b({"--no-default-camera", "--camera", "sim:name=cam,Width=64,Height=64,FrameRate=100"});
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("cam");
  auto held = sub.next(5s);
  ASSERT_TRUE(held.has_value());
  b.process().signal(SIGTERM);
  auto st = b.process().wait(10s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << b.process().err();
  EXPECT_FALSE(std::filesystem::exists(b.socket()));
  EXPECT_TRUE(b.segments().empty());
  // A frame the client still holds stays readable after the broker is gone.
  uint64_t sum = 0;
  for (auto byte : held->pixels()) sum += uint64_t(byte);
  (void)sum;
  try {
    while (sub.next(1s)) {
    }
    FAIL() << "no BrokerLost";
  } catch (const framebroker::Error& e) {
    EXPECT_EQ(e.code(), framebroker::Errc::BrokerLost);
    EXPECT_NE(std::string(e.what()).find("shutting down"), std::string::npos) << e.what();
  }
}

TEST(Faults, ClientWithNoBrokerGetsAClearError) {
  try {
    framebroker::Client::connect({.socket_path = "/tmp/fbtest-nobroker/none.sock"});
    FAIL() << "connected to nothing";
  } catch (const framebroker::Error& e) {
    EXPECT_EQ(e.code(), framebroker::Errc::BrokerNotRunning);
    EXPECT_NE(std::string(e.what()).find("/tmp/fbtest-nobroker/none.sock"), std::string::npos);
  }
  auto r = run({FB_FBCTL_BIN, "status", "--socket", "/tmp/fbtest-nobroker/none.sock"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("not running"), std::string::npos) << r.err;
}

TEST(Config, TheShippedExampleConfigStartsTwoCameras) {
  Broker b({"--config", std::string(FB_SOURCE_DIR) + "/systemd/framebroker.example.toml"});
  const json s = b.status();
  ASSERT_EQ(s["streams"].size(), 2u);
  const auto& cam0 = stream_of(s, "cam0");
  EXPECT_EQ(cam0["format"]["width"], 1024);
  EXPECT_EQ(cam0["slots"], 200);  // ring_ms = 1000 at FrameRate 200
  const auto& cam1 = stream_of(s, "cam1");
  EXPECT_EQ(cam1["format"]["pixel_type"], "Mono8");
  EXPECT_EQ(cam1["slots"], 64 * 1024 * 1024 / (512 * 512));  // ring_mb / slot size
  EXPECT_TRUE(b.wait_status([](const json& st) { return stream_of(st, "cam0")["published"] > 0; }));
  EXPECT_EQ(stream_of(b.status(), "cam1")["published"], 0);  // start = false
}
