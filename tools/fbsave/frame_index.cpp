#include "fbsave/frame_index.hpp"

#include <fcntl.h>
#include <unistd.h>

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

void MissedSeqs::add(uint64_t first, uint64_t count) {
  if (count == 0) return;
  count_ += count;
  if (!ranges_.empty() && ranges_.back().first + ranges_.back().second == first)
    ranges_.back().second += count;
  else
    ranges_.emplace_back(first, count);
}

nlohmann::json MissedSeqs::ranges_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [first, n] : ranges_) out.push_back({first, n});
  return out;
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
