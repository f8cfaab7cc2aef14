// fbbench latency and throughput end to end: short real runs (a real framebrokerd, real
// sockets, forked baseline senders) whose JSON must hold every documented key with values that
// make sense. Timing is never asserted: only that each number was measured.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

Result fbbench(std::vector<std::string> args, std::chrono::milliseconds timeout = 110s) {
  args.insert(args.begin(), FB_FBBENCH_BIN);
  args.push_back("--broker");
  args.push_back(FB_BROKER_BIN);
  return run(args, timeout);
}

json rows_of(const Result& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return json::array();
  const json j = json::parse(r.out);
  return j.at("rows");
}

void expect_ordered(const json& row, const std::string& prefix) {
  SCOPED_TRACE(prefix);
  const double p50 = row.at(prefix + "p50_us"), p99 = row.at(prefix + "p99_us");
  EXPECT_GT(p50, 0);
  EXPECT_LE(p50, p99);
}

bool iceoryx_installed() {
  return std::filesystem::exists("/usr/bin/iox-roudi");
}

std::string slurp_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// /proc/<pid>/stat: (comm, state, parent pid); nullopt once the process is gone.
struct ProcStat {
  std::string comm;
  char state = '?';
  pid_t ppid = 0;
};
std::optional<ProcStat> proc_stat(pid_t pid) {
  const std::string text = slurp_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 4 >= text.size())
    return std::nullopt;
  ProcStat s;
  s.comm = text.substr(open + 1, close - open - 1);
  s.state = text[close + 2];
  s.ppid = pid_t(std::stol(text.substr(close + 4)));
  return s;
}

// The children of `parent` named `comm`.
std::vector<pid_t> children_named(pid_t parent, const std::string& comm) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = pid_t(std::stol(name));
    if (const auto s = proc_stat(pid); s && s->ppid == parent && s->comm == comm)
      found.push_back(pid);
  }
  return found;
}

// Gone: no such process, or a zombie nobody has reaped yet (it runs no more).
bool gone(pid_t pid) {
  const auto s = proc_stat(pid);
  return !s || s->state == 'Z' || s->state == 'X';
}

// The value that follows `flag` in the NUL-separated /proc/<pid>/cmdline.
std::string cmdline_value(pid_t pid, const std::string& flag) {
  const std::string text = slurp_file("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\0', at);
    args.push_back(text.substr(at, end - at));
    at = end == std::string::npos ? text.size() : end + 1;
  }
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag) return args[i + 1];
  return {};
}

// The broker's cost over the measured window, as both commands report it: per-thread totals from
// /proc/<pid>/task/*, of which the main thread is the socket thread.
void expect_broker_cost(const json& row) {
  EXPECT_GT(row.at("broker_frames").get<uint64_t>(), 0u);
  EXPECT_GT(row.at("broker_cpu_us_per_frame").get<double>(), 0);
  EXPECT_GE(row.at("broker_cpu_us_per_frame_alone").get<double>(), 0);
  EXPECT_GE(row.at("broker_cpu_us_per_frame_per_subscriber").get<double>(), 0);
  const json& threads = row.at("broker_threads");
  ASSERT_GE(threads.size(), 2u) << "the broker has a socket thread and a camera thread";
  int socket_threads = 0;
  uint64_t voluntary = 0;
  for (const auto& t : threads) {
    EXPECT_FALSE(t.at("name").get<std::string>().empty());
    socket_threads += t.at("socket_thread").get<bool>();
    voluntary += t.at("voluntary_switches").get<uint64_t>();
    if (t.at("socket_thread").get<bool>()) {
      EXPECT_DOUBLE_EQ(row.at("broker_wakeups_per_frame").get<double>(),
                       double(t.at("voluntary_switches").get<uint64_t>()) /
                           row.at("broker_frames").get<double>());
    }
  }
  EXPECT_EQ(socket_threads, 1);
  EXPECT_GT(voluntary, 0u) << "some broker thread slept in the window";
}

