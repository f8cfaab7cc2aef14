#include "lane_writer.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace framebroker::detail {

LaneWriter::LaneWriter(int fd) {
  struct stat st {};
  std::string problem;
  const auto& want = shm::kLanesMagic;
  if (::fstat(fd, &st) != 0) {
    problem = std::string("fstat: ") + std::strerror(errno);
  } else if (uint64_t(st.st_size) < sizeof(shm::LanesLayout)) {
    problem = "it has " + std::to_string(st.st_size) + " bytes, not " +
              std::to_string(sizeof(shm::LanesLayout));
  } else {
    void* p = ::mmap(nullptr, sizeof(shm::LanesLayout), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      problem = std::string("mmap: ") + std::strerror(errno);
    } else {
      layout_ = static_cast<shm::LanesLayout*>(p);
      const auto& h = layout_->header;
      if (std::memcmp(h.magic, want, sizeof want) != 0 || h.version != shm::kLanesVersion ||
          h.lanes != shm::kLanes || h.records != shm::kLaneRecords ||
          h.lane_bytes != sizeof(shm::ReleaseLane))
        problem = "its header does not match this library's layout (version " +
                  std::to_string(shm::kLanesVersion) + ")";
      else
        for (uint32_t i = 0; i < shm::kLanes; ++i) heads_[i] = layout_->lanes[i].head.load();
    }
  }
  ::close(fd);
  if (!problem.empty()) {
    if (layout_) ::munmap(layout_, sizeof(shm::LanesLayout));
    layout_ = nullptr;
    throw std::runtime_error("the broker's release lanes cannot be used: " + problem);
  }
}

LaneWriter::~LaneWriter() {
  if (layout_) ::munmap(layout_, sizeof(shm::LanesLayout));
}

LaneWriter::Result LaneWriter::write(uint32_t lane, uint32_t epoch, uint32_t gen, uint32_t slot,
                                     uint64_t seq) {
  if (lane == 0 || lane > shm::kLanes) return Result::Full;
  auto& l = layout_->lanes[lane - 1];
  uint64_t& head = heads_[lane - 1];
  const uint64_t tail = l.tail.load(std::memory_order_acquire);
  if (head - tail >= shm::kLaneRecords) return Result::Full;
  l.records[head & (shm::kLaneRecords - 1)] = {seq, gen, slot, epoch, 0};
  ++head;
  // seq_cst, and before wake is read: either the broker's drain sees this record, or we see
  // the wake flag it set before reading head (release_lanes.hpp).
  l.head.store(head, std::memory_order_seq_cst);
  const bool asked = l.wake.load(std::memory_order_seq_cst) != 0 && l.wake.exchange(0) != 0;
  const bool filling = head - tail >= shm::kLaneRecords / 2;
  return asked || filling ? Result::WrittenNudge : Result::Written;
}

}  // namespace framebroker::detail
