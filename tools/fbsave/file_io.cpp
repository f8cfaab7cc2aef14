#include "fbsave/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <stdexcept>
#include <system_error>

namespace framebroker::fbsave {

namespace {

// Calls `io(p, left, done)` (a read or write of p[0, left), `done` bytes in)
// until all n bytes are through; 0 or the errno (EIO at the end of a file).
template <class Char, class Io>
int transfer_all(Char* p, size_t n, Io&& io) {
  uint64_t done = 0;
  while (n > 0) {
    const ssize_t w = io(p, n, done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= size_t(w);
    done += uint64_t(w);
  }
  return 0;
}

void fsync_parent(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const int dfd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

std::string errno_text(int e) {
  return std::error_code(e, std::generic_category()).message();
}

std::string cannot_write(const std::string& path, int e) {
  return "cannot write " + path + ": " + errno_text(e);
}

int pwrite_all(int fd, const void* buf, size_t n, uint64_t off) {
  return transfer_all(static_cast<const char*>(buf), n,
                      [&](const char* p, size_t left, uint64_t done) {
                        return ::pwrite(fd, p, left, off_t(off + done));
                      });
}

int write_all(int fd, const void* buf, size_t n) {
  return transfer_all(static_cast<const char*>(buf), n,
                      [&](const char* p, size_t left, uint64_t) { return ::write(fd, p, left); });
}

int pread_all(int fd, void* buf, size_t n, uint64_t off) {
  return transfer_all(static_cast<char*>(buf), n, [&](char* p, size_t left, uint64_t done) {
    return ::pread(fd, p, left, off_t(off + done));
  });
}

int commit_replacement(int fd, int err, const std::string& tmp, const std::string& path,
                       bool sync) {
  if (!err && sync && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  if (!err && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    return err;
  }
  if (sync) fsync_parent(path);
  return 0;
}

int replace_file(const std::string& path, const std::string& tmp,
                 std::span<const std::string_view> pieces, bool sync) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = 0;
  for (size_t i = 0; i < pieces.size() && !err; ++i)
    err = write_all(fd, pieces[i].data(), pieces[i].size());
  return commit_replacement(fd, err, tmp, path, sync);
}

int write_file_in_place(const std::string& path, const std::string& text, bool sync) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = pwrite_all(fd, text.data(), text.size(), 0);
  if (!err && ::ftruncate(fd, off_t(text.size())) != 0) err = errno;
  if (!err && sync && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  return err;
}

int write_file_atomic(const std::string& path, const std::string& text, bool sync) {
  const std::string_view pieces[] = {text};
  const int err = replace_file(path, path + ".tmp", pieces, sync);
  if (err == ENOSPC || err == EDQUOT) return write_file_in_place(path, text, sync);
  return err;
}

void AlignedFree::operator()(std::byte* p) const {
  std::free(p);
}

AlignedBytes aligned_bytes(size_t n) {
  void* p = std::aligned_alloc(kDirectAlign, round_up_direct(n));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, round_up_direct(n));
  return AlignedBytes(static_cast<std::byte*>(p));
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
