// The broker's round-trip histogram and fbbench's percentiles: both must agree with a sorted
// list of the same samples.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "daemon/latency_histogram.hpp"
#include "fbbench/bench_common.hpp"

using framebroker::daemon::LatencyHistogram;
namespace fbb = framebroker::fbbench;

TEST(LatencyHistogram, QuantilesWithinOneBucketOfTheExactRank) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(40'000.0), 0.8);  // ~40 us, long tail
  LatencyHistogram h;
  std::vector<double> exact;
  for (int i = 0; i < 20000; ++i) {
    const auto ns = uint64_t(dist(rng));
    h.record(ns);
    exact.push_back(double(ns) / 1e3);
  }
  const auto s = fbb::summarize(exact);
  EXPECT_EQ(h.count(), 20000u);
  EXPECT_NEAR(double(h.quantile_ns(0.5)) / 1e3, s.p50_us, s.p50_us * 0.016);
  EXPECT_NEAR(double(h.quantile_ns(0.99)) / 1e3, s.p99_us, s.p99_us * 0.016);
  EXPECT_NEAR(double(h.quantile_ns(0.999)) / 1e3, s.p999_us, s.p999_us * 0.016);
  EXPECT_EQ(double(h.max_ns()) / 1e3, s.max_us);
}

TEST(LatencyHistogram, SmallValuesAreExactAndClearEmpties) {
  LatencyHistogram h;
  EXPECT_EQ(h.quantile_ns(0.5), 0u);
  for (uint64_t v : {3, 5, 63, 64, 65}) h.record(v);
  EXPECT_EQ(h.quantile_ns(0.2), 3u);
  EXPECT_EQ(h.quantile_ns(0.6), 63u);
  EXPECT_EQ(h.quantile_ns(1.0), 65u);
  h.record(uint64_t(1) << 62);  // the top octave has a bucket
  EXPECT_EQ(h.max_ns(), uint64_t(1) << 62);
  h.clear();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max_ns(), 0u);
}

TEST(BenchCommon, SummarizeUsesNearestRank) {
  std::vector<double> v;
  for (int i = 1; i <= 1000; ++i) v.push_back(i);
  std::shuffle(v.begin(), v.end(), std::mt19937(1));
  const auto s = fbb::summarize(v);
  EXPECT_EQ(s.count, 1000u);
  EXPECT_EQ(s.p50_us, 500);
  EXPECT_EQ(s.p99_us, 990);
  EXPECT_EQ(s.p999_us, 999);
  EXPECT_EQ(s.max_us, 1000);
  EXPECT_EQ(fbb::summarize({}).count, 0u);
}

TEST(BenchCommon, SizesParseAndPrint) {
  EXPECT_EQ(fbb::parse_size("64K"), 65536u);
  EXPECT_EQ(fbb::parse_size("8M"), 8u << 20);
  EXPECT_EQ(fbb::parse_size("4096"), 4096u);
  EXPECT_EQ(fbb::size_label(8u << 20), "8M");
  EXPECT_EQ(fbb::size_label(65536), "64K");
  EXPECT_EQ(fbb::size_label(65522), "65522");
  for (const char* bad : {"", "K", "12Q", "0", "65M", "-1M"})
    EXPECT_THROW(fbb::parse_size(bad), std::invalid_argument) << bad;
}

TEST(BenchCommon, SumPixelsAddsSixteenBitWords) {
  const uint8_t bytes[] = {1, 0, 0, 1, 7};  // 1 + 256 + the odd tail byte 7
  EXPECT_EQ(fbb::sum_pixels(bytes, sizeof bytes), 264u);
}
