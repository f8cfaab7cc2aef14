// fbreplay's loop: a dataset fbsave wrote, published again as a live stream. Each frame is read
// from the dataset straight into a slot the broker lends (Overflow::Block: no subscriber in
// `every` mode misses one), paced, and committed with its saved metadata: camera_frame_id,
// hw_timestamp_ns, the camera's exposure, and as provenance source_stream = the recorded
// stream, source_seq = its seq there.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace framebroker::fbreplay {

struct ReplayOptions {
  std::string dataset;
  std::string as;  // the stream to publish
  std::optional<double> fps;
  bool as_recorded = false;
  bool loop = false;
  uint32_t wait_subscribers = 0;  // subscribers to wait for before the first frame
  uint32_t slots = 0;             // 0: the library's default
  std::string socket, instance = "default";
};

struct ReplaySummary {
  std::string dataset, format, as;
  uint64_t frames_in_dataset = 0;
  uint64_t published = 0;
  uint64_t passes = 0;  // whole passes over the dataset
  double elapsed_s = 0;
  bool interrupted = false;  // SIGINT / SIGTERM
};

// Runs a whole replay; returns after the last frame (or a signal), once the publisher has ended
// the stream. Throws std::runtime_error for a dataset it cannot read, framebroker::Error for
// the broker.
ReplaySummary run_replay(const ReplayOptions& options);

}  // namespace framebroker::fbreplay
