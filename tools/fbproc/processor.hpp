// fbproc's loop: subscribe to one stream in `every` mode, publish the op's result with `block`,
// so that nothing is lost between the two (a slow consumer downstream slows fbproc, which holds
// frames upstream, which the source's every-subscriber accounting sees).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "framebroker/options.hpp"

namespace framebroker::fbproc {

struct ProcOptions {
  std::string from, to, op;
  uint32_t slots = 0;  // output ring; 0 = the broker's default
  ConnectOptions connect;
};

struct ProcSummary {
  uint64_t frames_in = 0, frames_out = 0;
  uint64_t left_over = 0;  // input frames of an unfinished K-frame output at the end
  uint64_t late = 0;       // axis ops: input frames that came after their output was made
  bool source_ended = false;
};

// Runs until the source stream ends or `stop` is set. Throws framebroker::Error (broker
// missing or lost, stream unknown, name refused) or std::runtime_error / std::invalid_argument
// (bad op, the source changed format) with a sentence saying what happened.
ProcSummary run_processor(const ProcOptions& options, const std::atomic<bool>& stop);

}  // namespace framebroker::fbproc
