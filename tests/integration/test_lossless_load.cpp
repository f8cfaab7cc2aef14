// Lossless under load: rings sized by time (ring_ms), camera threads at raised priority
// (--realtime-priority, and its fallback where it is not permitted), and `fbbench soak` with CPU
// hogs beside it and with the 8-subscriber mix.
#include <dirent.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

uint32_t slots_of(Broker& b, const std::string& stream) {
  return stream_of(b.status(), stream)["slots"].get<uint32_t>();
}

// The scheduling policies of a process's threads.
std::vector<int> thread_policies(pid_t pid) {
  std::vector<int> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const int policy = ::sched_getscheduler(pid_t(std::atoi(e.path().filename().c_str())));
    if (policy >= 0) out.push_back(policy);
  }
  return out;
}

bool has_fifo_thread(pid_t pid) {
  for (int p : thread_policies(pid))
    if (p == SCHED_FIFO) return true;
  return false;
}

std::string setpriv() {
  for (const char* p : {"/usr/bin/setpriv", "/bin/setpriv"})
    if (std::filesystem::exists(p)) return p;
  return "";
}

json fbbench_json(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {FB_FBBENCH_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--broker", FB_BROKER_BIN, "--fbsave", FB_FBSAVE_BIN, "--json"});
  const Result r = run(argv, timeout);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  try {
    return json::parse(r.out);
  } catch (const json::exception& e) {
    ADD_FAILURE() << "not JSON: " << r.out << "\n" << r.err;
    return json::object();
  }
}

}  // namespace

// With no slots= or ring_mb=, a camera's ring holds ring_ms (default 1000) of frames at its
// FrameRate, at least 32 slots; an explicit slots= or ring_mb= wins.
TEST(LosslessLoad, RingsHoldOneSecondOfFramesByDefault) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=fast,Width=64,Height=64,FrameRate=500,start=false", "--camera",
            "sim:name=short,Width=64,Height=64,FrameRate=500,ring_ms=200,start=false", "--camera",
            "sim:name=slow,Width=64,Height=64,FrameRate=5,start=false", "--camera",
            "sim:name=free,Width=64,Height=64,FrameRate=0,start=false", "--camera",
            "sim:name=fixed,Width=64,Height=64,FrameRate=500,slots=40,start=false", "--camera",
            "sim:name=bymb,Width=512,Height=512,FrameRate=500,ring_mb=8,ring_ms=2000,start=false"});
  EXPECT_EQ(slots_of(b, "fast"), 500u);
  EXPECT_EQ(slots_of(b, "short"), 100u);
  EXPECT_EQ(slots_of(b, "slow"), 32u);  // at least 32
  EXPECT_EQ(slots_of(b, "free"), 32u);  // FrameRate=0: free-running, the rate is unknown
  EXPECT_EQ(slots_of(b, "fixed"), 40u);
  EXPECT_EQ(slots_of(b, "bymb"), 16u);  // 8 MiB of 512 KiB slots
  EXPECT_TRUE(slot_invariant_holds(b.status()));
}

// The ring follows the camera's FrameRate at the next start; the hard cap holds.
TEST(LosslessLoad, TheRingFollowsFrameRateAtTheNextStart) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=32,Height=16,Pattern=counter,FrameRate=100,start=false"});
  EXPECT_EQ(slots_of(b, "cam"), 100u);
  ASSERT_EQ(b.fbctl({"set", "cam", "FrameRate", "400"}).exit_code, 0);
  ASSERT_EQ(b.fbctl({"start", "cam", "--frames", "20"}).exit_code, 0);
  EXPECT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["slots"] == 400; }));
  ASSERT_EQ(b.fbctl({"set", "cam", "FrameRate", "100000"}).exit_code, 0);
  b.wait_status([](const json& s) { return stream_of(s, "cam")["published"] == 20; });
  ASSERT_EQ(b.fbctl({"start", "cam", "--frames", "1"}).exit_code, 0);
  EXPECT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["slots"] == 16384; }))
      << b.status().dump();
}

