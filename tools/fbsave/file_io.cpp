#include "fbsave/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace framebroker::fbsave {

std::string errno_text(int e) {
  return std::error_code(e, std::generic_category()).message();
}

int pwrite_all(int fd, const void* buf, size_t n, uint64_t off) {
  auto p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= size_t(w);
    off += uint64_t(w);
  }
  return 0;
}

int write_all(int fd, const void* buf, size_t n) {
  auto p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= size_t(w);
  }
  return 0;
}

// Overwrites `path` in place (no new file, so no new blocks for a same-sized
// text): the fallback when the disk is too full for a temp file.
int write_file_in_place(const std::string& path, const std::string& text, bool sync) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = pwrite_all(fd, text.data(), text.size(), 0);
  if (!err && ::ftruncate(fd, off_t(text.size())) != 0) err = errno;
  if (!err && sync && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  return err;
}

// Writes `text` to `path` through `path.tmp` + rename; returns 0 or the errno.
int write_file_atomic(const std::string& path, const std::string& text, bool sync) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = write_all(fd, text.data(), text.size());
  if (!err && sync && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  if (!err && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    if (err == ENOSPC || err == EDQUOT) return write_file_in_place(path, text, sync);
    return err;
  }
  if (sync) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    const int dfd =
        ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return 0;
}

void FinishErrors::note(const std::string& message) {
  if (first_new_.empty() && !had_failed_) first_new_ = message;
  if (!failed_) {
    failed_ = true;
    error_ = message;
  }
}

void FinishErrors::throw_first_new() const {
  if (!first_new_.empty()) throw std::runtime_error(first_new_);
}

}  // namespace framebroker::fbsave
