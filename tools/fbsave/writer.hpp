// The contract between fbsave's saver loop and its three output formats.
//
// The saver calls, from one writer thread, in this order:
//   begin(info) once; then write(frame) or write_batch(frames) in seq order
//   (a batch has consecutive seqs), and missed(seq, n) for each gap; checkpoint() every few
//   seconds; finish() once.
// With info.sequence set, every frame carries its index (FrameRecord t, c, z) and the writer
// places it there; finish() lists the planes no frame came for.
// write() receives the pixels straight from the shared-memory slot; when it
// returns, the slot is released, so a writer either writes the bytes out or
// copies them into a (pre-allocated, reused) chunk buffer before returning.
// Every method throws std::runtime_error with a sentence naming the path and
// the cause (disk full, permission...). After a throw the saver calls
// finish() once more so that what was written stays readable.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace framebroker::fbsave {

enum class Compression { None, Lz4, Zstd };

// The acquisition sequence a dataset holds (see docs/fbsave.md, "Sequences"): the saver's copy
// of the broker's framebroker::Sequence, so that the writers need no client library. Its planes
// are numbered two ways: in the dataset's (t, c, z) order (z fastest; Zarr's chunks, the
// "missing" lists) and in acquisition order (`order`'s last axis fastest; TIFF pages).
struct SequenceInfo {
  uint64_t id = 0;
  uint64_t first_seq = 0;  // the seq of position 0
  std::string axes;        // "t=3,c=2,z=20", in acquisition order
  std::string order;       // "tcz": the axis letters, outermost first
  uint32_t t = 1, c = 1, z = 1;
  std::vector<std::string> channels;  // empty, or one name per channel
  double z_step_um = 0, interval_ms = 0;
  std::string metadata;  // a JSON object's text, verbatim, or empty

  uint64_t planes() const { return uint64_t(t) * c * z; }
  uint32_t size(char axis) const { return axis == 't' ? t : axis == 'c' ? c : axis == 'z' ? z : 1; }
  bool holds(uint32_t ti, uint32_t ci, uint32_t zi) const { return ti < t && ci < c && zi < z; }
  // The plane of (t, c, z) in (t, c, z) order.
  uint64_t plane(uint32_t ti, uint32_t ci, uint32_t zi) const {
    return (uint64_t(ti) * c + ci) * z + zi;
  }
  std::array<uint32_t, 3> tcz_of_plane(uint64_t plane) const {
    return {uint32_t(plane / z / c), uint32_t(plane / z % c), uint32_t(plane % z)};
  }
  // The place of (t, c, z) in acquisition order: its position when the broker set the index.
  uint64_t place(uint32_t ti, uint32_t ci, uint32_t zi) const {
    uint64_t p = 0;
    for (const char a : order)
      p = p * size(a) + (a == 't' ? ti : a == 'c' ? ci : a == 'z' ? zi : 0);
    return p;
  }
  std::array<uint32_t, 3> tcz_of_place(uint64_t place) const {
    std::array<uint32_t, 3> out{0, 0, 0};
    for (size_t i = order.size(); i-- > 0;) {
      const char a = order[i];
      const uint32_t n = size(a), v = uint32_t(place % n);
      place /= n;
      if (a == 't') out[0] = v;
      if (a == 'c') out[1] = v;
      if (a == 'z') out[2] = v;
    }
    return out;
  }
};