TEST(LosslessLoad, TomlCamerasTakeRingMs) {
  char tmpl[] = "/tmp/fbtest-toml-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/fb.toml";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(
        "realtime_priority = 5\n"
        "[[camera]]\ndriver = \"sim\"\nname = \"a\"\nring_ms = 500\nstart = false\n"
        "[camera.properties]\nWidth = 64\nHeight = 64\nFrameRate = 300\n",
        f);
    std::fclose(f);
  }
  {
    Broker b({"--config", path, "--no-default-camera"});
    EXPECT_EQ(slots_of(b, "a"), 150u);
  }
  std::filesystem::remove_all(dir);
}

// As root (or with CAP_SYS_NICE / RLIMIT_RTPRIO) a camera thread runs SCHED_FIFO; the broker's
// other threads do not.
TEST(LosslessLoad, RealtimePriorityRaisesTheCameraThread) {
  Broker b({"--realtime-priority", "10", "--no-default-camera", "--camera",
            "sim:name=cam,Width=32,Height=16,FrameRate=200"});
  ASSERT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["published"] > 10; }));
  const pid_t pid = b.process().pid();
  sched_param sp{};
  sp.sched_priority = 10;
  const bool permitted = ::sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  if (permitted) {
    sp.sched_priority = 0;
    ::sched_setscheduler(0, SCHED_OTHER, &sp);  // the test itself goes back
    EXPECT_TRUE(has_fifo_thread(pid));
    int fifo = 0;
    for (int p : thread_policies(pid)) fifo += p == SCHED_FIFO;
    EXPECT_EQ(fifo, 1);  // the camera thread only
    EXPECT_EQ(b.process().err().find("not permitted"), std::string::npos) << b.process().err();
  } else {
    EXPECT_FALSE(has_fifo_thread(pid));
    EXPECT_NE(b.process().err().find("SCHED_FIFO priority 10 not permitted"), std::string::npos)
        << b.process().err();
  }
  EXPECT_EQ(b.fbctl({"stop", "cam"}).exit_code, 0);
}

