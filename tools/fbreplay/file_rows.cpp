#include "fbreplay/file_rows.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace framebroker::fbreplay {

void ReadFile::open(const std::string& dataset, const std::string& path) {
  close();
  dataset_.assign(dataset);
  path_.assign(path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0)
    throw std::runtime_error("cannot read " + dataset + ": " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("cannot read " + dataset + ": " + path + " is not a regular file");
  }
  size_ = uint64_t(st.st_size);
}

void ReadFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  size_ = 0;
}

ReadFile::ReadFile(ReadFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      size_(o.size_),
      dataset_(std::move(o.dataset_)),
      path_(std::move(o.path_)) {}

ReadFile& ReadFile::operator=(ReadFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
    dataset_ = std::move(o.dataset_);
    path_ = std::move(o.path_);
  }
  return *this;
}

void ReadFile::read_at(void* buf, size_t n, uint64_t off) const {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = ::pread(fd_, p, n, off_t(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot read " + dataset_ + ": " + path_ + ": " +
                               std::strerror(errno));
    }
    if (r == 0)
      throw std::runtime_error("cannot read " + dataset_ + ": " + path_ + " ends at byte " +
                               std::to_string(off) + ", before the frame it should hold");
    p += r;
    n -= size_t(r);
    off += uint64_t(r);
  }
}

void ReadFile::read_rows(uint64_t off, size_t rows, size_t row_bytes, std::span<std::byte> dst,
                         size_t dst_stride) const {
  check_destination(dst, rows, row_bytes, dst_stride);
  if (dst_stride == row_bytes) {
    read_at(dst.data(), rows * row_bytes, off);
    return;
  }
  for (size_t y = 0; y < rows; ++y)
    read_at(dst.data() + y * dst_stride, row_bytes, off + y * row_bytes);
}

void check_destination(std::span<std::byte> dst, size_t rows, size_t row_bytes, size_t dst_stride) {
  if (rows == 0) return;
  if (dst_stride < row_bytes || dst.size() < dst_stride * (rows - 1) + row_bytes)
    throw std::runtime_error("a slot of " + std::to_string(dst.size()) + " bytes (rows " +
                             std::to_string(dst_stride) + " bytes apart) cannot hold " +
                             std::to_string(rows) + " rows of " + std::to_string(row_bytes) +
                             " bytes");
}

}  // namespace framebroker::fbreplay
