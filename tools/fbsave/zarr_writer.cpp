// fbsave's OME-Zarr writer, for both versions: NGFF 0.4 on Zarr v2 and NGFF 0.5 on Zarr v3. What
// the versions differ in (names, encodings, metadata texts) is a zarr::Layout (zarr_layout.hpp);
// this file owns the threads, the buffers and the order in which files appear.
//
// Layout of a v2 <path> (a directory):
//   .zgroup                 {"zarr_format": 2}
//   .zattrs                 "multiscales" (one level, axes t[,c],y,x) and "framebroker" (per-frame
//                           metadata in columns, missed seqs, counts, camera and its properties)
//   0/.zarray               shape (T, H, W) or (T, 3, H, W), chunks (K, H, W) or (K, 3, H, W)
//   0/<i>.0.0[.0]           chunk i: frames [i*K, i*K + K), Blosc-compressed or raw
// A sequence's dataset (DatasetInfo::sequence) instead has shape (T, C, Z, H, W) from the start,
// one plane a chunk (K = 1) at the key <t>.<c>.<z>.0.0 of the frame's index, "omero" channels and
// "framebroker"."sequence" (its missing planes); a plane no frame came for is never written and
// reads as the fill value. v3 (zarr_v3_layout.cpp) keeps the same shapes and attributes in
// zarr.json files, with a file per shard of inner chunks.
//
// Two paths, chosen in begin() for the whole dataset:
//
// Direct (no copy): when the layout's file is its frames as they are, back to back, then an
// optional trailer (Layout::frames_as_is(): no compression; v2 chunks, v3 chunks, v3 shards of
// whole-frame inner chunks, no tiles), one sample per pixel (RGB needs the planar copy) and packed
// rows (stride == row bytes). There is no ChunkPipeline and no chunk buffer: write() and
// write_batch(), on the caller's thread, open the current file's temporary name and pwrite each
// frame (pwritev for a batch's consecutive frames of one file) at its offset straight from the
// shared-memory slot, synchronously, as the raw writer does. O_DIRECT when the frame size is a
// multiple of 4096 and the filesystem takes it (a slot that is not 4096-aligned goes through one
// pre-faulted bounce buffer); else the page cache. A file with all its frames (or finish()'s
// partial last one) gets its trailer (a shard's index, from a small pre-allocated buffer,
// padded to a block for O_DIRECT), is cut or extended to its exact size (a partial chunk's
// padding is a hole: zeros, the fill value), closed and renamed. A sequence's file is one frame.
//
// Pipeline (everything else): the caller's thread copies each frame into the current file buffer
// and returns; a full file goes to a ChunkPipeline (chunk_pipeline.hpp): DatasetInfo::threads
// encoder threads run Layout::encode (compression) on several files at once, and one writer thread
// writes them in order under a temporary name, then renames them. The buffers are allocated in
// begin() (threads + 2 of them, each a raw and, when the layout needs one, an output buffer); when
// every buffer is busy, write() waits: that is the back-pressure.
//
// Crash consistency: files appear only complete (temp name + rename). They are written in order
// by one thread (the pipeline's writer, or the caller's on the direct path; a failed file's temp
// name is removed), and after an error nothing more is written, so the frames
// on disk are always a prefix of those written: the shape counts the frames in completed files
// only, and the attributes are renamed before the shape, so the shape never exceeds what the
// attributes describe or what is on disk. Missed seqs are listed up to the first frame not yet on
// disk, so every seq up to there is accounted for (written or missed). There is no fsync: this
// survives a kill -9, not a power cut.
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "fbsave/chunk_pipeline.hpp"
#include "fbsave/file_io.hpp"
#include "fbsave/frame_rows.hpp"
#include "fbsave/writer.hpp"
#include "fbsave/zarr_layout.hpp"
#include "fbsave/zarr_metadata.hpp"

