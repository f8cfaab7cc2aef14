// The disk fbbench save writes to: which filesystem holds a directory, how much room is left,
// syncfs(), and the bytes a run left there.
#pragma once

#include <cstdint>
#include <string>

namespace framebroker::fbbench {

struct FsInfo {
  std::string type = "?", source = "?", mount_point = "?";
};

// The mount that holds `path` (from /proc/self/mountinfo); "?" where it cannot be told.
FsInfo filesystem_of(const std::string& path);
// Bytes an unprivileged writer may still use there; 0 when it cannot be told.
uint64_t free_bytes(const std::string& path);
// The sizes of the regular files under `path` (or of `path` itself), summed.
uint64_t tree_bytes(const std::string& path);
// The regular files under `path` (1 for a file), counted.
uint64_t tree_files(const std::string& path);
// syncfs() of the filesystem that holds `dir`. Throws std::runtime_error.
void sync_filesystem(const std::string& dir);
// Removes a file or a directory tree, if there. Throws std::runtime_error.
void remove_output(const std::string& path);
// `requested` (which must be a writable directory), else /var/tmp unless it is tmpfs, else the
// current directory. Throws std::runtime_error.
std::string choose_dir(const std::string& requested);

}  // namespace framebroker::fbbench
