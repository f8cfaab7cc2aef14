// Reading a frame whose rows lie packed in a file (raw's frames.raw, a TIFF page's strip, an
// uncompressed Zarr chunk) straight into a slot whose rows may be further apart: pread into
// the destination, no buffer in between.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace framebroker::fbreplay {

// An open file, read-only, closed with the object.
class ReadFile {
 public:
  ReadFile() = default;
  // Throws std::runtime_error "cannot read <dataset>: <path>: <errno>".
  ReadFile(const std::string& dataset, const std::string& path) { open(dataset, path); }
  ~ReadFile() { close(); }
  ReadFile(ReadFile&& o) noexcept;
  ReadFile& operator=(ReadFile&& o) noexcept;
  ReadFile(const ReadFile&) = delete;
  ReadFile& operator=(const ReadFile&) = delete;

  // Closes the file open, then opens `path` (reusing this object's strings: no allocation once
  // they are long enough). Throws as the constructor does.
  void open(const std::string& dataset, const std::string& path);
  void close();
  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Reads n bytes at off into buf; throws naming the file when it cannot (or it ends first).
  void read_at(void* buf, size_t n, uint64_t off) const;
  // `rows` rows of `row_bytes`, packed at `off`, to dst with `dst_stride` between rows.
  void read_rows(uint64_t off, size_t rows, size_t row_bytes, std::span<std::byte> dst,
                 size_t dst_stride) const;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string dataset_, path_;
};

// Throws unless `dst` holds `rows` rows of `row_bytes`, `dst_stride` apart.
void check_destination(std::span<std::byte> dst, size_t rows, size_t row_bytes, size_t dst_stride);

}  // namespace framebroker::fbreplay
