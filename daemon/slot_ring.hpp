// SlotRing: the state of every slot of one ring, and the reference counts
// that decide when a slot may be written again.
//
//   FREE --loan--> WRITING --commit--> READY(refs) --last drop_ref--> FREE
//                     \------abort------------------------------------^
//
// Two threads use it: the producer (camera thread) calls loan/commit/abort;
// the consumer (the broker's socket thread) calls add_ref/drop_ref. Free slots
// travel consumer -> producer through a lock-free SPSC queue, so the producer
// never takes a lock. States are atomics so that either side may count them;
// reference counts belong to the consumer alone and live in broker memory,
// never in shared memory a client could scribble on.
#pragma once

#include <boost/lockfree/spsc_queue.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace framebroker::daemon {

enum class SlotState : uint8_t { Free, Writing, Ready };
const char* to_string(SlotState s);

struct SlotCounts {
  uint32_t free = 0, writing = 0, ready = 0;
};

class SlotRing {
 public:
  explicit SlotRing(uint32_t slots);

  uint32_t size() const { return uint32_t(states_.size()); }

  // --- producer thread ---
  std::optional<uint32_t> loan();
  // Waits up to `timeout` for a free slot (overflow policy `block`); returns
  // at once while interrupted (see interrupt_waits).
  std::optional<uint32_t> loan_wait(std::chrono::milliseconds timeout);
  void commit(uint32_t slot);
  void abort(uint32_t slot);

  // --- consumer thread ---
  void add_ref(uint32_t slot);
  // Returns true when this was the last reference and the slot is FREE again.
  bool drop_ref(uint32_t slot);
  // A READY slot that nobody referenced goes straight back.
  void free_if_unreferenced(uint32_t slot);
  uint32_t refs(uint32_t slot) const { return refs_[slot]; }
  bool unreferenced() const;  // no slot holds a reference

  // --- either thread ---
  SlotState state(uint32_t slot) const { return states_[slot].load(std::memory_order_acquire); }
  SlotCounts counts() const;
  // Wakes a producer blocked in loan_wait, and keeps later waits from
  // sleeping until resume_waits() (used by stop() and start()).
  void interrupt_waits();
  void resume_waits() { interrupted_.store(false); }

 private:
  void make_free(uint32_t slot);

  std::vector<std::atomic<SlotState>> states_;
  std::vector<uint32_t> refs_;
  boost::lockfree::spsc_queue<uint32_t> free_;  // consumer pushes, producer pops
  std::optional<uint32_t> spare_;               // producer-local: aborted loans

  std::atomic<bool> producer_waiting_{false};
  std::atomic<bool> interrupted_{false};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
};

}  // namespace framebroker::daemon
