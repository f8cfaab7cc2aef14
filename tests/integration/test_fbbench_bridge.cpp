// fbbench bridge with tiny sizes and durations: it makes its namespaces and veth pair, runs
// iperf3 and fbbridge across them, reports the JSON it documents, and frames arrive on the far
// side. Needs root, `ip` and fbbridge (libzmq); skipped otherwise. No timing assertions.
#include <gtest/gtest.h>
#include <unistd.h>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

#ifdef FB_FBBRIDGE_BIN
constexpr bool kHaveBridge = true;
#else
constexpr bool kHaveBridge = false;
#endif

TEST(FbbenchBridge, TinyRunReportsEveryKeyAndFramesArrive) {
  if (!kHaveBridge) GTEST_SKIP() << "fbbridge is not built (libzmq not found)";
  if (::geteuid() != 0) GTEST_SKIP() << "not root: network namespaces need CAP_SYS_ADMIN";
  if (run({"/usr/sbin/ip", "-V"}, 10s).exit_code != 0) GTEST_SKIP() << "no `ip` (iproute2)";
  // fbbench finds iperf3 in PATH; Debian installs it here.
  const bool have_iperf = ::access("/usr/bin/iperf3", X_OK) == 0;

  const Result r = run(
      {FB_FBBENCH_BIN, "bridge", "--sizes", "64K", "--modes", "every,latest", "--duration", "0.5",
       "--latency-rate", "50", "--latency-frames", "10", "--iperf-seconds", "1", "--json"},
      120s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  for (const char* k : {"iperf3", "producer", "goal_8M_every_over_iperf3", "load_average", "rows"})
    EXPECT_TRUE(j.contains(k)) << k << " missing in " << r.out;
  EXPECT_EQ(j["iperf3"]["ran"].get<bool>(), have_iperf) << j["iperf3"].dump();
  if (have_iperf) {
    EXPECT_GT(j["iperf3"]["gb_per_s"].get<double>(), 0);
  }
  // No 8M row: no goal to judge.
  EXPECT_TRUE(j["goal_8M_every_over_iperf3"].is_null());

  int throughput = 0, latency = 0;
  for (const auto& row : j["rows"]) {
    EXPECT_EQ(row["frame_bytes"].get<uint64_t>(), 64u * 1024) << row.dump();
    if (row["kind"] == "throughput") {
      ++throughput;
      for (const char* k :
           {"mode", "frames_per_s", "gb_per_s", "frames_received", "frames_missed",
            "camera_frames_per_s", "exporter_cpu_s_per_gb", "memcpy_cpu_s_per_gb", "over_iperf3"})
        EXPECT_TRUE(row.contains(k)) << k << " missing in " << row.dump();
      EXPECT_GT(row["frames_received"].get<uint64_t>(), 0u) << "no frame crossed: " << row.dump();
      EXPECT_GT(row["memcpy_cpu_s_per_gb"].get<double>(), 0);
    } else {
      ASSERT_EQ(row["kind"], "latency") << row.dump();
      ++latency;
      EXPECT_GT(row["frames"].get<uint64_t>(), 0u) << "no latency sample: " << row.dump();
      EXPECT_GT(row["commit_to_remote_p50_us"].get<double>(), 0) << row.dump();
      EXPECT_GE(row["commit_to_remote_p99_us"].get<double>(),
                row["commit_to_remote_p50_us"].get<double>());
    }
  }
  EXPECT_EQ(throughput, 2);  // every, latest
  EXPECT_EQ(latency, 1);

  // The namespaces are gone.
  const Result ns = run({"/usr/sbin/ip", "netns", "list"}, 10s);
  EXPECT_EQ(ns.out.find("fbnA"), std::string::npos) << ns.out;
}

TEST(FbbenchBridge, HelpNamesTheBaselineAndAnExample) {
  if (!kHaveBridge) GTEST_SKIP() << "fbbridge is not built (libzmq not found)";
  const Result help = run({FB_FBBENCH_BIN, "bridge", "--help"}, 10s);
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("iperf3"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("Example"), std::string::npos) << help.out;
}

}  // namespace