namespace framebroker::fbsave {
namespace {

namespace fs = std::filesystem;

// Writes a chunk around the page cache, which this kind of VM serves slowly on
// cold memory: whole blocks with O_DIRECT to the temp name, cut to `size`,
// then renamed. `data` must be aligned and readable up to the next block.
// Returns 0, the errno, or -1 when the filesystem refuses O_DIRECT.
int write_chunk_direct(const std::string& tmp_path, const std::string& final_path,
                       const std::byte* data, size_t size) {
  const int fd =
      ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
  if (fd < 0) return errno == EINVAL ? -1 : errno;
  int err = pwrite_all(fd, data, round_up_direct(size), 0);
  if (err == EINVAL) err = -1;
  if (err == 0 && ::ftruncate(fd, off_t(size)) != 0) err = errno;
  return commit_replacement(fd, err, tmp_path, final_path, false);
}

template <typename T>
void deinterleave_row(const std::byte* src, std::byte* dst, size_t width, size_t samples,
                      size_t plane_bytes) {
  for (size_t c = 0; c < samples; ++c) {
    T* out = reinterpret_cast<T*>(dst + c * plane_bytes);
    for (size_t x = 0; x < width; ++x)
      std::memcpy(out + x, src + (x * samples + c) * sizeof(T), sizeof(T));
  }
}

class ZarrWriter final : public Writer {
 public:
  ZarrWriter(std::string path, std::unique_ptr<zarr::Layout> layout)
      : path_(std::move(path)), layout_(std::move(layout)) {
    while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  }

  ~ZarrWriter() override {
    try {
      finish();
    } catch (...) {  // the caller did not call finish(); nobody is left to tell
    }
  }

  void begin(const DatasetInfo& info) override;
  void write(const FrameRecord& frame) override;
  void missed(uint64_t first_seq, uint64_t count) override;
  void discontinuity(const Discontinuity& d) override;
  void checkpoint() override;
  void finish() override;
  void write_batch(std::span<const FrameRecord> frames) override;
  Totals totals() const override {
    const uint64_t w = durable();
    return {w, table_.missed_total(), w * frame_bytes_};
  }

 private:
  uint64_t durable() const { return pipe_ ? pipe_->durable() : durable_.load(); }
  void check_frame(const FrameRecord& f) const;
  void check_failed();
  [[noreturn]] void fail_reported(std::string error);
  void submit(uint64_t file);
  std::string write_file(uint64_t index, std::span<const std::byte> bytes);
  std::string write_metadata(bool final);

  // The direct path.
  void put(std::span<const FrameRecord> frames);  // the next frames, all of the current file
  int open_file(uint64_t index);
  int write_at(const std::byte* src, uint64_t off);  // one frame
  int write_run(std::span<const FrameRecord> frames, uint64_t off);
  std::string close_file();
  void drop_file(int err);

  std::string path_;
  const std::unique_ptr<zarr::Layout> layout_;
  DatasetInfo info_;
  bool begun_ = false, finished_ = false;
  size_t row_bytes_ = 0, frame_bytes_ = 0;
  uint32_t k_ = 1;  // frames per file

  // Made in begin(), kept until the writer goes (totals() reads its durable count).
  std::unique_ptr<ChunkPipeline> pipe_;
  std::byte* cur_ = nullptr;  // the raw buffer being filled (the caller's thread's)
  uint32_t in_chunk_ = 0;     // frames in cur_
  uint64_t next_chunk_ = 0;
  bool direct_ = true;  // O_DIRECT until the filesystem refuses (the thread that writes files)

  // The direct path's (caller's thread; durable_ is read by totals() from others).
  bool direct_path_ = false;
  int fd_ = -1;             // the current file's temporary name, open
  bool fd_direct_ = false;  // fd_ has O_DIRECT
  std::string file_, tmp_;  // the current file's final and temporary names
  AlignedBytes bounce_;     // a misaligned slot's frame, for O_DIRECT
  AlignedBytes trailer_;    // the current file's trailer
  std::array<iovec, 64> iov_{};
  std::atomic<uint64_t> durable_{0};
  bool failed_ = false;  // error_ is the first error; after it nothing more is written
  std::string error_;

