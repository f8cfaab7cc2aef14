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

}  // namespace framebroker::fbsave
