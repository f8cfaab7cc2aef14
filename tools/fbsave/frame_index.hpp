// What the raw and TIFF writers keep beside the pixels: a JSON line per frame,
// and the seqs that never arrived.
#pragma once

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "fbsave/writer.hpp"

namespace framebroker::fbsave {

// An append-only .jsonl file, one line per frame. Each line is written before
// its frame, at once: on a full disk a frame is either described or absent.
class FrameIndex {
 public:
  ~FrameIndex() { close(false); }
  int open(const std::string& path);  // truncates; 0 or the errno
  // Appends `lines` whole lines in one write: 0, or the errno with the file unchanged.
  int append(const char* text, size_t n, uint64_t lines = 1);
  void drop_last();      // the frames of the last append could not be written
  int close(bool sync);  // idempotent; 0 or the errno
  uint64_t lines() const { return lines_; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  uint64_t bytes_ = 0, lines_ = 0;
  size_t last_ = 0;
  uint64_t last_lines_ = 0;
  std::string path_;
};

// The provenance of a processor's frame as index-line members,
// `,"source_stream":"S","source_seq":N`, or "" for a camera's frame. `out` holds 96 bytes.
constexpr size_t kProvenanceMax = 96;
void format_provenance(char (&out)[kProvenanceMax], const FrameRecord& f);

// Missed seqs as [first, count] ranges; count() may be read from any thread.
class MissedSeqs {
 public:
  void add(uint64_t first, uint64_t count);
  // The next add() starts a range of its own even when adjacent (a new broker's seqs).
  void cut() { cut_ = true; }
  uint64_t count() const { return count_.load(); }
  // [first, count], in seq order, adjacent ones merged.
  const std::vector<std::pair<uint64_t, uint64_t>>& ranges() const { return ranges_; }
  nlohmann::json ranges_json() const;

 private:
  std::atomic<uint64_t> count_{0};
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
  bool cut_ = false;
};

// The `,"position":P,"index":{"t":T,"c":C,"z":Z}` members of a sequence frame's index line (the
// axes of `s` only), or "" outside a sequence. `out` holds 96 bytes.
constexpr size_t kSequenceMembersMax = 96;
void format_sequence_members(char (&out)[kSequenceMembersMax], const DatasetInfo& info,
                             const FrameRecord& f);

// Which planes of a sequence a dataset holds, and its "sequence" metadata entry, which every format
// writes (Zarr's .zattrs, TIFF's .frames.json, raw's meta.json).
class SequencePlanes {
 public:
  void reset(const SequenceInfo& s);
  void mark(uint64_t plane);  // in (t, c, z) order
  uint64_t written() const { return written_count_; }
  uint64_t missing() const { return written_.size() - written_count_; }
  // {id, axes, order, sizes, channels, z_step_um, interval_ms, metadata (the JSON object),
  // planes, planes_written, planes_missing, missing_positions, missing: [[t, c, z], ...]}.
  // `missed`: the seqs the saver never received; their positions are missing_positions. `final`:
  // every plane not written is missing; before, only those of missed positions are listed.
  nlohmann::json json(const SequenceInfo& s, const MissedSeqs& missed, bool final) const;

 private:
  std::vector<bool> written_;
  uint64_t written_count_ = 0;
};

// The summary both sidecar formats share: the dataset, its camera, and the
// accounting (written + missed = the seqs of the acquisition).
nlohmann::json summary_json(const char* format, const DatasetInfo& info, uint64_t written,
                            uint64_t index_lines, const MissedSeqs& missed, bool complete,
                            const std::string& error);

}  // namespace framebroker::fbsave