  // Metadata, on the caller's thread only (totals() reads its missed count, an atomic).
  zarr::FrameTable table_;
  bool meta_written_ = false;
  uint64_t last_meta_t_ = 0, last_meta_missed_ = 0;
  bool last_meta_final_ = false;
};

void ZarrWriter::begin(const DatasetInfo& info) {
  if (begun_) throw std::runtime_error("zarr writer for " + path_ + ": begin() called twice");
  info_ = info;
  if (info.sequence) {
    if (info.samples != 1)
      throw std::runtime_error("cannot write " + path_ + ": a sequence of " + info.pixel_type +
                               " frames (more than one sample per pixel) is not supported");
    table_.set_sequence(*info.sequence);
  }
  if (info.bytes_per_sample != 1 && info.bytes_per_sample != 2 && info.bytes_per_sample != 4)
    throw std::runtime_error("cannot write " + path_ + ": " +
                             std::to_string(info.bytes_per_sample) +
                             " bytes per sample is not supported (1, 2 or 4)");
  if (info.samples != 1 && info.samples != 3)
    throw std::runtime_error("cannot write " + path_ + ": " + std::to_string(info.samples) +
                             " samples per pixel is not supported (1 or 3)");
  row_bytes_ = settle_rows(info_, path_);
  frame_bytes_ = info.frame_bytes();
  layout_->prepare(path_, info_);
  layout_->create();
  k_ = layout_->frames_per_file();

  if (auto e = write_metadata(false); !e.empty()) throw std::runtime_error(e);

  direct_path_ = layout_->frames_as_is() && info_.samples == 1 && info_.stride == row_bytes_;
  if (direct_path_) {
    try {  // small, or one frame: pre-faulted here, not on the frame path
      if (layout_->trailer_bytes() > 0) trailer_ = aligned_bytes(layout_->trailer_bytes());
      if (frame_bytes_ % kDirectAlign == 0) bounce_ = aligned_bytes(frame_bytes_);
    } catch (const std::bad_alloc&) {
      throw std::runtime_error("cannot write " + path_ + ": no memory for a buffer of " +
                               std::to_string(frame_bytes_ >> 20) + " MiB");
    }
    begun_ = true;
    return;
  }

  // The buffers, touched once so that no page fault is left for the frame path.
  const ChunkPipeline::Options po{layout_->raw_bytes(), layout_->out_bytes(),
                                  std::max(1u, info.threads), 0};
  try {
    pipe_ = std::make_unique<ChunkPipeline>(
        po,
        [this](uint64_t index, std::byte* raw, uint32_t frames, std::byte* out) {
          return layout_->encode(index, raw, frames, out);
        },
        [this](uint64_t index, std::span<const std::byte> bytes) {
          return write_file(index, bytes);
        });
  } catch (const std::bad_alloc&) {
    throw std::runtime_error("cannot write " + path_ + ": no memory for " +
                             std::to_string(ChunkPipeline::memory_bytes(po) >> 20) +
                             " MiB of buffers (" + std::to_string(po.encoders + 2) + " files of " +
                             std::to_string(po.raw_bytes >> 20) + " MiB" +
                             (po.out_bytes ? " and their compressed copies" : "") +
                             "); use fewer frames per chunk (or shard) or fewer --threads");
  }
  begun_ = true;
}

void ZarrWriter::submit(uint64_t file) {
  pipe_->submit(file, in_chunk_);
  cur_ = nullptr;
  in_chunk_ = 0;
}

void ZarrWriter::check_frame(const FrameRecord& f) const {
  check_frame_bytes(info_, row_bytes_, f, path_);
  if (info_.sequence && !info_.sequence->holds(f.t, f.c, f.z))
    throw std::runtime_error("cannot write " + path_ + ": frame seq " + std::to_string(f.seq) +
                             " has the index t=" + std::to_string(f.t) +
                             ",c=" + std::to_string(f.c) + ",z=" + std::to_string(f.z) +
                             ", outside the sequence's " + info_.sequence->axes);
}

// Throws the first error, if there was one (as ChunkPipeline::check()).
void ZarrWriter::check_failed() {
  if (pipe_) pipe_->check();
  if (failed_) throw std::runtime_error(error_);
}

void ZarrWriter::write(const FrameRecord& f) {
  if (!begun_ || finished_)
    throw std::runtime_error("zarr writer for " + path_ + ": write() outside begin()..finish()");
  check_failed();
  check_frame(f);
  if (direct_path_) return put(std::span(&f, 1));
  if (!cur_) cur_ = pipe_->acquire();

  std::byte* dst = cur_ + size_t(in_chunk_) * frame_bytes_;
  const std::byte* src = f.pixels.data();
  if (info_.samples == 1) {
    pack_rows(info_, row_bytes_, src, dst);
  } else {  // interleaved in the slot, planar (c, y, x) in the array
    const size_t plane = frame_bytes_ / info_.samples;
    const size_t plane_row = size_t(info_.width) * info_.bytes_per_sample;
    for (size_t y = 0; y < info_.height; ++y) {
      const std::byte* s = src + y * info_.stride;
      std::byte* d = dst + y * plane_row;
      switch (info_.bytes_per_sample) {
        case 1:
          deinterleave_row<uint8_t>(s, d, info_.width, info_.samples, plane);
          break;
        case 2:
          deinterleave_row<uint16_t>(s, d, info_.width, info_.samples, plane);
          break;
        default:
          deinterleave_row<uint32_t>(s, d, info_.width, info_.samples, plane);
          break;
      }
    }
  }
  table_.add(f);
  // In a sequence a chunk is one plane (K = 1), at its index; else the next K frames.
  if (++in_chunk_ == k_)
    submit(info_.sequence ? info_.sequence->plane(f.t, f.c, f.z) : next_chunk_++);
}

void ZarrWriter::write_batch(std::span<const FrameRecord> frames) {
  if (!direct_path_ || info_.sequence) {  // a sequence's file is one frame
    for (const FrameRecord& f : frames) write(f);
    return;
  }
  if (!begun_ || finished_)
    throw std::runtime_error("zarr writer for " + path_ + ": write() outside begin()..finish()");
  check_failed();
  while (!frames.empty()) {
    const size_t n = std::min({frames.size(), size_t(k_ - in_chunk_), iov_.size()});
    const auto run = frames.first(n);
    for (const FrameRecord& f : run) check_frame(f);
    put(run);
    frames = frames.subspan(n);
  }
}

void ZarrWriter::put(std::span<const FrameRecord> frames) {
  if (fd_ < 0) {
    const FrameRecord& f = frames.front();
    const uint64_t index = info_.sequence ? info_.sequence->plane(f.t, f.c, f.z) : next_chunk_;
    if (const int e = open_file(index)) {
      failed_ = true;
      error_ = cannot_write(file_, e);
      throw std::runtime_error(error_);
    }
  }
  if (const int e = write_run(frames, uint64_t(in_chunk_) * frame_bytes_)) {
    drop_file(e);
    throw std::runtime_error(error_);
  }
  for (const FrameRecord& f : frames) table_.add(f);
  in_chunk_ += uint32_t(frames.size());
  if (in_chunk_ < k_) return;
  if (std::string e = close_file(); !e.empty()) {
    failed_ = true;
    error_ = std::move(e);
    throw std::runtime_error(error_);
  }
}

// Opens the temporary name of file `index` (file_, tmp_), O_DIRECT when it can be used.
int ZarrWriter::open_file(uint64_t index) {
  const fs::path path = fs::path(path_) / layout_->file_path(index);
  file_ = path.string();
  tmp_ = (path.parent_path() / ("." + path.filename().string() + ".tmp")).string();
  if (!info_.sequence) ++next_chunk_;
  for (int attempt = 0; attempt < 2; ++attempt) {
    fd_direct_ = direct_ && frame_bytes_ % kDirectAlign == 0;
    fd_ = ::open(tmp_.c_str(),
                 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (fd_direct_ ? O_DIRECT : 0), 0644);
    if (fd_ < 0 && errno == EINVAL && fd_direct_) {  // a filesystem without O_DIRECT
      direct_ = fd_direct_ = false;
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (fd_ >= 0) return 0;
    if (errno != ENOENT || attempt > 0) break;
    // Zarr v3 nests its files (c/<t>/0/0): the directory of a new t comes with its first file.
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) return ec.value();
  }
  return errno;
}

int ZarrWriter::write_at(const std::byte* src, uint64_t off) {
  if (fd_direct_ && reinterpret_cast<uintptr_t>(src) % kDirectAlign != 0) {
    std::memcpy(bounce_.get(), src, frame_bytes_);
    src = bounce_.get();
  }
  int e = pwrite_all(fd_, src, frame_bytes_, off);
  if (e == EINVAL && fd_direct_) {
    // Took O_DIRECT at open but not this write: the page cache from here on, for good.
    const int fd = ::open(tmp_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ::close(fd_);
    fd_ = fd;
    direct_ = fd_direct_ = false;
    e = pwrite_all(fd_, src, frame_bytes_, off);
  }
  return e;
}

// Consecutive frames in one pwritev (at small frame sizes the disk takes one large write much
// faster than many small ones); anything unusual (a misaligned slot for O_DIRECT, a short or
// failed write) frame by frame through write_at(), which knows how to work around it.
int ZarrWriter::write_run(std::span<const FrameRecord> frames, uint64_t off) {
  bool vector = frames.size() > 1;
  for (size_t i = 0; vector && i < frames.size(); ++i) {
    const std::byte* p = frames[i].pixels.data();
    if (fd_direct_ && reinterpret_cast<uintptr_t>(p) % kDirectAlign != 0) vector = false;
    iov_[i] = {const_cast<std::byte*>(p), frame_bytes_};
  }
  if (vector) {
    ssize_t w;
    do {
      w = ::pwritev(fd_, iov_.data(), int(frames.size()), off_t(off));
    } while (w < 0 && errno == EINTR);
    if (w == ssize_t(frames.size() * frame_bytes_)) return 0;
  }
  for (size_t i = 0; i < frames.size(); ++i)
    if (const int e = write_at(frames[i].pixels.data(), off + i * frame_bytes_)) return e;
  return 0;
}

// Ends the current file (its in_chunk_ frames): trailer, exact size, close, rename. Returns "" or
// the error (the temporary name removed).
std::string ZarrWriter::close_file() {
  const zarr::Layout::Trailer t = layout_->trailer(in_chunk_, trailer_.get());
  int e = 0;
  if (t.bytes > 0)  // O_DIRECT: whole blocks at a block offset (a multiple of the frame size)
    e = pwrite_all(fd_, trailer_.get(), fd_direct_ ? round_up_direct(t.bytes) : t.bytes, t.offset);
  if (e == 0 && ::ftruncate(fd_, off_t(t.offset + t.bytes)) != 0) e = errno;
  e = commit_replacement(fd_, e, tmp_, file_, false);
  fd_ = -1;
  if (e != 0) return cannot_write(file_, e);
  durable_ += in_chunk_;
  in_chunk_ = 0;
  return {};
}

// A failed write: the current file's temporary name goes, nothing more is written.
void ZarrWriter::drop_file(int err) {
  commit_replacement(fd_, err, tmp_, file_, false);
  fd_ = -1;
  failed_ = true;
  error_ = cannot_write(file_, err);
}

void ZarrWriter::missed(uint64_t first_seq, uint64_t count) {
  table_.missed(first_seq, count);
}

void ZarrWriter::discontinuity(const Discontinuity& d) {
  table_.discontinuity(d);
}

std::string ZarrWriter::write_file(uint64_t index, std::span<const std::byte> bytes) {
  const fs::path path = fs::path(path_) / layout_->file_path(index);
  const std::string tmp = (path.parent_path() / ("." + path.filename().string() + ".tmp")).string();
  int e = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    e = direct_ ? write_chunk_direct(tmp, path.string(), bytes.data(), bytes.size()) : -1;
    if (e < 0) {  // e.g. a filesystem without O_DIRECT: the page cache it is
      direct_ = false;
      const std::string_view piece(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      e = replace_file(path.string(), tmp, std::span(&piece, 1), false);
    }
    if (e != ENOENT || attempt > 0) break;
    // Zarr v3 nests its files (c/<t>/0/0): the directory of a new t comes with its first file.
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) return "cannot create " + path.parent_path().string() + ": " + ec.message();
  }
  return e == 0 ? std::string() : cannot_write(path.string(), e);
}

void ZarrWriter::checkpoint() {
  if (!begun_ || finished_) return;
  check_failed();
  if (auto e = write_metadata(false); !e.empty()) fail_reported(std::move(e));
}

// An error the caller is about to get: the worker writes nothing more, and finish() does not
// throw a second error of the same cause (e.g. the chunk the full disk refused next).
void ZarrWriter::fail_reported(std::string error) {
  if (pipe_) {
    pipe_->fail(error);
  } else if (!failed_) {
    failed_ = true;
    error_ = error;
  }
  throw std::runtime_error(error);
}

void ZarrWriter::finish() {
  if (!begun_ || finished_) return;
  finished_ = true;
  if (direct_path_) {
    std::string error;  // a new one: the last file's
    if (fd_ >= 0 && !failed_) {
      error = close_file();  // the last, partial file: padded with zeros, the shape tells the truth
      failed_ = !error.empty();
    }
    const std::string meta_error = write_metadata(!failed_);
    if (!error.empty()) throw std::runtime_error(error);
    if (!failed_ && !meta_error.empty()) throw std::runtime_error(meta_error);
    return;
  }
  if (cur_ && in_chunk_ > 0 && !pipe_->failed()) {
    // The last, partial file: padded with the fill value, the shape tells the truth.
    std::memset(cur_ + size_t(in_chunk_) * frame_bytes_, 0, size_t(k_ - in_chunk_) * frame_bytes_);
    submit(next_chunk_++);
  }
  const std::string error = pipe_->finish();  // the first error, unless the caller had it
  const bool failed = pipe_->failed();
  // Metadata for what is on disk. After a failure the last checkpoint's metadata stays if this
  // cannot be written either; it is consistent with the files on disk.
  const std::string meta_error = write_metadata(!failed);
  if (!error.empty()) throw std::runtime_error(error);
  if (!failed && !meta_error.empty()) throw std::runtime_error(meta_error);
}

std::string ZarrWriter::write_metadata(bool final) {
  // Before begin() is done: nothing written yet. Files are done; the writer may add more, not
  // fewer.
  const uint64_t t = durable();
  table_.advance(t);
  if (meta_written_ && t == last_meta_t_ && table_.missed_listed() == last_meta_missed_ &&
      final == last_meta_final_)
    return {};
  if (std::string e = layout_->write_metadata(table_, t, final); !e.empty()) return e;
  meta_written_ = true;
  last_meta_t_ = t;
  last_meta_missed_ = table_.missed_listed();
  last_meta_final_ = final;
  return {};
}

}  // namespace

std::unique_ptr<Writer> make_zarr_writer(const std::string& path,
                                         std::unique_ptr<zarr::Layout> layout) {
  return std::make_unique<ZarrWriter>(path, std::move(layout));
}

std::unique_ptr<Writer> make_zarr_writer(const std::string& path) {
  return make_zarr_writer(path, zarr::make_v2_layout());
}

}  // namespace framebroker::fbsave
