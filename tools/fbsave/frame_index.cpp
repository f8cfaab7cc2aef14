#include "fbsave/frame_index.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>

#include "fbsave/file_io.hpp"

namespace framebroker::fbsave {

int FrameIndex::open(const std::string& path) {
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  return fd_ < 0 ? errno : 0;
}

int FrameIndex::append(const char* text, size_t n, uint64_t lines) {
  if (fd_ < 0) return EBADF;
  if (const int e = write_all(fd_, text, n)) {
    [[maybe_unused]] int r = ::ftruncate(fd_, off_t(bytes_));  // no half line
    return e;
  }
  bytes_ += n;
  lines_ += lines;
  last_ = n;
  last_lines_ = lines;
  return 0;
}

void FrameIndex::drop_last() {
  if (fd_ < 0 || lines_ == 0 || last_ == 0) return;
  bytes_ -= last_;
  lines_ -= last_lines_;
  last_ = 0;
  last_lines_ = 0;
  [[maybe_unused]] int r = ::ftruncate(fd_, off_t(bytes_));
}

int FrameIndex::close(bool sync) {
  if (fd_ < 0) return 0;
  int err = 0;
  if (sync && ::fdatasync(fd_) != 0) err = errno;
  if (::close(fd_) != 0 && !err) err = errno;
  fd_ = -1;
  return err;
}

void format_provenance(char (&out)[kProvenanceMax], const FrameRecord& f) {
  out[0] = '\0';
  if (f.source_stream.empty()) return;
  std::snprintf(out, kProvenanceMax, ",\"source_stream\":\"%.*s\",\"source_seq\":%" PRId64,
                int(f.source_stream.size()), f.source_stream.data(), f.source_seq);
}

void format_sequence_members(char (&out)[kSequenceMembersMax], const DatasetInfo& info,
                             const FrameRecord& f) {
  out[0] = '\0';
  if (!info.sequence) return;
  int n =
      std::snprintf(out, kSequenceMembersMax, ",\"position\":%" PRId64 ",\"index\":{", f.position);
  const char* sep = "";
  for (const char a : info.sequence->order) {
    if (a != 't' && a != 'c' && a != 'z') continue;
    const uint32_t v = a == 't' ? f.t : a == 'c' ? f.c : f.z;
    n += std::snprintf(out + n, kSequenceMembersMax - size_t(n), "%s\"%c\":%u", sep, a, v);
    sep = ",";
  }
  std::snprintf(out + n, kSequenceMembersMax - size_t(n), "}");
}

void SequencePlanes::reset(const SequenceInfo& s) {
  written_.assign(s.planes(), false);
  written_count_ = 0;
}

void SequencePlanes::mark(uint64_t plane) {
  if (plane < written_.size() && !written_[plane]) {
    written_[plane] = true;
    ++written_count_;
  }
}

nlohmann::json SequencePlanes::json(const SequenceInfo& s, const MissedSeqs& missed,
                                    bool final) const {
  using nlohmann::json;
  json sizes = json::object();
  for (const char a : s.order) sizes[std::string(1, a)] = s.size(a);
  json meta = nullptr;
  if (!s.metadata.empty()) {
    meta = json::parse(s.metadata, nullptr, false);
    if (meta.is_discarded()) meta = s.metadata;  // the broker checked it; kept as text if not
  }
  json positions = json::array();
  std::vector<bool> listed(written_.size(), false);
  json missing = json::array();
  for (const auto& [first, count] : missed.ranges()) {
    for (uint64_t q = std::max(first, s.first_seq); q < first + count; ++q) {
      const uint64_t pos = q - s.first_seq;
      if (pos >= written_.size()) break;
      positions.push_back(pos);
      const auto [t, c, z] = s.tcz_of_place(pos);
      const uint64_t plane = s.plane(t, c, z);
      if (!final && !written_[plane]) listed[plane] = true;
    }
  }
  for (uint64_t p = 0; p < written_.size(); ++p)
    if (final ? !written_[p] : bool(listed[p])) {
      const auto [t, c, z] = s.tcz_of_plane(p);
      missing.push_back({t, c, z});
    }
  return {{"id", s.id},
          {"axes", s.axes},
          {"order", s.order},
          {"sizes", sizes},
          {"channels", s.channels},
          {"z_step_um", s.z_step_um > 0 ? json(s.z_step_um) : json(nullptr)},
          {"interval_ms", s.interval_ms > 0 ? json(s.interval_ms) : json(nullptr)},
          {"metadata", meta},
          {"first_seq", s.first_seq},
          {"planes", written_.size()},
          {"planes_written", written_count_},
          {"planes_missing", missing.size()},
          {"missing_positions", positions},
          {"missing_axes", {"t", "c", "z"}},
          {"missing", missing}};
}

void MissedSeqs::add(uint64_t first, uint64_t count) {
  if (count == 0) return;
  count_ += count;
  if (!std::exchange(cut_, false) && !ranges_.empty() &&
      ranges_.back().first + ranges_.back().second == first)
    ranges_.back().second += count;
  else
    ranges_.emplace_back(first, count);
}

nlohmann::json MissedSeqs::ranges_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [first, n] : ranges_) out.push_back({first, n});
  return out;
}

nlohmann::json discontinuity_json(const Discontinuity& d) {
  return {{"frame", d.frame},
          {"last_seq_before", d.had_frame ? nlohmann::json(d.last_seq_before) : nullptr},
          {"first_seq_after", d.first_seq_after},
          {"outage_ms", d.outage_ms},
          {"reason", d.reason}};
}

nlohmann::json summary_json(const char* format, const DatasetInfo& info, uint64_t written,
                            uint64_t index_lines, const MissedSeqs& missed, bool complete,
                            const std::string& error) {
  nlohmann::json m;
  m["format"] = format;
  m["version"] = 1;
  m["stream"] = info.stream;
  m["camera"] = info.camera;
  m["camera_properties"] = info.camera_properties;
  m["width"] = info.width;
  m["height"] = info.height;
  m["samples"] = info.samples;
  m["slot_stride"] = info.stride;
  m["pixel_type"] = info.pixel_type;
  m["index_lines"] = index_lines;
  m["frames_expected"] = info.frames_expected ? nlohmann::json(*info.frames_expected) : nullptr;
  m["frames_written"] = written;
  m["frames_missed"] = missed.count();
  m["missed_seqs"] = missed.ranges_json();  // [first_seq, count] ranges
  m["complete"] = complete;
  m["error"] = error.empty() ? nlohmann::json(nullptr) : nlohmann::json(error);
  return m;
}

}  // namespace framebroker::fbsave
