// framebroker itself, measured with the same parameters and results as the baselines: fbbench
// starts a framebrokerd of its own with one simulated camera (Mono16, pattern `empty`, so the
// camera costs nothing per frame) and subscribes from threads of its own process, each with its
// own connection.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "fbbench/bench_common.hpp"
#include "fbbench/process.hpp"

namespace framebroker::fbbench {

struct BrokerSide {
  std::string exe;          // framebrokerd
  std::string runtime_dir;  // where its socket and lock go
};

// What a latency or throughput command sets up first: the frames asked for (64K, 8M, 64x64, ...)
// as the camera will send them, and a runtime directory of its own, removed at the end.
struct BenchSetup {
  BenchSetup(const std::vector<std::string>& size_labels, const std::string& broker_exe);
  std::vector<FrameShape> sizes;
  TempDir runtime;
  BrokerSide broker;
};

// What the broker spent over a run's measured window, from /proc/<pid>/task/*.
struct BrokerCost {
  double cpu_us_per_frame = 0;        // the broker's CPU time (all threads) / frames it published
  double cpu_us_per_frame_alone = 0;  // the same with the camera running and no subscriber
  uint64_t rss_start_kb = 0, rss_end_kb = 0;
  pid_t pid = 0;
  uint64_t frames = 0;                // frames published in the measured window
  std::vector<ThreadSample> threads;  // each thread's switches and CPU time in that window
  // What each subscriber adds: the delivery cost, without the camera's own.
  double per_subscriber(int subscribers) const {
    return subscribers > 0 ? std::max(0.0, cpu_us_per_frame - cpu_us_per_frame_alone) / subscribers
                           : 0;
  }
  // The socket thread's (the main thread's, tid == pid) voluntary switches per frame: how often
  // a frame woke it.
  double socket_wakeups_per_frame() const {
    for (const ThreadSample& t : threads)
      if (t.tid == pid) return frames > 0 ? double(t.voluntary) / double(frames) : 0;
    return 0;
  }
};

// Latency: a paced camera; every subscriber is `every`. receive = commit -> the frame is in the
// subscriber's hands (FrameMeta.mono_ns to now); round_trip = commit -> every subscriber released
// it, from the broker's own count (status `recycle`). `cost` is the measured frames' (alone: a
// warmup's worth of frames before anyone subscribed).
LatencyRun fb_latency(const BrokerSide& broker, const LatencyParams& p, BrokerCost& cost);

// Throughput: subscriber 0 is `every` (the lossless consumer), subscriber 1 `latest`, then they
// alternate. rate 0 free-runs the camera; dropped counts the frames it could not publish (no free
// slot), missed_by_subscriber the frames skipped for each subscriber.
ThroughputRun fb_throughput(const BrokerSide& broker, const ThroughputParams& p, double rate,
                            BrokerCost& cost);

// A connection of its own to the bench broker, named `name` in fbctl.
Client connect_to(const BenchBroker& broker, const std::string& name);

// The benchmark camera: its stream's name, and its --camera spec for frames of about `bytes`
// (Mono16, nearly square, pattern `empty`, not started) at `rate` frames per second.
inline constexpr const char* kBenchCamera = "bench";
std::string bench_camera_spec(uint64_t bytes, double rate);
// The width and height such a frame has.
std::pair<uint32_t, uint32_t> bench_frame_size(uint64_t bytes);

// The camera's size for a frame of about `bytes` (Mono16, nearly square): the bytes used.
uint64_t mono16_frame_bytes(uint64_t bytes);

// The benchmark camera's ring: 256 MiB (what a fast stream would be given), 32 to 4096 slots;
// 8 MiB frames get 32 slots, 64x64 frames 4096 (80 ms at 50,000 frames/s).
uint32_t bench_slots(uint64_t frame_bytes);

}  // namespace framebroker::fbbench
