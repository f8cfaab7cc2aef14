// Small POSIX file helpers the fbsave writers share: whole writes that
// return an errno instead of throwing (so callers can clean up first), files
// replaced atomically, and page-aligned buffers for O_DIRECT.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace framebroker::fbsave {

std::string errno_text(int e);
// "cannot write <path>: <errno_text(e)>", the sentence the writers throw.
std::string cannot_write(const std::string& path, int e);
// Writes all n bytes (retrying short writes and EINTR); 0 or the errno.
int pwrite_all(int fd, const void* buf, size_t n, uint64_t off);
int write_all(int fd, const void* buf, size_t n);
// Reads all n bytes; 0 or the errno (EIO when the file ends first).
int pread_all(int fd, void* buf, size_t n, uint64_t off);

// Ends the replacement of `path` by `tmp`, written through `fd`; `err` is the
// first error so far. Closes fd, renames tmp over path (fsyncing the file
// before and the directory after when `sync`), or on any error removes tmp.
// Returns 0, or `err` or the errno.
int commit_replacement(int fd, int err, const std::string& tmp, const std::string& path, bool sync);
// Writes `pieces`, in order, to `tmp`, then renames it over `path`: path is
// only ever the old file or the whole new one. 0 or the errno.
int replace_file(const std::string& path, const std::string& tmp,
                 std::span<const std::string_view> pieces, bool sync);
// Overwrites `path` in place (no new blocks for a same-sized text): the
// fallback when the disk is too full for a temporary file.
int write_file_in_place(const std::string& path, const std::string& text, bool sync);
// Writes `text` to `path` through `path.tmp` + rename (in place when the disk
// is full); fsyncs file and directory when `sync`. 0 or the errno.
int write_file_atomic(const std::string& path, const std::string& text, bool sync);

// O_DIRECT wants buffers, sizes and offsets in whole blocks of this.
constexpr size_t kDirectAlign = 4096;
constexpr size_t round_up_direct(size_t n) {
  return (n + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
}
struct AlignedFree {
  void operator()(std::byte* p) const;
};
using AlignedBytes = std::unique_ptr<std::byte, AlignedFree>;
// n bytes padded to whole blocks, aligned for O_DIRECT, and zeroed so that no
// page fault is left for the frame path. Throws std::bad_alloc.
AlignedBytes aligned_bytes(size_t n);

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
