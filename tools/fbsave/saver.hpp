// fbsave's loop: one thread reads frames from the broker, a writer thread
// writes them (or copies them into chunk buffers) and releases each slot as
// soon as it is done with it. Gaps in seq are handed to the writer as missed
// frames, so the output accounts for every frame of the acquisition.
// Several streams: that loop runs once per stream, each on a thread of its own with its own
// connection, subscription, writer thread and accounting, into one dataset per stream in a group
// (or, with as_channels, into the channels of one image: see channels_writer.hpp).
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
// Where the member `name` of a group goes under `root` (root/<name>, or for TIFF
// run.<name>.ome.tif beside run.ome.tif): a stream of several.
std::string member_path(Format format, const std::string& root, const std::string& name);
// --sequences all: where sequence `id` goes, member_path() of "seq-<id>".
std::string sequence_path(Format format, const std::string& root, uint64_t id);

// zarr3's default shard: the most whole chunks in this many bytes (at least one chunk).
constexpr uint64_t kShardBytes = 64ull << 20;

struct SaveOptions {
  // One stream: `path` is its dataset. Several: a group with one dataset per stream at
  // member_path(format, path, stream), or with as_channels one image.
  std::vector<std::string> streams;
  std::string path;
  std::optional<Format> format;
  std::optional<uint64_t> frames;  // per stream
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
  // Several streams as the channels (c) of one Zarr image; needs `frames` and one format.
  bool as_channels = false;
  bool overwrite = false;
  bool json = false;
  std::string socket, instance = "default";
  // Go on across a broker restart (ConnectOptions::reconnect), into the same dataset, which lists
  // each outage as a discontinuity; give up after reconnect_timeout_s away (0: never).
  bool reconnect = false;
  double reconnect_timeout_s = 0;
};

struct SaveSummary {
  std::string path, format, stream;  // several streams: their names joined by ','
  uint64_t written = 0, missed = 0, bytes = 0;
  std::optional<uint64_t> first_seq, last_seq;
  std::vector<uint64_t> sequences;  // the ids of the sequences saved
  uint64_t outside_sequences = 0;   // --sequences all: frames skipped, outside any sequence
  uint64_t restarts = 0;            // broker restarts gone through (--reconnect)
  double elapsed_s = 0;
  std::string error;  // empty when the save ended well (several: the first, "<stream>: ...")
  // Several streams: each one's summary; the fields above are their totals.
  std::vector<SaveSummary> streams;
  bool as_channels = false;
};

// Runs a whole save. Throws framebroker::Error for broker trouble before the
// first frame, std::runtime_error for output trouble before writing starts;
// errors after that end the save and are reported in SaveSummary::error.
SaveSummary run_save(const SaveOptions& options);

}  // namespace framebroker::fbsave
