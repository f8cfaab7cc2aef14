// raw writer: <dir>/frames.raw (frames back to back, rows packed, native
// little-endian), <dir>/index.jsonl (one line per frame) and <dir>/meta.json.
// In a sequence the frames stay in arrival order; each index line adds the frame's "position"
// and "index", and meta.json the "sequence" entry (its missing planes).
//
// frames.raw is written with pwrite at explicit offsets, straight from the
// shared-memory slot. When the frame size is a multiple of 4096 and the
// filesystem takes O_DIRECT, every frame goes through an O_DIRECT fd (slots
// are page-aligned; a frame that is not, or whose rows are padded, is first
// packed into one reused, page-aligned buffer). Otherwise a normal fd is used.
// One path per dataset: mixing cached and direct writes on one file only makes
// the kernel flush and drop cache pages.
//
// After a failed frame the data file is cut back to the last complete frame,
// so frames.raw is always frames_written * frame_bytes long.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "fbsave/file_io.hpp"
#include "fbsave/frame_rows.hpp"
#include "fbsave/indexed_writer.hpp"
#include "fbsave/writer.hpp"

namespace framebroker::fbsave {
namespace {

std::string in_dir(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

class RawWriter final : public IndexedWriter {
 public:
  explicit RawWriter(const std::string& path)
      : IndexedWriter("framebroker.fbsave.raw", path, in_dir(path, "index.jsonl"),
                      in_dir(path, "meta.json")),
        data_path_(in_dir(path, "frames.raw")) {}

  ~RawWriter() override {
    for (int fd : {fd_direct_, fd_buf_})
      if (fd >= 0) ::close(fd);
  }

  void begin(const DatasetInfo& info) override {
    take_info(info);

    if (::mkdir(path_.c_str(), 0755) != 0) {
      const int e = errno;
      struct stat st {};
      if (e != EEXIST || ::stat(path_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw std::runtime_error(cannot_write(path_, e));
    }
    fd_direct_ =
        ::open(data_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
    if (fd_direct_ < 0) {
      if (errno != EINVAL) throw std::runtime_error(cannot_write(data_path_, errno));
      direct_note_ = "the filesystem refuses O_DIRECT";
    } else if (frame_bytes_ % kDirectAlign != 0) {
      direct_note_ =
          "the frame size (" + std::to_string(frame_bytes_) + " bytes) is not a multiple of 4096";
      ::close(fd_direct_);
      fd_direct_ = -1;
    } else {
      direct_note_ = "frames written with O_DIRECT";
      direct_ = true;
    }
    fd_buf_ = ::open(data_path_.c_str(),
                     O_WRONLY | O_CREAT | O_CLOEXEC | (fd_direct_ < 0 ? O_TRUNC : 0), 0644);
    if (fd_buf_ < 0) throw std::runtime_error(cannot_write(data_path_, errno));
    if (const int e = index_.open(index_path_))
      throw std::runtime_error(cannot_write(index_path_, e));
    began_ = true;

    // Pre-allocated and reused: the row-packing / alignment buffer.
    if (info_.stride != row_bytes_) bounce_ = aligned_bytes(frame_bytes_);
    write_summary(false);
  }

  void write(const FrameRecord& frame) override {
    check_usable();
    check_frame_bytes(info_, row_bytes_, frame, data_path_);
    const std::byte* src = frame.pixels.data();
    const bool packed = info_.stride == row_bytes_;
    const bool aligned = reinterpret_cast<uintptr_t>(src) % kDirectAlign == 0;
    if (!packed || (fd_direct_ >= 0 && !aligned)) {
      if (!bounce_) bounce_ = aligned_bytes(frame_bytes_);  // once, if ever
      pack_rows(info_, row_bytes_, src, bounce_.get());
      src = bounce_.get();
    }
    const uint64_t off = written_ * frame_bytes_;
    // The frame's index line reaches the file before the frame does: on a full
    // disk either both are there or neither, so every frame stays described.
    append_index_line(frame, off);
    int err = 0;
    ssize_t w = -1;
    int werr = 0;
    if (fd_direct_ >= 0) {
      do {
        w = ::pwrite(fd_direct_, src, frame_bytes_, off_t(off));
        werr = w < 0 ? errno : 0;
      } while (werr == EINTR);
      if (werr == EINVAL) {
        // Took O_DIRECT at open but not this write (alignment rules of the
        // device): go on through the page cache for good.
        ::close(fd_direct_);
        fd_direct_ = -1;
        direct_ = false;
        direct_note_ =
            "the filesystem refused an O_DIRECT write (EINVAL); page cache since frame " +
            std::to_string(written_.load());
      }
    }
    if (fd_direct_ >= 0) {
      if (w < 0) {
        err = werr;
      } else if (size_t(w) < frame_bytes_) {  // short: finish through the page cache
        err = pwrite_all(fd_buf_, src + w, frame_bytes_ - size_t(w), off + uint64_t(w));
      }
    } else {
      err = pwrite_all(fd_buf_, src, frame_bytes_, off);
    }
    if (err) {
      ::ftruncate(fd_buf_, off_t(off));  // drop the partial frame, and its index line
      index_.drop_last();
      fail(cannot_write(data_path_, err));
    }
    mark_plane(frame);
    ++written_;
  }

  // Consecutive frames in one O_DIRECT pwritev: at small frame sizes the disk
  // takes one large write much faster than many small ones. Anything unusual
  // (padding, misalignment, a short or failed write) goes frame by frame through
  // write(), which knows how to report or work around it.
  void write_batch(std::span<const FrameRecord> frames) override {
    for (size_t i = 0; i < frames.size();) {
      size_t n = 1;
      while (i + n < frames.size() && n < kMaxBatchFrames &&
             (n + 1) * frame_bytes_ <= kMaxBatchBytes)
        ++n;
      auto group = frames.subspan(i, n);
      if (n == 1 || !write_direct_group(group))
        for (const FrameRecord& f : group) write(f);
      i += n;
    }
  }

  void append_index_line(const FrameRecord& frame, uint64_t off) {
    char line[kIndexLineMax];
    const size_t n = format_index_line(line, frame, written_, off);
    if (const int e = index_.append(line, n)) fail(cannot_write(index_path_, e));
  }

  void checkpoint() override {
    check_usable();
    write_summary(false);
  }

 private:
  static constexpr size_t kIndexLineMax = 512;
  static constexpr size_t kMaxBatchFrames = 64;
  static constexpr size_t kMaxBatchBytes = 32u << 20;

  size_t format_index_line(char* line, const FrameRecord& frame, uint64_t t, uint64_t off) const {
    char hw[32] = "null";
    if (frame.hw_timestamp_ns) std::snprintf(hw, sizeof hw, "%" PRIu64, *frame.hw_timestamp_ns);
    char provenance[kProvenanceMax];
    format_provenance(provenance, frame);
    char sequence[kSequenceMembersMax];
    format_sequence_members(sequence, info_, frame);
    const int n =
        std::snprintf(line, kIndexLineMax,
                      "{\"t\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"camera_frame_id\":%" PRIu64
                      ",\"offset\":%" PRIu64 ",\"bytes\":%zu,\"mono_ns\":%" PRIu64
                      ",\"realtime_ns\":%" PRIu64 ",\"hw_timestamp_ns\":%s%s%s}\n",
                      t, frame.seq, frame.camera_frame_id, off, frame_bytes_, frame.mono_ns,
                      frame.realtime_ns, hw, provenance, sequence);
    return std::min(size_t(n), kIndexLineMax - 1);
  }

  // false: nothing of the group was kept; write it frame by frame instead.
  bool write_direct_group(std::span<const FrameRecord> group) {
    check_usable();
    if (fd_direct_ < 0 || info_.stride != row_bytes_) return false;
    iov_.clear();
    for (const FrameRecord& f : group) {
      if (f.pixels.size() < frame_bytes_ ||
          reinterpret_cast<uintptr_t>(f.pixels.data()) % kDirectAlign)
        return false;
      iov_.push_back({const_cast<std::byte*>(f.pixels.data()), frame_bytes_});
    }
    const uint64_t first = written_, off = first * frame_bytes_;
    lines_.resize(group.size() * kIndexLineMax);
    size_t text = 0;
    for (size_t j = 0; j < group.size(); ++j)
      text += format_index_line(lines_.data() + text, group[j], first + j, off + j * frame_bytes_);
    // As in write(): the lines reach the index before their frames do.
    if (index_.append(lines_.data(), text, group.size()) != 0) return false;
    const size_t total = group.size() * frame_bytes_;
    ssize_t w;
    do {
      w = ::pwritev(fd_direct_, iov_.data(), int(iov_.size()), off_t(off));
    } while (w < 0 && errno == EINTR);
    if (w == ssize_t(total)) {
      for (const FrameRecord& f : group) mark_plane(f);
      written_ += group.size();
      return true;
    }
    [[maybe_unused]] int r = ::ftruncate(fd_buf_, off_t(off));
    index_.drop_last();
    return false;
  }

  void mark_plane(const FrameRecord& f) {
    if (info_.sequence) planes_.mark(info_.sequence->plane(f.t, f.c, f.z));
  }

  uint64_t frames_written() const override { return written_; }

  void add_summary_fields(nlohmann::json& m) const override {
    m["bytes_per_sample"] = info_.bytes_per_sample;
    m["stride"] = row_bytes_;  // rows are packed in frames.raw
    m["frame_bytes"] = frame_bytes_;
    nlohmann::json shape = {written_.load(), info_.height, info_.width};
    if (info_.samples > 1) shape.push_back(info_.samples);
    m["shape"] = std::move(shape);
    m["data_file"] = "frames.raw";
    m["index_file"] = "index.jsonl";
    m["o_direct"] = direct_;
    m["o_direct_note"] = direct_note_;
  }

  void close_data(FinishErrors& errors) override {
    if (fd_buf_ >= 0 && ::fdatasync(fd_buf_) != 0) errors.note(cannot_write(data_path_, errno));
    for (int* fd : {&fd_direct_, &fd_buf_}) {
      if (*fd >= 0 && ::close(*fd) != 0) errors.note(cannot_write(data_path_, errno));
      *fd = -1;
    }
  }

  const std::string data_path_;
  int fd_direct_ = -1, fd_buf_ = -1;
  bool direct_ = false;  // frames go through fd_direct_
  std::string direct_note_;
  AlignedBytes bounce_;
  std::vector<iovec> iov_;   // write_direct_group(), reused
  std::vector<char> lines_;  // its index lines, reused
  // Read by totals() from other threads (the saver's progress line).
  std::atomic<uint64_t> written_{0};
};

}  // namespace

std::unique_ptr<Writer> make_raw_writer(const std::string& path) {
  return std::make_unique<RawWriter>(path);
}

}  // namespace framebroker::fbsave
