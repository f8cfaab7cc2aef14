// Small POSIX file helpers the fbsave writers share: whole writes that
// return an errno instead of throwing (so callers can clean up first), and
// metadata files replaced atomically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace framebroker::fbsave {

std::string errno_text(int e);
// Writes all n bytes (retrying short writes and EINTR); 0 or the errno.
int pwrite_all(int fd, const void* buf, size_t n, uint64_t off);
int write_all(int fd, const void* buf, size_t n);
// Overwrites `path` in place (no new blocks for a same-sized text): the
// fallback when the disk is too full for a temporary file.
int write_file_in_place(const std::string& path, const std::string& text, bool sync);
// Writes `text` to `path` through `path.tmp` + rename (in place when the disk
// is full); fsyncs file and directory when `sync`. 0 or the errno.
int write_file_atomic(const std::string& path, const std::string& text, bool sync);

// The errors finish() meets: each is recorded in the writer (failed, error),
// and the first one its caller has not heard of yet is thrown once, at the end.
class FinishErrors {
 public:
  FinishErrors(bool& failed, std::string& error)
      : failed_(failed), error_(error), had_failed_(failed) {}
  bool had_failed() const { return had_failed_; }
  void note(const std::string& message);
  void throw_first_new() const;

 private:
  bool& failed_;
  std::string& error_;
  const bool had_failed_;
  std::string first_new_;
};

}  // namespace framebroker::fbsave