// What a throughput row counts must add up: deliveries per subscriber, their mean and least,
// GB/s from the same counts, the ratios from the figures they divide.
void expect_consistent_throughput(const json& row) {
  const auto by_sub = row.at("delivered_by_subscriber").get<std::vector<uint64_t>>();
  ASSERT_EQ(by_sub.size(), row.at("subscribers").get<size_t>());
  EXPECT_EQ(row.at("missed_by_subscriber").size(), by_sub.size());
  uint64_t sum = 0, least = by_sub.front();
  for (const uint64_t n : by_sub) sum += n, least = std::min(least, n);
  EXPECT_EQ(row.at("delivered").get<uint64_t>(), sum);
  const double seconds = row.at("seconds");
  ASSERT_GT(seconds, 0);
  EXPECT_NEAR(row.at("deliveries_per_subscriber_per_s").get<double>(),
              double(sum) / double(by_sub.size()) / seconds, 1e-6 * double(sum) + 1e-9);
  EXPECT_NEAR(row.at("deliveries_per_subscriber_per_s_min").get<double>(), double(least) / seconds,
              1e-6 * double(sum) + 1e-9);
  EXPECT_NEAR(row.at("published_per_s").get<double>(), row.at("published").get<double>() / seconds,
              1e-6 * double(sum) + 1e-9);
  // The `every` subscriber gets at most what was published, give or take the frames in flight
  // when the window's counts were read (the broker's count and fbbench's are read one by one).
  EXPECT_LE(by_sub.front(), row.at("published").get<uint64_t>() + row.at("slots").get<uint64_t>());
  EXPECT_NEAR(row.at("delivered_gbps").get<double>(),
              double(sum) * row.at("frame_bytes").get<double>() / seconds / 1e9, 1e-6);
  const double floor = row.at("floor_deliveries_per_subscriber_per_s");
  EXPECT_GT(floor, 0);
  EXPECT_NEAR(row.at("deliveries_vs_floor").get<double>(),
              row.at("deliveries_per_subscriber_per_s").get<double>() / floor, 1e-9);
  EXPECT_GT(row.at("copy_deliveries_per_subscriber_per_s").get<double>(), 0);
  EXPECT_GT(row.at("floor_delivered_gbps").get<double>(), 0);
  EXPECT_GT(row.at("copy_delivered_gbps").get<double>(), 0);
  EXPECT_EQ(row.at("subscriber_modes"), json({"every", "latest"}));
  for (const char* gone : {"fps", "gbps", "gbps_vs_floor", "floor_fps", "copy_fps"})
    EXPECT_FALSE(row.contains(gone)) << gone << " did not say what it counted";
  expect_broker_cost(row);
}

}  // namespace

TEST(Fbbench, LatencyMeasuresFramebrokerAndEveryBaseline) {
  std::vector<std::string> args{"latency", "--sizes",  "64K", "--subscribers", "1,2", "--rate",
                                "500",     "--frames", "300", "--warmup",      "30",  "--json"};
  if (!iceoryx_installed()) args.push_back("--no-iceoryx");
  const json rows = rows_of(fbbench(args));
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    SCOPED_TRACE(row.dump());
    EXPECT_EQ(row.at("size"), "64K");
    EXPECT_EQ(row.at("frames").get<uint64_t>(), 300u * row.at("subscribers").get<uint64_t>());
    EXPECT_EQ(row.at("lost"), 0) << "an every subscriber at 500 fps loses nothing";
    expect_ordered(row, "");
    EXPECT_LE(row.at("p99_us").get<double>(), row.at("p999_us").get<double>());
    EXPECT_LE(row.at("p999_us").get<double>(), row.at("max_us").get<double>());
    expect_ordered(row, "floor_");
    expect_ordered(row, "copy_");
    // The broker's own count: a frame is released after it was received, and the two clocks
    // are the same CLOCK_MONOTONIC (the histogram rounds to 1.6 %).
    EXPECT_GE(row.at("round_trip_p50_us").get<double>(), 0.9 * row.at("p50_us").get<double>());
    if (iceoryx_installed()) expect_ordered(row, "iceoryx_");
    EXPECT_FALSE(row.contains("iceoryx_busy_skipped")) << "no --spin, no busy-poll run";
    expect_broker_cost(row);
    // The measured frames, and those of the run's tail until fbbench stopped the camera.
    EXPECT_GE(row.at("broker_frames").get<uint64_t>(), 300u);
  }
  EXPECT_EQ(rows[0].at("subscribers"), 1);
  EXPECT_EQ(rows[1].at("subscribers"), 2);
}

