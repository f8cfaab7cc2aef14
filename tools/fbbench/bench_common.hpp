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

// A benchmark camera's frame: Mono16, width x height pixels (8 to 4096 a side, as the simulated
// camera allows), and how a table names it.
struct FrameShape {
  uint32_t width = 8, height = 8;
  std::string label;  // "64K" or "64x64", as asked
  uint64_t bytes() const { return uint64_t(width) * height * 2; }
};
// The nearly square frame of about `bytes`, with a power-of-two width, so that 64K, 1M and 8M
// come out exact.
FrameShape frame_shape_for(uint64_t bytes);
// "64x64" (WxH pixels, exact) or a size parse_size() takes (nearly square). Throws
// std::invalid_argument.
FrameShape parse_frame_shape(const std::string& text);

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
  uint32_t width = 0, height = 0;  // framebroker's camera; 0: frame_shape_for(frame_bytes)
  int subscribers = 1;
  double rate = 1000;     // frames per second, paced by the producer
  uint64_t frames = 0;    // measured frames (after warmup)
  uint64_t warmup = 100;  // frames sent first and not measured
  Pin pin = Pin::None;
  int64_t spin_us = 0;  // SubscribeOptions::spin of framebroker's subscribers
};

struct LatencyRun {
  LatencyStats receive;     // commit (or send) -> the subscriber has the frame; all subscribers
  LatencyStats round_trip;  // commit -> the slot is free again (count 0: cannot be told)
  uint64_t lost = 0;        // measured frames some subscriber did not get
  std::vector<double> p50_by_subscriber_us;  // in subscription order, where it is known
};

struct ThroughputParams {
  uint64_t frame_bytes = 0;
  uint32_t width = 0, height = 0;  // framebroker's camera; 0: frame_shape_for(frame_bytes)
  int subscribers = 2;
  double seconds = 3;
  bool read_all = false;  // every subscriber sums every pixel of every frame it gets
  Pin pin = Pin::None;
};

// What a throughput run counts over its measured window. A delivery is one frame handed to one
// subscriber.
struct ThroughputRun {
  double seconds = 0;
  uint64_t published = 0;  // frames the producer made (the camera published, the sender sent)
  uint64_t frames = 0;     // frames the first subscriber got
  uint64_t delivered = 0;  // frames received, summed over subscribers
  uint64_t dropped = 0;    // frames the producer could not publish (the camera's ring was full)
  std::vector<uint64_t> delivered_by_subscriber;  // in subscription order
  std::vector<uint64_t> missed_by_subscriber;     // frames skipped for it (`every` fell behind)

  static double per_second(double n, double s) { return s > 0 ? n / s : 0; }
  double published_per_s() const { return per_second(double(published), seconds); }
  // The first subscriber's frames per second.
  double fps() const { return per_second(double(frames), seconds); }
  // Deliveries per subscriber per second: the mean over subscribers, and the least of them.
  double deliveries_per_subscriber_per_s() const {
    return delivered_by_subscriber.empty()
               ? 0
               : per_second(double(delivered) / double(delivered_by_subscriber.size()), seconds);
  }
  double min_deliveries_per_subscriber_per_s() const {
    uint64_t least = delivered_by_subscriber.empty() ? 0 : delivered_by_subscriber.front();
    for (const uint64_t n : delivered_by_subscriber) least = n < least ? n : least;
    return per_second(double(least), seconds);
  }
  // The frame bytes handed over per second, summed over subscribers.
  double gbps(uint64_t frame_bytes) const {
    return per_second(double(delivered) * double(frame_bytes) / 1e9, seconds);
  }
};

}  // namespace framebroker::fbbench
