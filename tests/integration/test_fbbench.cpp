// fbbench latency and throughput end to end: short real runs (a real framebrokerd, real
// sockets, forked baseline senders) whose JSON must hold every documented key with values that
// make sense. Timing is never asserted: only that each number was measured.
#include <gtest/gtest.h>

#include <filesystem>

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
    EXPECT_GT(row.at("fps").get<double>(), 100);
    // Summed over both subscribers: at least what the lossless one alone got.
    EXPECT_GE(row.at("gbps").get<double>(), row.at("fps").get<double>() * 8192 / 1e9 * 0.99);
    EXPECT_GE(row.at("dropped").get<int64_t>(), 0);
    EXPECT_GT(row.at("broker_cpu_us_per_frame").get<double>(), 0);
    EXPECT_GT(row.at("broker_rss_end_kb").get<uint64_t>(), 0u);
    EXPECT_GT(row.at("copy_gbps").get<double>(), 0);
    EXPECT_GT(row.at("floor_gbps").get<double>(), 0);
  }
}

TEST(Fbbench, PacedThroughputLosesNothing) {
  const json rows = rows_of(fbbench({"throughput", "--size", "8K", "--subscribers", "2", "--rate",
                                     "2000", "--duration", "1", "--json"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("dropped"), 0) << rows[0].dump();
  EXPECT_GT(rows[0].at("fps").get<double>(), 1000) << rows[0].dump();
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
