// `fbctl watch`: a subscriber for people and scripts. It counts frames, fps
// and gaps, can keep frames unreleased (--hold) and can check every pixel of
// the sim camera's counter pattern (--verify-counter).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "framebroker/client.hpp"

namespace framebroker::fbctl {

struct WatchOptions {
  std::string stream;
  Mode mode = Mode::Every;
  std::optional<uint64_t> frames;
  std::optional<double> duration_s;
  uint32_t hold = 0;
  uint32_t max_hold = 0;
  uint32_t window = 0;
  bool from_latest = false;
  bool verify_counter = false;
  bool json = false;
};

// Returns the exit code: 0, or 1 when a pixel of the counter pattern was wrong.
int run_watch(Client& client, const WatchOptions& options);

}  // namespace framebroker::fbctl