// A broker run as nobody may not use SCHED_FIFO (nor a lower nice value): it says so once and
// serves frames as usual.
TEST(LosslessLoad, RealtimePriorityFallsBackWhenNotPermitted) {
  if (::geteuid() != 0 || setpriv().empty()) GTEST_SKIP() << "needs root and setpriv";
  const struct passwd* nobody = ::getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user nobody";
  char tmpl[] = "/tmp/fbtest-rt-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  ::chmod(dir.c_str(), 0777);
  const std::string instance = "rt" + std::to_string(::getpid());
  Process broker({setpriv(), "--reuid=" + std::to_string(nobody->pw_uid),
                  "--regid=" + std::to_string(nobody->pw_gid), "--clear-groups", "--",
                  FB_BROKER_BIN, "--runtime-dir", dir, "--instance", instance,
                  "--realtime-priority", "10", "--no-default-camera", "--camera",
                  "sim:name=cam,Width=32,Height=16,FrameRate=200,start=true"},
                 dir + "/broker");
  const std::string socket = dir + "/" + instance + ".sock";
  bool frames = false;
  for (int i = 0; i < 200 && !frames; ++i) {
    std::this_thread::sleep_for(50ms);
    const Result r = run({FB_FBCTL_BIN, "status", "--json", "--socket", socket});
    if (r.exit_code == 0) frames = stream_of(json::parse(r.out), "cam")["published"] > 10;
  }
  EXPECT_TRUE(frames) << broker.err();
  const std::string err = broker.err();
  const std::string line =
      "realtime_priority: camera threads: SCHED_FIFO priority 10 not permitted";
  const auto at = err.find(line);
  EXPECT_NE(at, std::string::npos) << err;
  EXPECT_EQ(err.find(line, at + 1), std::string::npos) << "said more than once:\n" << err;
  EXPECT_NE(err.find("normal priority"), std::string::npos) << err;  // nobody may not renice
  EXPECT_FALSE(has_fifo_thread(broker.pid()));
  broker.signal(SIGTERM);
  const auto st = broker.wait(20s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << broker.err();
  std::filesystem::remove_all(dir);
}

TEST(LosslessLoad, FbsaveRealtimePriorityIsAccepted) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=32,Height=16,Pattern=counter,FrameRate=500,start=false"});
  char tmpl[] = "/tmp/fbtest-save-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const Result r =
      run({FB_FBSAVE_BIN, "cam", "--socket", b.socket(), "-o", dir + "/out", "--format", "raw",
           "--frames", "200", "--start", "--json", "--realtime-priority", "10"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out.substr(r.out.rfind('{')));
  EXPECT_EQ(j["frames_written"], 200);
  EXPECT_EQ(j["frames_missed"], 0);
  if (::geteuid() == 0) {
    EXPECT_EQ(r.err.find("not permitted"), std::string::npos) << r.err;
  }
  EXPECT_NE(run({FB_FBSAVE_BIN, "cam", "-o", dir + "/x", "--realtime-priority", "100"}).exit_code,
            0);  // out of range
  std::filesystem::remove_all(dir);
}

// The case: two CPU-bound processes beside a lossless saver at 500 fps, 256x256 Mono16,
// with the broker's default ring.
TEST(LosslessLoad, SoakWithTwoHogsMissesNothing) {
  const json j = fbbench_json({"soak", "--hogs", "2", "--seconds", "5", "--rate", "500", "--size",
                               "256", "--pattern", "counter"},
                              120s);
  for (const char* key : {"missed", "rate", "size", "frames", "hogs", "slots"})
    EXPECT_TRUE(j.contains(key)) << key << " missing: " << j.dump();
  EXPECT_EQ(j["missed"], 0) << j.dump();
  EXPECT_EQ(j["frames"], 2500);
  EXPECT_EQ(j["frames_written"], 2500);
  EXPECT_EQ(j["hogs"], 2);
  EXPECT_EQ(j["rate"], 500.0);
  EXPECT_EQ(j["size"], "256x256");
  EXPECT_EQ(j["slots"], 500);  // ring_ms: 1 s at 500 fps
}

// The short version of the 10-minute soak: 8 subscribers, the slot invariant every second,
// everything accounted for.
TEST(LosslessLoad, ShortMixSoakAccountsForEveryFrame) {
  const json j = fbbench_json(
      {"soak", "--mix", "--seconds", "5", "--rate", "200", "--size", "128", "--pattern", "counter"},
      120s);
  EXPECT_EQ(j["mode"], "mix");
  EXPECT_GE(j["invariant_checks"].get<int>(), 4) << j.dump();
  EXPECT_EQ(j["invariant_failures"], 0) << j.dump();
  EXPECT_TRUE(j["accounting_ok"].get<bool>()) << j.dump();
  EXPECT_EQ(j["missed"], 0) << j.dump();
  EXPECT_EQ(j["published"], 1000);
  for (const char* key : {"rss_start_kib", "rss_end_kib", "rss_growth_kib"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_GT(j["rss_start_kib"].get<int64_t>(), 0);
  ASSERT_EQ(j["subscribers"].size(), 8u);
  int every = 0, latest = 0;
  for (const auto& s : j["subscribers"]) {
    EXPECT_TRUE(s["balanced"].get<bool>()) << s.dump();
    if (s["name"] == "fbsave") continue;
    EXPECT_EQ(s["published"], 1000) << s.dump();
    EXPECT_EQ(s["delivered"].get<uint64_t>() + s["missed"].get<uint64_t>() +
                  s["conflated"].get<uint64_t>(),
              1000u)
        << s.dump();
    (s["mode"] == "every" ? every : latest)++;
    if (s["name"] == "soak-every-slow") {
      EXPECT_GT(s["missed"].get<uint64_t>(), 0u) << s.dump();
    } else if (s["mode"] == "every") {
      EXPECT_EQ(s["delivered"], 1000) << s.dump();
    }
  }
  EXPECT_EQ(every, 4);
  EXPECT_EQ(latest, 3);
}