TEST(Fbbench, ThroughputCountsFramesDropsAndBrokerCost) {
  for (const std::string read : {"none", "all"}) {
    SCOPED_TRACE(read);
    const json rows = rows_of(fbbench({"throughput", "--size", "8K", "--subscribers", "2",
                                       "--duration", "0.5", "--read", read, "--json"}));
    ASSERT_EQ(rows.size(), 1u);
    const json& row = rows[0];
    SCOPED_TRACE(row.dump());
    EXPECT_EQ(row.at("size"), "8K");
    EXPECT_EQ(row.at("subscribers"), 2);
    EXPECT_GT(row.at("published_per_s").get<double>(), 100);
    EXPECT_GE(row.at("dropped").get<int64_t>(), 0);
    EXPECT_GT(row.at("broker_rss_end_kb").get<uint64_t>(), 0u);
    expect_consistent_throughput(row);
  }
}

TEST(Fbbench, PacedThroughputLosesNothing) {
  const json rows = rows_of(fbbench({"throughput", "--size", "8K", "--subscribers", "2", "--rate",
                                     "2000", "--duration", "1", "--json"}));
  ASSERT_EQ(rows.size(), 1u);
  const json& row = rows[0];
  EXPECT_EQ(row.at("dropped"), 0) << row.dump();
  EXPECT_EQ(row.at("missed_by_subscriber").at(0), 0) << "the `every` subscriber keeps up at 2000/s";
  EXPECT_GT(row.at("published_per_s").get<double>(), 1000) << row.dump();
  EXPECT_GT(row.at("deliveries_per_subscriber_per_s_min").get<double>(), 0) << row.dump();
}

// 64x64 is a frame of 64 x 64 pixels, as the README's throughput command writes it.
TEST(Fbbench, ThroughputTakesWidthByHeight) {
  const json rows = rows_of(
      fbbench({"throughput", "--size", "64x64", "--rate", "5000", "--duration", "0.5", "--json"}));
  ASSERT_EQ(rows.size(), 1u);
  const json& row = rows[0];
  SCOPED_TRACE(row.dump());
  EXPECT_EQ(row.at("size"), "64x64");
  EXPECT_EQ(row.at("width"), 64);
  EXPECT_EQ(row.at("height"), 64);
  EXPECT_EQ(row.at("frame_bytes"), 64 * 64 * 2);
  EXPECT_EQ(row.at("dropped"), 0);
  EXPECT_GT(row.at("published_per_s").get<double>(), 1000);
  expect_consistent_throughput(row);

  const Result odd = fbbench({"throughput", "--size", "64x", "--json"}, 10s);
  EXPECT_EQ(odd.exit_code, 1);
  EXPECT_NE(odd.err.find("'64x' is not a frame size"), std::string::npos) << odd.err;
}

// --spin sets the subscribers' spin and adds iceoryx busy-polling to the row, or says why not.
TEST(Fbbench, SpinComparesWithIceoryxBusyPoll) {
  std::vector<std::string> args{"latency", "--sizes", "8K",       "--subscribers", "1",
                                "--rate",  "1000",    "--frames", "200",           "--warmup",
                                "20",      "--spin",  "50",       "--json"};
  if (!iceoryx_installed()) args.push_back("--no-iceoryx");
  const Result r = fbbench(args);
  const json rows = rows_of(r);
  ASSERT_EQ(rows.size(), 1u);
  const json& row = rows[0];
  SCOPED_TRACE(row.dump());
  EXPECT_EQ(json::parse(r.out).at("spin_us"), 50);
  EXPECT_EQ(row.at("lost"), 0);
  expect_ordered(row, "");
  if (iceoryx_installed()) {
    expect_ordered(row, "iceoryx_busy_");
    EXPECT_NEAR(row.at("p50_vs_iceoryx_busy").get<double>(),
                row.at("p50_us").get<double>() / row.at("iceoryx_busy_p50_us").get<double>(), 1e-9);
    EXPECT_FALSE(row.contains("iceoryx_busy_skipped"));
  } else {
    EXPECT_FALSE(row.at("iceoryx_busy_skipped").get<std::string>().empty());
  }

  // Asked not to run iceoryx, the row says so instead of leaving the figure out silently.
  std::vector<std::string> without = args;
  if (iceoryx_installed()) without.push_back("--no-iceoryx");
  const json rows2 = rows_of(fbbench(without));
  ASSERT_EQ(rows2.size(), 1u);
  EXPECT_EQ(rows2[0].at("iceoryx_busy_skipped"), "--no-iceoryx");
  EXPECT_FALSE(rows2[0].contains("iceoryx_busy_p50_us"));
}

