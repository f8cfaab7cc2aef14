// fbbench bridge: fbbridge across two network namespaces joined by a veth pair (made and removed
// by fbbench; needs root), next to iperf3's single-stream TCP throughput over the same pair in
// the same run. Per size and mode: frames/s and GB/s a subscriber on the importer's broker
// receives, frames missed, the exporter's CPU seconds per GB next to a memcpy of the same bytes;
// per size, commit -> remote subscriber latency at a moderate rate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace framebroker::fbbench {

struct BridgeOptions {
  std::vector<std::string> sizes{"8M", "512x512"};  // as `fbbench throughput --size`
  std::vector<std::string> modes{"every", "latest"};
  double seconds = 3;        // measured per throughput run
  double latency_rate = 50;  // the camera's frames per second for the latency run
  uint64_t latency_frames = 200;
  double iperf_seconds = 3;
  std::string broker;    // framebrokerd; default: the one beside fbbench
  std::string fbbridge;  // default: beside fbbench
  std::string iperf3;    // default: iperf3 in PATH
  bool json = false;
};

// 0 done, 1 error (not root, no fbbridge, a bridge failed), 130 interrupted.
int run_bridge_bench(const BridgeOptions& o);

}  // namespace framebroker::fbbench
