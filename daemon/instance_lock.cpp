#include "instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "framebroker/internal/segment.hpp"

namespace framebroker::daemon {

namespace fs = std::filesystem;

namespace {

// Takes an exclusive flock on path; on failure returns -1 and the holder's pid text.
int lock_file(const std::string& path, std::string& holder) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    const std::string pid = std::to_string(getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0)
      throw std::runtime_error("cannot write " + path + ": " + strerror(errno));
    return fd;
  }
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  holder = n > 0 ? std::string(buf, size_t(n)) : "unknown";
  holder = holder.substr(0, holder.find('\n'));
  return -1;
}

}  // namespace

std::string shm_lock_path(const std::string& instance) {
  return "/dev/shm/" + shm::instance_segment_prefix(instance) + "lock";
}

InstanceLock::InstanceLock(const std::string& runtime_dir, const std::string& instance)
    : path_(runtime_dir + "/" + instance + ".lock") {
  std::error_code ec;
  fs::create_directories(runtime_dir, ec);
  if (ec)
    throw std::runtime_error("cannot create runtime directory " + runtime_dir + ": " +
                             ec.message());
  std::string holder;
  fd_ = lock_file(path_, holder);
  if (fd_ < 0)
    throw std::runtime_error("another framebrokerd (pid " + holder + ") already serves instance '" +
                             instance + "' (lock " + path_ +
                             "); stop it first or pick another --instance");
  shm_fd_ = lock_file(shm_lock_path(instance), holder);
  if (shm_fd_ < 0) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("another framebrokerd (pid " + holder + ") serves instance '" +
                             instance + "' from another runtime directory (lock " +
                             shm_lock_path(instance) +
                             "); its shared memory has the same names: pick another --instance");
  }
}

InstanceLock::~InstanceLock() {
  // The file stays: unlinking it would let a newcomer lock a fresh inode
  // while another waits on this one.
  if (fd_ >= 0) ::close(fd_);
  if (shm_fd_ >= 0) ::close(shm_fd_);
}

int remove_stale_state(const std::string& instance, const std::string& socket_path) {
  ::unlink(socket_path.c_str());
  int removed = 0;
  const std::string prefix = shm::instance_segment_prefix(instance);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/dev/shm", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || "/dev/shm/" + name == shm_lock_path(instance)) continue;
    if (shm::Segment::remove("/" + name)) ++removed;
  }
  return removed;
}

}  // namespace framebroker::daemon
