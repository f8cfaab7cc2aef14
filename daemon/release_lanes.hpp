// ReleaseLanes: the broker's side of one connection's release lanes
// (framebroker/internal/release_lanes.hpp): the memfd, which subscription writes in which lane,
// and how far the broker has read each lane.
//
// The one owner of "subscriber N releases through lane L, epoch E". Everything it reads from the
// shared mapping comes from a process that may be hostile: head is read once per drain, checked
// against the broker's own tail, and each record is copied out before it is looked at. The memfd
// is sealed against shrinking, so the client cannot make a read here fault.
//
// Runs under the broker's state lock, on the socket thread or a committing camera thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "fanout.hpp"
#include "framebroker/internal/release_lanes.hpp"

namespace framebroker::daemon {

class ReleaseLanes {
 public:
  // Makes and maps the sealed memfd. Throws std::system_error.
  ReleaseLanes();
  ~ReleaseLanes();
  ReleaseLanes(const ReleaseLanes&) = delete;
  ReleaseLanes& operator=(const ReleaseLanes&) = delete;

  // The memfd, to pass to the client once; close_fd() after (the mapping stays).
  int fd() const { return fd_; }
  void close_fd();

  struct Assignment {
    uint32_t lane;  // from 1, as on the wire
    uint32_t epoch;
  };
  // The subscriber's lane (the one it has, or a free one with a new epoch); nullopt when every
  // lane is taken (it then releases over the socket).
  std::optional<Assignment> assign(uint64_t subscriber);
  // The subscriber is gone: its lane is free. Records it still writes there are stale and ignored.
  void unassign(uint64_t subscriber);
  bool has(uint64_t subscriber) const { return find(subscriber) != nullptr; }

  // Whether the client must send ReleasesWritten after writing to this subscriber's lane.
  void set_wake(uint64_t subscriber, bool wake);

  // Takes every record written to the subscriber's lane since the last drain. `release(frame)`
  // returns false when the subscriber does not hold that frame. Returns how many were released,
  // or, on a violation (head moved backwards or past the lane, a record of an epoch not yet
  // given, a frame not held), nullopt with the reason in `problem`; the lane is then dead.
  template <typename Release>
  std::optional<uint32_t> drain(uint64_t subscriber, Release&& release, std::string& problem);
  // The same for every lane ever assigned (a free lane's records are stale and skipped, but its
  // head must stay sane); `release(subscriber, frame)`.
  template <typename Release>
  std::optional<uint32_t> drain_all(Release&& release, std::string& problem);
  // A violation was found: nothing more is read (the broker disconnects the client).
  bool dead() const { return dead_; }

 private:
  struct Lane {
    uint64_t subscriber = 0;  // 0: free
    uint32_t epoch = 0;       // of the last assignment
    uint64_t tail = 0;        // the broker's own count of records taken
    bool wake = false;
  };
  Lane* find(uint64_t subscriber);
  const Lane* find(uint64_t subscriber) const;
  shm::ReleaseLane& shared(const Lane& l) { return layout_->lanes[&l - lanes_.data()]; }
  // Reads the lane's new records into the callback; see drain().
  template <typename Release>
  std::optional<uint32_t> take(Lane& l, Release&& release, std::string& problem);
  std::string where(const Lane& l) const;

  int fd_ = -1;
  shm::LanesLayout* layout_ = nullptr;
  std::array<Lane, shm::kLanes> lanes_{};
  bool dead_ = false;
};

template <typename Release>
std::optional<uint32_t> ReleaseLanes::take(Lane& l, Release&& release, std::string& problem) {
  if (dead_) return 0;
  auto& s = shared(l);
  // Published before head is read: a client that writes after this read sees wake and nudges.
  if (l.wake) s.wake.store(1, std::memory_order_seq_cst);
  const uint64_t head = s.head.load(std::memory_order_seq_cst);
  if (head == l.tail) return 0;
  if (head < l.tail || head - l.tail > shm::kLaneRecords) {
    problem = where(l) + ": head moved from " + std::to_string(l.tail) + " to " +
              std::to_string(head) + " (a lane holds " + std::to_string(shm::kLaneRecords) +
              " records)";
    dead_ = true;
    return std::nullopt;
  }
  uint32_t released = 0;
  for (; l.tail != head; ++l.tail) {
    shm::ReleaseRecord r;
    // A copy: the client may be rewriting the record while it is read.
    __builtin_memcpy(&r, &s.records[l.tail & (shm::kLaneRecords - 1)], sizeof r);
    if (r.epoch > l.epoch || r.epoch == 0) {
      problem = where(l) + ": a record of epoch " + std::to_string(r.epoch) +
                ", which was never given (the lane's is " + std::to_string(l.epoch) + ")";
      dead_ = true;
      return std::nullopt;
    }
    if (r.epoch < l.epoch || l.subscriber == 0) continue;  // of a subscription that ended
    if (!release(FrameRef{r.gen, r.slot, r.seq})) {
      problem = where(l) + ": released gen " + std::to_string(r.gen) + " slot " +
                std::to_string(r.slot) + " seq " + std::to_string(r.seq) +
                ", which this subscriber does not hold (double release or wrong slot/seq)";
      dead_ = true;
      return std::nullopt;
    }
    ++released;
  }
  s.tail.store(l.tail, std::memory_order_release);
  return released;
}

template <typename Release>
std::optional<uint32_t> ReleaseLanes::drain(uint64_t subscriber, Release&& release,
                                            std::string& problem) {
  Lane* l = find(subscriber);
  if (!l) return 0;
  return take(*l, release, problem);
}

template <typename Release>
std::optional<uint32_t> ReleaseLanes::drain_all(Release&& release, std::string& problem) {
  uint32_t total = 0;
  for (auto& l : lanes_) {
    if (l.epoch == 0) continue;  // never used
    const uint64_t sub = l.subscriber;
    const auto n = take(
        l, [&](const FrameRef& f) { return release(sub, f); }, problem);
    if (!n) return std::nullopt;
    total += *n;
  }
  return total;
}

}  // namespace framebroker::daemon
