#include "fbbench/disk.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "fbbench/process.hpp"

namespace framebroker::fbbench {

namespace fs = std::filesystem;

namespace {

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount_field(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      out.push_back(char(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool path_is_under(const std::string& path, const std::string& mount) {
  if (mount == "/") return true;
  return path.compare(0, mount.size(), mount) == 0 &&
         (path.size() == mount.size() || path[mount.size()] == '/');
}

bool writable_dir(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && ::access(dir.c_str(), W_OK) == 0;
}

}  // namespace

// The longest mount point above `path` (the last one mounted wins).
FsInfo filesystem_of(const std::string& path) {
  std::error_code ec;
  const std::string canon = fs::canonical(path, ec).string();
  std::ifstream in("/proc/self/mountinfo");
  FsInfo best;
  size_t best_len = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::vector<std::string> f;
    for (std::string w; ls >> w;) f.push_back(w);
    const auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || f.end() - dash < 3) continue;
    const std::string mount = unescape_mount_field(f[4]);
    if (!path_is_under(canon, mount) || mount.size() < best_len) continue;
    best = {dash[1], unescape_mount_field(dash[2]), mount};
    best_len = mount.size();
  }
  return best;
}

uint64_t free_bytes(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return 0;
  return uint64_t(st.f_bavail) * st.f_frsize;
}

uint64_t tree_bytes(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return fs::file_size(path, ec);
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

uint64_t tree_files(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return 1;
  uint64_t n = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec))
    n += it->is_regular_file(ec) ? 1 : 0;
  return n;
}

void sync_filesystem(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + dir + ": " + errno_text(errno));
  const int rc = ::syncfs(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error("syncfs " + dir + ": " + errno_text(e));
}

void remove_output(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) throw std::runtime_error("cannot remove " + path + ": " + ec.message());
}

std::string choose_dir(const std::string& requested) {
  if (!requested.empty()) {
    if (!writable_dir(requested))
      throw std::runtime_error(requested + " is not a writable directory");
    return fs::absolute(requested).string();
  }
  const std::string cwd = fs::current_path().string();
  for (const std::string& d : {std::string("/var/tmp"), cwd})
    if (writable_dir(d) && filesystem_of(d).type != "tmpfs") return d;
  if (writable_dir("/var/tmp")) return "/var/tmp";
  return cwd;
}

}  // namespace framebroker::fbbench
