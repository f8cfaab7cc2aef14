// fbsave's loop: one thread reads frames from the broker, a writer thread
// writes them (or copies them into chunk buffers) and releases each slot as
// soon as it is done with it. Gaps in seq are handed to the writer as missed
// frames, so the output accounts for every frame of the acquisition.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fbsave/writer.hpp"

namespace framebroker::fbsave {

// Zarr: OME-NGFF 0.4 on Zarr v2; Zarr3: OME-NGFF 0.5 on Zarr v3.
enum class Format { Zarr, Zarr3, Tiff, Raw };
const char* to_string(Format f);
// .zarr / .ome.zarr -> zarr; .tif / .tiff / .ome.tif(f) -> tiff; else raw.
Format format_for_path(const std::string& path);
// --sequences all: where sequence `id` goes under `root` (root/seq-<id>, or for TIFF
// run.seq-<id>.ome.tif beside run.ome.tif).
std::string sequence_path(Format format, const std::string& root, uint64_t id);

// zarr3's default shard: the most whole chunks in this many bytes (at least one chunk).
constexpr uint64_t kShardBytes = 64ull << 20;

struct SaveOptions {
  std::string stream;
  std::string path;
  std::optional<Format> format;
  std::optional<uint64_t> frames;
  std::optional<double> duration_s;
  Compression compression = Compression::None;
  int clevel = 5;
  uint32_t chunk_frames = 16;
  // zarr3: frames per shard (0: unsharded); unset: as many as fit in ~64 MiB (kShardBytes).
  std::optional<uint32_t> shard_frames;
  uint32_t tile = 0;     // zarr3
  uint32_t threads = 1;  // zarr: compressor threads
  bool start = false;
  // false: the first sequence's frames only (or, if the first frame belongs to none, every frame);
  // true: each sequence into its own dataset under `path`, frames outside sequences skipped.
  bool all_sequences = false;
  bool overwrite = false;
  bool json = false;
  std::string socket, instance = "default";
  // Go on across a broker restart (ConnectOptions::reconnect), into the same dataset, which lists
  // each outage as a discontinuity; give up after reconnect_timeout_s away (0: never).
  bool reconnect = false;
  double reconnect_timeout_s = 0;
};

struct SaveSummary {
  std::string path, format, stream;
  uint64_t written = 0, missed = 0, bytes = 0;
  std::optional<uint64_t> first_seq, last_seq;
  std::vector<uint64_t> sequences;  // the ids of the sequences saved
  uint64_t outside_sequences = 0;   // --sequences all: frames skipped, outside any sequence
  uint64_t restarts = 0;            // broker restarts gone through (--reconnect)
  double elapsed_s = 0;
  std::string error;  // empty when the save ended well
};

// Runs a whole save. Throws framebroker::Error for broker trouble before the
// first frame, std::runtime_error for output trouble before writing starts;
// errors after that end the save and are reported in SaveSummary::error.
SaveSummary run_save(const SaveOptions& options);

}  // namespace framebroker::fbsave
