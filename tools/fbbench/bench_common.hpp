// What every fbbench latency and throughput run shares: CPU placement, the clock, the pixel sum
// a reading consumer does, and how samples become percentiles. framebroker and each baseline
// (fb_runs, socket_baselines, iceoryx_baseline) take the same parameters and return the same
// result, so a row compares like with like.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace framebroker::fbbench {

// --pin: none leaves placement to the scheduler; same puts every process on CPU 0; split puts
// the producer side (broker, sender, publisher) on CPU 0 and the subscribers on CPU 1.
enum class Pin { None, Same, Split };
Pin parse_pin(const std::string& name);  // throws std::invalid_argument
const char* to_string(Pin p);
int producer_cpu(Pin p);  // -1: any
int consumer_cpu(Pin p);  // -1: any
// Pins the calling thread (and what it spawns or forks afterwards) to `cpu`; -1 allows every
// CPU this process may use. Throws std::runtime_error when the CPU does not exist.
void pin_this_thread(int cpu);

// "64K", "1M", "8M", "4096": bytes (K and M are powers of 1024). Throws std::invalid_argument.
uint64_t parse_size(const std::string& text);
// 65536 -> "64K", 8388608 -> "8M", else the number.
std::string size_label(uint64_t bytes);

// CLOCK_MONOTONIC in ns: the clock of FrameMeta.mono_ns, comparable across processes.
uint64_t now_ns();

// What a consumer that reads every pixel does: sums the frame as 16-bit words (a tail byte is
// added as is). The result must be used, or the compiler drops the loop.
uint64_t sum_pixels(const void* data, size_t bytes);

// Touches every page of [data, data + bytes) so the first frame does not pay for page faults.
void prefault(void* data, size_t bytes);

struct LatencyStats {
  uint64_t count = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};
// Percentiles by nearest rank; all zero when there are no samples.
LatencyStats summarize(std::vector<double> samples_us);

struct LatencyParams {
  uint64_t frame_bytes = 0;
  int subscribers = 1;
  double rate = 1000;     // frames per second, paced by the producer
  uint64_t frames = 0;    // measured frames (after warmup)
  uint64_t warmup = 100;  // frames sent first and not measured
  Pin pin = Pin::None;
};

struct LatencyRun {
  LatencyStats receive;     // commit (or send) -> the subscriber has the frame; all subscribers
  LatencyStats round_trip;  // commit -> the slot is free again (count 0: cannot be told)
  uint64_t lost = 0;        // measured frames some subscriber did not get
  std::vector<double> p50_by_subscriber_us;  // in subscription order, where it is known
};

struct ThroughputParams {
  uint64_t frame_bytes = 0;
  int subscribers = 2;
  double seconds = 3;
  bool read_all = false;  // every subscriber sums every pixel of every frame it gets
  Pin pin = Pin::None;
};

struct ThroughputRun {
  double seconds = 0;
  uint64_t frames = 0;     // frames the lossless (first) subscriber got
  uint64_t delivered = 0;  // frames received, summed over subscribers
  uint64_t dropped = 0;    // frames produced that the lossless subscriber did not get
  double fps() const { return seconds > 0 ? double(frames) / seconds : 0; }
  double gbps(uint64_t frame_bytes) const {
    return seconds > 0 ? double(delivered) * double(frame_bytes) / seconds / 1e9 : 0;
  }
};

}  // namespace framebroker::fbbench