// --json goes before the command, as with fbctl, or after it. fbctl's --socket and --instance
// get the reason they do not apply, in either place, not "not expected".
TEST(Fbbench, GlobalOptionsWorkBeforeAndAfterTheCommand) {
  const std::vector<std::string> latency{"latency", "--sizes",  "8K",   "--subscribers",
                                         "1",       "--frames", "20",   "--warmup",
                                         "5",       "--rate",   "1000", "--no-iceoryx"};
  std::vector<std::string> before{"--json"};
  before.insert(before.end(), latency.begin(), latency.end());
  std::vector<std::string> after = latency;
  after.push_back("--json");
  for (const auto& args : {before, after}) {
    SCOPED_TRACE(args.front());
    const json rows = rows_of(fbbench(args));
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].at("size"), "8K");
    EXPECT_EQ(rows[0].at("frames"), 20);
  }

  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--socket", "/run/framebroker/default.sock", "throughput"},
           {"throughput", "--socket", "/run/framebroker/default.sock"},
           {"--instance", "lab", "latency"},
           {"latency", "--instance", "lab"}}) {
    const Result r = fbbench(args, 10s);
    SCOPED_TRACE(args[0] + " " + args[1]);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("fbbench measures brokers it starts itself"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("not expected"), std::string::npos) << r.err;
  }

  const Result help = run({FB_FBBENCH_BIN, "--help"}, 10s);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("fbbench --json "), std::string::npos) << help.out;
}

TEST(Fbbench, BadArgumentsGetClearErrors) {
  const Result pin = fbbench({"latency", "--pin", "sideways"}, 10s);
  EXPECT_EQ(pin.exit_code, 2);
  EXPECT_NE(pin.err.find("--pin"), std::string::npos) << pin.err;

  const Result size = fbbench({"latency", "--sizes", "12Q", "--no-iceoryx"}, 10s);
  EXPECT_EQ(size.exit_code, 1);
  EXPECT_NE(size.err.find("'12Q' is not a frame size"), std::string::npos) << size.err;

  const Result broker =
      run({FB_FBBENCH_BIN, "throughput", "--broker", "/nonexistent/framebrokerd"}, 10s);
  EXPECT_EQ(broker.exit_code, 1);
  EXPECT_NE(broker.err.find("/nonexistent/framebrokerd"), std::string::npos) << broker.err;
}

// fbbench's children die with it, even when it is SIGKILLed and can clean nothing up: the
// framebrokerd it started for a long latency run must not outlive it.
TEST(Fbbench, ChildrenDieWhenFbbenchIsKilled) {
  const std::string log = std::filesystem::temp_directory_path().string() + "/fbbench-killed-" +
                          std::to_string(::getpid());
  Process bench(
      {FB_FBBENCH_BIN, "latency", "--sizes", "64K", "--subscribers", "1", "--rate", "1000",
       "--frames", "1000000", "--warmup", "10", "--no-iceoryx", "--broker", FB_BROKER_BIN},
      log);
  pid_t broker = -1;
  for (const auto deadline = std::chrono::steady_clock::now() + 30s;
       broker < 0 && std::chrono::steady_clock::now() < deadline && bench.running();) {
    const auto found = children_named(bench.pid(), "framebrokerd");
    if (!found.empty())
      broker = found.front();
    else
      std::this_thread::sleep_for(20ms);
  }
  ASSERT_GT(broker, 0) << "fbbench started no framebrokerd: " << bench.err();
  const std::string runtime_dir = cmdline_value(broker, "--runtime-dir");
  const std::string instance = cmdline_value(broker, "--instance");
  EXPECT_FALSE(runtime_dir.empty());

  bench.signal(SIGKILL);
  ASSERT_TRUE(bench.wait(10s).has_value());
  bool broker_gone = false;
  for (const auto deadline = std::chrono::steady_clock::now() + 10s;
       !broker_gone && std::chrono::steady_clock::now() < deadline;) {
    broker_gone = gone(broker);
    if (!broker_gone) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(broker_gone) << "framebrokerd " << broker << " outlived the fbbench that started it";
  if (!broker_gone) ::kill(broker, SIGKILL);

  // What the killed fbbench and its SIGKILLed broker could not remove: the runtime directory,
  // the broker's lock and its ring's segment (/dev/shm/fb.<instance>.*).
  std::error_code ec;
  if (runtime_dir.find("fbbench-run") != std::string::npos)
    std::filesystem::remove_all(runtime_dir, ec);
  if (!instance.empty())
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec))
      if (e.path().filename().string().rfind("fb." + instance + ".", 0) == 0)
        std::filesystem::remove(e.path(), ec);
  for (const char* ext : {".out", ".err"}) ::unlink((log + ext).c_str());
}
