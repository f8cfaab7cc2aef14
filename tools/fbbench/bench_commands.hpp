// fbbench latency and fbbench throughput: framebroker next to the baselines, measured in the same
// run and printed side by side (a table, or JSON with --json).
#pragma once

#include <string>
#include <vector>

namespace framebroker::fbbench {

// What `latency` and `throughput` share: the rows (--sizes x --subscribers), the camera's rate,
// CPU placement, the broker binary and --json. One definition, declared by add_bench_options in
// main.cpp; each command sets its own defaults.
struct BenchOptions {
  std::vector<std::string> sizes;  // 64K, 8M, 64x64 ...
  std::vector<int> subscribers;
  double rate = 0;  // the camera's frames per second
  std::string pin = "none";
  std::string broker;  // framebrokerd; default: the one beside fbbench
  bool json = false;
};

struct LatencyOptions : BenchOptions {
  LatencyOptions() : BenchOptions{{"64K", "1M", "8M"}, {1, 2, 4}, 1000} {}
  uint64_t frames = 2000;
  uint64_t warmup = 200;
  bool iceoryx = true;   // the iceoryx baseline, where it can run
  int64_t spin_us = -1;  // --spin: SubscribeOptions::spin, and iceoryx busy-polling; -1: not given
};

struct ThroughputOptions : BenchOptions {
  ThroughputOptions() : BenchOptions{{"8K", "8M"}, {2}, 0} {}  // rate 0 free-runs
  double seconds = 3;
  std::string read = "none";  // none | all
};

// fbbench chain: a published stream's cost. Per size, commit -> subscriber latency through one
// fbproc hop (`fbproc --op OP`, a process of its own) next to the direct camera path; per
// throughput size, a publishing process committing as fast as it can (notify only) next to
// copy-over-socket.
struct ChainOptions {
  std::vector<std::string> sizes{"64K", "8M"};
  std::vector<std::string> throughput_sizes{"8M"};
  double rate = 100;
  uint64_t frames = 500;
  uint64_t warmup = 50;
  double seconds = 2;   // measured per throughput run
  int subscribers = 2;  // throughput: `every`, then `latest`, alternating
  std::string op = "copy";
  std::string pin = "none";
  bool json = false;
  std::string broker;
  std::string fbproc;  // default: beside fbbench, else in PATH
};

// The publishing process of `fbbench chain` (a hidden command): advertises `stream` (Mono16,
// Block) and commits frames without touching their pixels, as fast as it is lent slots, for
// `seconds` or until it is killed.
struct ChainPublisherOptions {
  std::string socket, stream;
  uint32_t width = 0, height = 0, slots = 0;
  double seconds = 10;
};

// All print progress on stderr and the table (or JSON) on stdout, and return the exit code:
// 0 done, 1 error, 130 interrupted.
int run_latency_bench(const LatencyOptions& o);
int run_throughput_bench(const ThroughputOptions& o);
int run_chain_bench(const ChainOptions& o);
int run_chain_publisher(const ChainPublisherOptions& o);
// fbbench python: execs `/usr/bin/python3 -m framebroker.bench ARGS...` (json: add --json);
// returns only when that fails.
int run_python_bench(const std::vector<std::string>& args, bool json);

}  // namespace framebroker::fbbench
