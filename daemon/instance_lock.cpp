#include "instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "segment.hpp"

namespace framebroker::daemon {

namespace fs = std::filesystem;

InstanceLock::InstanceLock(const std::string& runtime_dir, const std::string& instance)
    : path_(runtime_dir + "/" + instance + ".lock") {
  std::error_code ec;
  fs::create_directories(runtime_dir, ec);
  if (ec)
    throw std::runtime_error("cannot create runtime directory " + runtime_dir + ": " +
                             ec.message());
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open " + path_ + ": " + strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    const std::string pid = n > 0 ? std::string(buf, size_t(n)) : "unknown";
    throw std::runtime_error("another framebrokerd (pid " + pid.substr(0, pid.find('\n')) +
                             ") already serves instance '" + instance + "' (lock " + path_ +
                             "); stop it first or pick another --instance");
  }
  const std::string pid = std::to_string(getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0)
    throw std::runtime_error("cannot write " + path_ + ": " + strerror(errno));
}

InstanceLock::~InstanceLock() {
  // The file stays: unlinking it would let a newcomer lock a fresh inode
  // while another waits on this one.
  if (fd_ >= 0) ::close(fd_);
}

int remove_stale_state(const std::string& instance, const std::string& socket_path) {
  ::unlink(socket_path.c_str());
  int removed = 0;
  const std::string prefix = shm::instance_segment_prefix(instance);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/dev/shm", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && shm::Segment::remove("/" + name)) ++removed;
  }
  return removed;
}

}  // namespace framebroker::daemon
