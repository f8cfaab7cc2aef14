// fbbench flood: connections opened and dropped and malformed messages thrown at a broker while a
// lossless subscriber runs. It must miss nothing, and `status` must keep answering quickly
// (measured next to the same broker's answers before the flood).
#pragma once

#include <cstdint>
#include <string>

namespace framebroker::fbbench {

struct FloodOptions {
  uint64_t connections = 1000;  // opened and dropped (some after half a message)
  uint64_t malformed = 10'000;  // messages that fail verification, each on a connection of its own
  double rate = 500;            // the camera's frames per second
  std::string broker;
  bool json = false;
};

int run_flood(const FloodOptions& o);

}  // namespace framebroker::fbbench
