// LaneWriter: the client's side of its release lanes (framebroker/internal/release_lanes.hpp).
// Callers serialize write(): a lane has one producer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "framebroker/internal/release_lanes.hpp"

namespace framebroker::detail {

class LaneWriter {
 public:
  // Maps the memfd the broker passed with Welcome and checks its header; takes the fd (closed
  // here either way). Throws std::runtime_error saying what is wrong.
  explicit LaneWriter(int fd);
  ~LaneWriter();
  LaneWriter(const LaneWriter&) = delete;
  LaneWriter& operator=(const LaneWriter&) = delete;

  enum class Result {
    Written,       // the broker collects it on its own schedule
    WrittenNudge,  // written; send ReleasesWritten (the broker asked, or the lane fills up)
    Full,          // not written: release over the socket
  };
  // `lane` counts from 1, as Subscribed gives it.
  Result write(uint32_t lane, uint32_t epoch, uint32_t gen, uint32_t slot, uint64_t seq);

 private:
  shm::LanesLayout* layout_ = nullptr;
  uint64_t heads_[shm::kLanes] = {};  // our own count: the broker never moves head
};

}  // namespace framebroker::detail
