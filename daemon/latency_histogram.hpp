// LatencyHistogram: durations in ns, counted in log-linear buckets (64 per power of two, so a
// percentile is within 1.6 % of the truth) with a fixed footprint and no allocation per sample.
// One thread records; the same thread reads.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace framebroker::daemon {

class LatencyHistogram {
 public:
  void record(uint64_t ns) {
    ++counts_[bucket_of(ns)];
    ++total_;
    max_ = std::max(max_, ns);
  }
  void clear() { *this = LatencyHistogram{}; }

  uint64_t count() const { return total_; }
  uint64_t max_ns() const { return max_; }
  // The q-quantile (0 < q <= 1) by nearest rank, as the middle of its bucket; 0 when empty.
  uint64_t quantile_ns(double q) const {
    if (total_ == 0) return 0;
    const auto rank = std::max<uint64_t>(1, uint64_t(q * double(total_) + 0.999999));
    uint64_t seen = 0;
    for (size_t b = 0; b < kBuckets; ++b) {
      seen += counts_[b];
      if (seen >= rank) return std::min(middle_of(b), max_);
    }
    return max_;
  }

 private:
  static constexpr int kSubBits = 6;  // 64 buckets per octave
  static constexpr size_t kBuckets = (64 - kSubBits + 1) << kSubBits;

  static size_t bucket_of(uint64_t v) {
    if (v < (uint64_t(1) << kSubBits)) return size_t(v);         // exact below 64 ns
    const int octave = 63 - std::countl_zero(v) - kSubBits + 1;  // >= 1
    const uint64_t sub = (v >> (octave - 1)) & ((uint64_t(1) << kSubBits) - 1);
    return (size_t(octave) << kSubBits) + size_t(sub);
  }
  static uint64_t middle_of(size_t b) {
    const size_t octave = b >> kSubBits;
    const uint64_t sub = b & ((size_t(1) << kSubBits) - 1);
    if (octave == 0) return sub;
    const uint64_t low = ((uint64_t(1) << kSubBits) | sub) << (octave - 1);
    return low + (uint64_t(1) << (octave - 1)) / 2;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0, max_ = 0;
};

}  // namespace framebroker::daemon
