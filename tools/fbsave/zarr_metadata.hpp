// The metadata of fbsave's Zarr datasets, as text: the array's description, the OME-NGFF
// "multiscales" and fbsave's own "framebroker" attributes (per-frame columns, missed seqs). It
// knows nothing of files or threads: the writer decides when each text is written and where.
//
// The array holds the frames on axis 0, then the channels of an RGB frame (planar), then y and x.
// Everything but the *_v2 and *_v3 functions is the same for Zarr v2 and v3.
#pragma once

#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fbsave/frame_index.hpp"
#include "fbsave/writer.hpp"

namespace framebroker::fbsave::zarr {

// K, the frames in one chunk (at least 1).
uint32_t chunk_frames(const DatasetInfo& info);
// Blosc's name for the codec ("lz4", "zstd"); null for no compression.
const char* blosc_cname(Compression c);

// The array's extent with `frames` frames, and one chunk's: (t, y, x) or (t, c, y, x).
std::vector<uint64_t> array_shape(const DatasetInfo& info, uint64_t frames);
std::vector<uint64_t> chunk_shape(const DatasetInfo& info);

// OME-NGFF "multiscales": one level at path "0", axes t[, c], y, x, unit scale. `version` goes in
// each entry ("0.4"); empty leaves it out (NGFF 0.5 states it once, in the "ome" attribute).
nlohmann::json multiscales(const DatasetInfo& info, const std::string& version);

// OME-NGFF 0.4 "omero" of a sequence: one channel entry per channel, labelled by its name.
nlohmann::json omero(const DatasetInfo& info);

// JSON as fbsave writes it: compact, invalid UTF-8 replaced.
std::string dump(const nlohmann::json& j);

// A JSON text in pieces, to be written in order: short parts are owned, long ones (the frame
// columns) are only pointed to and must stay unchanged until the text is written.
class TextPieces {
 public:
  void own(std::string s);
  void borrow(std::string_view s) { views_.push_back(s); }
  std::span<const std::string_view> pieces() const { return views_; }

 private:
  std::deque<std::string> owned_;  // a deque: its strings stay where they are as it grows
  std::vector<std::string_view> views_;
};

// The per-frame metadata and the missed seqs of a dataset, serialized once each, as the frames
// reach the disk: describing only the frames on disk, the metadata never gets ahead of the
// chunks.
class FrameTable {
 public:
  // The dataset is this sequence's: the columns also hold each frame's position and index.
  void set_sequence(const SequenceInfo& s);
  // A frame given to the writer (in seq order), not yet on disk.
  void add(const FrameRecord& f);
  // Seqs [first_seq, first_seq + count) will never arrive.
  void missed(uint64_t first_seq, uint64_t count);
  // The frames added from now on are a restarted broker's (seqs start again).
  void discontinuity(const Discontinuity& d);
  // The first `frames_on_disk` frames are on disk: serializes them, and the missed seqs below the
  // first frame that is not (so every seq up to there is accounted for).
  void advance(uint64_t frames_on_disk);

  uint64_t frames() const { return serialized_; }  // on disk, serialized
  uint64_t missed_listed() const { return missed_listed_; }
  uint64_t missed_total() const { return missed_.count(); }  // from any thread

  // Appends the "framebroker" attribute's object: what the dataset is, then the columns and the
  // missed seqs (borrowed from this table). `complete`: finish() wrote it.
  void append_attribute(const DatasetInfo& info, bool complete, TextPieces& out) const;

 private:
  struct Meta {
    uint64_t seq, camera_frame_id, mono_ns, realtime_ns;
    std::optional<uint64_t> hw_timestamp_ns;
    int64_t source_seq;
    int64_t position;
    uint32_t t, c, z;
    uint32_t session;  // broker restarts before it
  };
  nlohmann::json missed_ranges() const;

  // Frames not yet serialized; the first one is the first not on disk.
  std::deque<Meta> pending_;
  uint64_t serialized_ = 0;
  std::string col_seq_, col_cfid_, col_mono_, col_real_, col_hw_, col_source_seq_;
  std::string col_position_, col_index_;  // in a sequence
  std::optional<SequenceInfo> sequence_;
  SequencePlanes planes_;
  std::string source_stream_;  // of the first frame that names one
  MissedSeqs missed_;
  size_t missed_range_ = 0;     // missed seqs serialized: ranges()[0, missed_range_) and
  uint64_t missed_offset_ = 0;  // the first missed_offset_ of ranges()[missed_range_]
  uint64_t missed_listed_ = 0;
  std::string missed_text_;
  uint32_t session_ = 0;                // discontinuities so far
  std::vector<size_t> session_ranges_;  // per discontinuity: its first missed range
  nlohmann::json discontinuities_ = nlohmann::json::array();
};

// Zarr v2: the group's .zgroup, the array's .zarray with `frames` frames, and the group's .zattrs
// (NGFF 0.4 "multiscales" and "framebroker").
std::string zgroup_v2();
std::string zarray_v2(const DatasetInfo& info, uint64_t frames);
void zattrs_v2(const DatasetInfo& info, const FrameTable& table, bool complete, TextPieces& out);
// A chunk's key in the array's directory: "<t>.0.0" or "<t>.0.0.0"; in a sequence, `chunk` is
// the plane in (t, c, z) order and the key "<t>.<c>.<z>.0.0".
std::string chunk_key_v2(const DatasetInfo& info, uint64_t chunk);

// Zarr v3 (NGFF 0.5). A "file" is a chunk of K frames, or with sharding a shard (see
// zarr_v3_layout.cpp): `grid` is its shape, (t, [c,] y, x) or (t, c, z, y, x); `inner`, when not
// empty, the shape of the inner chunks of the sharding_indexed codec.
// The array's zarr.json with `frames` frames.
std::string array_json_v3(const DatasetInfo& info, uint64_t frames,
                          const std::vector<uint64_t>& grid, const std::vector<uint64_t>& inner);
// The group's zarr.json: attributes "ome" (version 0.5, "multiscales", "omero" of a sequence)
// and "framebroker" (as in v2).
void group_json_v3(const DatasetInfo& info, const FrameTable& table, bool complete,
                   TextPieces& out);
// A file's key in the array's directory (chunk_key_encoding "default", separator "/"):
// "c/<i>/0/0[/0]"; in a sequence, `file` is the plane in (t, c, z) order: "c/<t>/<c>/<z>/0/0".
std::string chunk_key_v3(const DatasetInfo& info, uint64_t file);

}  // namespace framebroker::fbsave::zarr
