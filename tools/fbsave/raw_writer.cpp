// raw writer: <dir>/frames.raw (frames back to back, rows packed, native
// little-endian), <dir>/index.jsonl (one line per frame) and <dir>/meta.json.
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
#include "fbsave/frame_index.hpp"
#include "fbsave/writer.hpp"

namespace framebroker::fbsave {
namespace {

constexpr size_t kAlign = 4096;

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBuf = std::unique_ptr<std::byte, FreeDeleter>;

AlignedBuf aligned_buffer(size_t n) {
  const size_t rounded = (n + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);  // touch it now, not on the first frame
  return AlignedBuf(static_cast<std::byte*>(p));
}

class RawWriter final : public Writer {
 public:
  explicit RawWriter(std::string path)
      : dir_(std::move(path)),
        data_path_((std::filesystem::path(dir_) / "frames.raw").string()),
        index_path_((std::filesystem::path(dir_) / "index.jsonl").string()),
        meta_path_((std::filesystem::path(dir_) / "meta.json").string()) {}

  ~RawWriter() override {
    for (int fd : {fd_direct_, fd_buf_})
      if (fd >= 0) ::close(fd);
  }

  void begin(const DatasetInfo& info) override {
    if (began_) throw std::runtime_error("cannot write " + dir_ + ": begin() called twice");
    info_ = info;
    if (info_.width == 0 || info_.height == 0)
      throw std::runtime_error("cannot write " + dir_ + ": empty frame size");
    if (info_.samples == 0) info_.samples = 1;
    row_bytes_ = size_t(info_.width) * info_.samples * info_.bytes_per_sample;
    if (info_.stride == 0) info_.stride = uint32_t(row_bytes_);
    if (info_.stride < row_bytes_)
      throw std::runtime_error("cannot write " + dir_ + ": stride " + std::to_string(info_.stride) +
                               " is less than a row (" + std::to_string(row_bytes_) + " bytes)");
    frame_bytes_ = info_.frame_bytes();

    if (::mkdir(dir_.c_str(), 0755) != 0) {
      const int e = errno;
      struct stat st {};
      if (e != EEXIST || ::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw std::runtime_error("cannot write " + dir_ + ": " + errno_text(e));
    }
    fd_direct_ =
        ::open(data_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
    if (fd_direct_ < 0) {
      if (errno != EINVAL)
        throw std::runtime_error("cannot write " + data_path_ + ": " + errno_text(errno));
      direct_note_ = "the filesystem refuses O_DIRECT";
    } else if (frame_bytes_ % kAlign != 0) {
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
    if (fd_buf_ < 0)
      throw std::runtime_error("cannot write " + data_path_ + ": " + errno_text(errno));
    if (const int e = index_.open(index_path_))
      throw std::runtime_error("cannot write " + index_path_ + ": " + errno_text(e));
    began_ = true;

    // Pre-allocated and reused: the row-packing / alignment buffer.
    if (info_.stride != row_bytes_) bounce_ = aligned_buffer(frame_bytes_);
    write_meta(false);
  }

  void write(const FrameRecord& frame) override {
    check_usable();
    const size_t need = size_t(info_.stride) * (info_.height - 1) + row_bytes_;
    if (frame.pixels.size() < need)
      throw std::runtime_error(
          "cannot write " + data_path_ + ": frame seq " + std::to_string(frame.seq) + " has " +
          std::to_string(frame.pixels.size()) + " bytes, expected " + std::to_string(need));
    const std::byte* src = frame.pixels.data();
    const bool packed = info_.stride == row_bytes_;
    const bool aligned = reinterpret_cast<uintptr_t>(src) % kAlign == 0;
    if (!packed || (fd_direct_ >= 0 && !aligned)) {
      if (!bounce_) bounce_ = aligned_buffer(frame_bytes_);  // once, if ever
      std::byte* out = bounce_.get();
      for (uint32_t y = 0; y < info_.height; ++y)
        std::memcpy(out + size_t(y) * row_bytes_, src + size_t(y) * info_.stride, row_bytes_);
      src = out;
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
      fail("cannot write " + data_path_ + ": " + errno_text(err));
    }
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
    if (const int e = index_.append(line, n))
      fail("cannot write " + index_path_ + ": " + errno_text(e));
  }

  void missed(uint64_t first_seq, uint64_t count) override { missed_.add(first_seq, count); }

  void checkpoint() override {
    check_usable();
    write_meta(false);
  }

  void finish() override {
    if (finished_) return;
    finished_ = true;
    if (!began_) return;
    FinishErrors errors(failed_, error_);
    auto note = [&](const std::string& m) { errors.note(m); };
    if (fd_buf_ >= 0 && ::fdatasync(fd_buf_) != 0)
      note("cannot write " + data_path_ + ": " + errno_text(errno));
    if (const int e = index_.close(true))
      note("cannot write " + index_path_ + ": " + errno_text(e));
    for (int* fd : {&fd_direct_, &fd_buf_}) {
      if (*fd >= 0 && ::close(*fd) != 0)
        note("cannot write " + data_path_ + ": " + errno_text(errno));
      *fd = -1;
    }
    if (const int e = write_meta_errno(true))
      note("cannot write " + meta_path_ + ": " + errno_text(e));
    errors.throw_first_new();
  }

  Totals totals() const override {
    const uint64_t n = written_;
    return Totals{n, missed_.count(), n * frame_bytes_};
  }

 private:
  static constexpr size_t kIndexLineMax = 384;
  static constexpr size_t kMaxBatchFrames = 64;
  static constexpr size_t kMaxBatchBytes = 32u << 20;

  size_t format_index_line(char* line, const FrameRecord& frame, uint64_t t, uint64_t off) const {
    char hw[32] = "null";
    if (frame.hw_timestamp_ns) std::snprintf(hw, sizeof hw, "%" PRIu64, *frame.hw_timestamp_ns);
    const int n =
        std::snprintf(line, kIndexLineMax,
                      "{\"t\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"camera_frame_id\":%" PRIu64
                      ",\"offset\":%" PRIu64 ",\"bytes\":%zu,\"mono_ns\":%" PRIu64
                      ",\"realtime_ns\":%" PRIu64 ",\"hw_timestamp_ns\":%s}\n",
                      t, frame.seq, frame.camera_frame_id, off, frame_bytes_, frame.mono_ns,
                      frame.realtime_ns, hw);
    return std::min(size_t(n), kIndexLineMax - 1);
  }

  // false: nothing of the group was kept; write it frame by frame instead.
  bool write_direct_group(std::span<const FrameRecord> group) {
    check_usable();
    if (fd_direct_ < 0 || info_.stride != row_bytes_) return false;
    iov_.clear();
    for (const FrameRecord& f : group) {
      if (f.pixels.size() < frame_bytes_ || reinterpret_cast<uintptr_t>(f.pixels.data()) % kAlign)
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
      written_ += group.size();
      return true;
    }
    [[maybe_unused]] int r = ::ftruncate(fd_buf_, off_t(off));
    index_.drop_last();
    return false;
  }

  std::string dtype() const {
    return std::string("<") + (info_.floating ? "f" : "u") + std::to_string(info_.bytes_per_sample);
  }

  int write_meta_errno(bool final) {
    nlohmann::json m = summary_json("framebroker.fbsave.raw", info_, written_.load(),
                                    index_.lines(), missed_, final, error_);
    m["bytes_per_sample"] = info_.bytes_per_sample;
    m["stride"] = row_bytes_;  // rows are packed in frames.raw
    m["dtype"] = dtype();
    m["frame_bytes"] = frame_bytes_;
    nlohmann::json shape = {written_.load(), info_.height, info_.width};
    if (info_.samples > 1) shape.push_back(info_.samples);
    m["shape"] = std::move(shape);
    m["data_file"] = "frames.raw";
    m["index_file"] = "index.jsonl";
    m["o_direct"] = direct_;
    m["o_direct_note"] = direct_note_;
    return write_file_atomic(meta_path_, m.dump(1) + "\n", final);
  }
  void write_meta(bool final) {
    if (const int e = write_meta_errno(final))
      fail("cannot write " + meta_path_ + ": " + errno_text(e));
  }

  [[noreturn]] void fail(const std::string& m) {
    failed_ = true;
    error_ = m;
    throw std::runtime_error(m);
  }

  void check_usable() {
    if (!began_ || finished_)
      throw std::runtime_error("cannot write " + dir_ + ": the writer is not open");
    if (failed_)
      throw std::runtime_error("cannot write " + dir_ + ": an earlier write failed (" + error_ +
                               ")");
  }

  std::string dir_, data_path_, index_path_, meta_path_;
  DatasetInfo info_;
  size_t row_bytes_ = 0, frame_bytes_ = 0;
  int fd_direct_ = -1, fd_buf_ = -1;
  bool direct_ = false;  // frames go through fd_direct_
  std::string direct_note_;
  AlignedBuf bounce_;
  std::vector<iovec> iov_;   // write_direct_group(), reused
  std::vector<char> lines_;  // its index lines, reused
  FrameIndex index_;
  MissedSeqs missed_;
  // Read by totals() from other threads (the saver's progress line).
  std::atomic<uint64_t> written_{0};
  bool began_ = false, finished_ = false, failed_ = false;
  std::string error_;
};

}  // namespace

std::unique_ptr<Writer> make_raw_writer(const std::string& path) {
  return std::make_unique<RawWriter>(path);
}

}  // namespace framebroker::fbsave
