// fbbench latency and fbbench throughput: framebroker next to the baselines, measured in the same
// run and printed side by side (a table, or JSON with --json).
#pragma once

#include <string>
#include <vector>

namespace framebroker::fbbench {

struct LatencyOptions {
  std::vector<std::string> sizes{"64K", "1M", "8M"};
  std::vector<int> subscribers{1, 2, 4};
  double rate = 1000;
  uint64_t frames = 2000;
  uint64_t warmup = 200;
  std::string pin = "none";
  bool iceoryx = true;  // the iceoryx baseline, where it can run
  bool json = false;
  std::string broker;  // framebrokerd; default: the one beside fbbench
};

struct ThroughputOptions {
  std::vector<std::string> sizes{"8K", "8M"};
  std::vector<int> subscribers{2};
  double seconds = 3;
  std::string read = "none";  // none | all
  double rate = 0;            // the camera's FrameRate; 0 free-runs
  std::string pin = "none";
  bool json = false;
  std::string broker;
};

// Both print progress on stderr and the table (or JSON) on stdout, and return the exit code:
// 0 done, 1 error, 130 interrupted.
int run_latency_bench(const LatencyOptions& o);
int run_throughput_bench(const ThroughputOptions& o);

}  // namespace framebroker::fbbench
