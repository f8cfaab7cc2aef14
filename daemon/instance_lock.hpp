// One broker per instance: an flock on <runtime_dir>/<instance>.lock that
// holds the owner's pid. Whoever holds it may clear the instance's leftovers
// (a stale socket, /dev/shm/fb.<instance>.* segments of a killed broker).
// Segment names are global while runtime directories are not (systemd's and a
// user's), so a second flock on /dev/shm/fb.<instance>.lock keeps two brokers
// of one instance name from replacing each other's segments.
#pragma once

#include <string>

namespace framebroker::daemon {

class InstanceLock {
 public:
  // Throws std::runtime_error naming the pid of the broker that holds it.
  InstanceLock(const std::string& runtime_dir, const std::string& instance);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  int shm_fd_ = -1;
};

// /dev/shm/fb.<instance>.lock
std::string shm_lock_path(const std::string& instance);

// Removes the socket file and every segment of the instance; returns how many
// segments it removed. Only call it while holding the InstanceLock.
int remove_stale_state(const std::string& instance, const std::string& socket_path);

}  // namespace framebroker::daemon