struct DatasetInfo {
  std::string stream;
  uint32_t width = 0, height = 0;
  uint32_t stride = 0;                                   // bytes per row in the slot
  std::string pixel_type;                                // "Mono8", "Mono16", ...
  uint32_t bytes_per_sample = 2;                         // 1, 2 or 4
  uint32_t samples = 1;                                  // 1 grey, 3 RGB
  bool floating = false;                                 // Mono32F
  std::map<std::string, std::string> camera_properties;  // at start
  std::string camera;                                    // name
  std::optional<uint64_t> frames_expected;               // --frames, when known in advance
  Compression compression = Compression::None;
  int clevel = 5;
  uint32_t chunk_frames = 16;  // zarr: K frames per chunk (zarr3: per inner chunk)
  // zarr3: frames per shard, a multiple of chunk_frames (0: no sharding, a file per chunk).
  uint32_t shard_frames = 0;
  // zarr3: inner chunks of tile x tile pixels of one frame (0: whole frames).
  uint32_t tile = 0;
  // zarr: threads compressing chunks in parallel (at least 1); one more thread writes them.
  uint32_t threads = 1;
  // Set: the frames are one sequence's, each placed by its FrameRecord index (t, c, z, y, x).
  std::optional<SequenceInfo> sequence;
  size_t frame_bytes() const { return size_t(width) * height * samples * bytes_per_sample; }
};

struct FrameRecord {
  uint64_t seq = 0;
  uint64_t camera_frame_id = 0;
  uint64_t mono_ns = 0, realtime_ns = 0;
  std::optional<uint64_t> hw_timestamp_ns;
  std::span<const std::byte> pixels;  // stride * height bytes, in shared memory
  // Provenance of a processor's frame (empty / -1 for a camera's): the broker checked that
  // source_stream is a stream name, so it goes into JSON as it is.
  std::string_view source_stream;
  int64_t source_seq = -1;
  // In a sequence (DatasetInfo::sequence): the frame's position and its index (0 on an axis the
  // sequence does not have).
  int64_t position = -1;
  uint32_t t = 0, c = 0, z = 0;
};

// Where the frames stop following each other: fbsave --reconnect lost the broker and went on
// with a new one, whose seqs start again. Frames of the old broker after last_seq_before, and of
// the new one before first_seq_after, were never received (how many is not known).
struct Discontinuity {
  uint64_t frame = 0;  // the dataset's frames before it (the first frame after it has this index)
  bool had_frame = false;        // false: no frame came from the old broker in this dataset
  uint64_t last_seq_before = 0;  // the last seq from the old broker
  uint64_t first_seq_after = 0;  // the first from the new one
  uint64_t outage_ms = 0;        // from losing the broker to subscribed again
  std::string reason;            // "broker restarted: <why the connection ended>"
};

struct Totals {
  uint64_t written = 0;  // frames in the output
  uint64_t missed = 0;   // seqs the saver never received
  uint64_t bytes = 0;    // pixel bytes written
};

class Writer {
 public:
  virtual ~Writer() = default;
  virtual void begin(const DatasetInfo& info) = 0;
  virtual void write(const FrameRecord& frame) = 0;
  // Frames with consecutive seqs; a writer may merge them into fewer, larger writes.
  virtual void write_batch(std::span<const FrameRecord> frames) {
    for (const FrameRecord& f : frames) write(f);
  }
  // Seqs [first_seq, first_seq + count) will never arrive.
  virtual void missed(uint64_t first_seq, uint64_t count) = 0;
  // The frames that follow come from a restarted broker (seqs start again); listed in the
  // metadata as "discontinuities". Missed seqs after it are the new broker's.
  // (Every format overrides it; the default, for test doubles, ignores it.)
  virtual void discontinuity(const Discontinuity&) {}
  // Rewrites the metadata so that a kill -9 now leaves a readable dataset.
  virtual void checkpoint() = 0;
  // Flushes everything and writes the final metadata (idempotent).
  virtual void finish() = 0;
  virtual Totals totals() const = 0;
};

// A discontinuity as its metadata entry: {frame, last_seq_before (null: none), first_seq_after,
// outage_ms, reason}.
nlohmann::json discontinuity_json(const Discontinuity& d);

std::unique_ptr<Writer> make_zarr_writer(const std::string& path);   // OME-NGFF 0.4, Zarr v2
std::unique_ptr<Writer> make_zarr3_writer(const std::string& path);  // OME-NGFF 0.5, Zarr v3
std::unique_ptr<Writer> make_tiff_writer(const std::string& path);
std::unique_ptr<Writer> make_raw_writer(const std::string& path);

}  // namespace framebroker::fbsave
