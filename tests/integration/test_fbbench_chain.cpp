// fbbench chain end to end: a tiny real run (a real framebrokerd, a real fbproc, a real
// publishing process and the forked copy-over-socket sender) whose JSON must hold every
// documented key with values that make sense. Timing is never asserted: machines are shared.
#include <gtest/gtest.h>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

Result fbbench(std::vector<std::string> args, std::chrono::milliseconds timeout = 110s) {
  args.insert(args.begin(), FB_FBBENCH_BIN);
  for (const std::string a : {"--broker", FB_BROKER_BIN, "--fbproc", FB_FBPROC_BIN})
    args.push_back(a);
  return run(args, timeout);
}

void expect_measured(const json& row, const std::string& prefix) {
  SCOPED_TRACE(prefix);
  const double p50 = row.at(prefix + "p50_us"), p99 = row.at(prefix + "p99_us");
  EXPECT_GT(p50, 0);
  EXPECT_LE(p50, p99);
}

}  // namespace

TEST(FbbenchChain, MeasuresTheHopAndPublishedThroughputNextToTheirBaselines) {
  const Result r =
      fbbench({"chain", "--sizes", "8K,64K", "--rate", "200", "--frames", "40", "--warmup", "5",
               "--throughput-sizes", "8K", "--duration", "0.3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("mode"), "chain");
  EXPECT_EQ(j.at("op"), "copy");
  EXPECT_EQ(j.at("frames"), 40);
  EXPECT_FALSE(j.at("load").get<std::string>().empty());

  const json& lat = j.at("latency");
  ASSERT_EQ(lat.size(), 2u);
  EXPECT_EQ(lat[0].at("size"), "8K");
  EXPECT_EQ(lat[1].at("size"), "64K");
  for (const auto& row : lat) {
    SCOPED_TRACE(row.dump());
    // Paced at 200 fps with every subscriber `every` and fbproc blocking: nothing is lost.
    EXPECT_EQ(row.at("direct_frames"), 40);
    EXPECT_EQ(row.at("chain_frames"), 40);
    EXPECT_EQ(row.at("direct_lost"), 0);
    EXPECT_EQ(row.at("chain_lost"), 0);
    EXPECT_EQ(row.at("beside_lost"), 0);
    expect_measured(row, "direct_");
    expect_measured(row, "chain_");
    expect_measured(row, "beside_");
    // The chain sample and the direct one of the same run start at the same commit, and the
    // output frame comes after the source frame was delivered to fbproc.
    EXPECT_GT(row.at("chain_vs_direct_p50").get<double>(), 0);
    EXPECT_GE(row.at("memcpy_us").get<double>(), 0);
    EXPECT_EQ(row.at("target"), 1.5);
    EXPECT_FALSE(row.contains("meets_target")) << "judged only at 8M";
  }

  const json& tput = j.at("throughput");
  ASSERT_EQ(tput.size(), 1u);
  const json& row = tput[0];
  SCOPED_TRACE(row.dump());
  EXPECT_EQ(row.at("size"), "8K");
  EXPECT_EQ(row.at("subscribers"), 2);
  EXPECT_GT(row.at("fps").get<double>(), 0);
  EXPECT_GT(row.at("gbps").get<double>(), 0);
  EXPECT_EQ(row.at("missed"), 0) << "a Block publisher never outruns its every subscriber";
  EXPECT_GT(row.at("broker_cpu_us_per_frame").get<double>(), 0);
  EXPECT_GT(row.at("copy_fps").get<double>(), 0);
  EXPECT_NEAR(row.at("fps_vs_copy").get<double>(),
              row.at("fps").get<double>() / row.at("copy_fps").get<double>(), 1e-6);
  EXPECT_TRUE(row.at("meets_target").is_boolean());
}

TEST(FbbenchChain, SaysWhenFbprocIsMissing) {
  const Result r = run({FB_FBBENCH_BIN, "chain", "--broker", FB_BROKER_BIN, "--fbproc",
                        "/nonexistent/fbproc", "--sizes", "8K", "--throughput-sizes", "none"},
                       30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("fbproc"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/fbproc"), std::string::npos) << r.err;
}
