#include "release_lanes.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <system_error>

namespace framebroker::daemon {

namespace {

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

ReleaseLanes::ReleaseLanes() {
  fd_ = ::memfd_create("framebroker-release-lanes", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd_ < 0) fail("memfd_create (release lanes)");
  const size_t bytes = sizeof(shm::LanesLayout);
  // Sealed before anyone else has the fd: a client cannot shrink it under the broker's mapping
  // (a SIGBUS here) nor grow it.
  if (::ftruncate(fd_, off_t(bytes)) != 0 ||
      ::fcntl(fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    const int err = errno;
    ::close(fd_);
    errno = err;
    fail("sizing the release lanes");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd_);
    errno = err;
    fail("mmap (release lanes)");
  }
  layout_ = new (p) shm::LanesLayout{};
  std::memcpy(layout_->header.magic, shm::kLanesMagic, sizeof shm::kLanesMagic);
  layout_->header.version = shm::kLanesVersion;
  layout_->header.lanes = shm::kLanes;
  layout_->header.records = shm::kLaneRecords;
  layout_->header.lane_bytes = sizeof(shm::ReleaseLane);
}

ReleaseLanes::~ReleaseLanes() {
  close_fd();
  ::munmap(layout_, sizeof(shm::LanesLayout));
}

void ReleaseLanes::close_fd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

ReleaseLanes::Lane* ReleaseLanes::find(uint64_t subscriber) {
  for (auto& l : lanes_)
    if (l.subscriber == subscriber) return &l;
  return nullptr;
}

const ReleaseLanes::Lane* ReleaseLanes::find(uint64_t subscriber) const {
  for (const auto& l : lanes_)
    if (l.subscriber == subscriber) return &l;
  return nullptr;
}

std::optional<ReleaseLanes::Assignment> ReleaseLanes::assign(uint64_t subscriber) {
  Lane* l = find(subscriber);
  if (!l) {
    l = find(0);
    if (!l) return std::nullopt;
    l->subscriber = subscriber;
    ++l->epoch;
    l->wake = false;
    shared(*l).wake.store(0);
  }
  return Assignment{uint32_t(l - lanes_.data()) + 1, l->epoch};
}

void ReleaseLanes::unassign(uint64_t subscriber) {
  if (Lane* l = find(subscriber)) l->subscriber = 0;
}

void ReleaseLanes::set_wake(uint64_t subscriber, bool wake) {
  Lane* l = find(subscriber);
  if (!l || l->wake == wake) return;
  l->wake = wake;
  shared(*l).wake.store(wake ? 1 : 0, std::memory_order_seq_cst);
}

std::string ReleaseLanes::where(const Lane& l) const {
  return "release lane " + std::to_string(&l - lanes_.data() + 1);
}

}  // namespace framebroker::daemon
