#include "slot_ring.hpp"

#include <stdexcept>

namespace framebroker::daemon {

const char* to_string(SlotState s) {
  switch (s) {
    case SlotState::Free:
      return "free";
    case SlotState::Writing:
      return "writing";
    case SlotState::Ready:
      return "ready";
  }
  return "?";
}

SlotRing::SlotRing(uint32_t slots) : states_(slots), refs_(slots, 0), free_(slots + 1) {
  if (slots == 0) throw std::invalid_argument("a ring needs at least one slot");
  for (uint32_t i = 0; i < slots; ++i) {
    states_[i].store(SlotState::Free, std::memory_order_relaxed);
    free_.push(i);
  }
}

std::optional<uint32_t> SlotRing::loan() {
  uint32_t slot;
  if (spare_) {
    slot = *spare_;
    spare_.reset();
  } else if (!free_.pop(slot)) {
    return std::nullopt;
  }
  states_[slot].store(SlotState::Writing, std::memory_order_release);
  return slot;
}

std::optional<uint32_t> SlotRing::loan_wait(std::chrono::milliseconds timeout) {
  if (auto s = loan()) return s;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(wait_mu_);
  producer_waiting_.store(true);
  // Pairs with the fence in make_free: either we see its slot, or it sees us waiting.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (;;) {
    if (auto s = loan()) {
      producer_waiting_.store(false);
      return s;
    }
    if (interrupted_.load() || wait_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      producer_waiting_.store(false);
      return loan();
    }
  }
}

void SlotRing::interrupt_waits() {
  {
    std::lock_guard lock(wait_mu_);
    interrupted_.store(true);
  }
  wait_cv_.notify_all();
}

void SlotRing::commit(uint32_t slot) {
  states_[slot].store(SlotState::Ready, std::memory_order_release);
}

void SlotRing::abort(uint32_t slot) {
  states_[slot].store(SlotState::Free, std::memory_order_release);
  spare_ = slot;
}

void SlotRing::add_ref(uint32_t slot) {
  if (state(slot) != SlotState::Ready)
    throw std::logic_error("add_ref on a slot that is not READY");
  ++refs_[slot];
}

bool SlotRing::drop_ref(uint32_t slot) {
  if (refs_[slot] == 0) throw std::logic_error("drop_ref on an unreferenced slot");
  if (--refs_[slot] > 0) return false;
  make_free(slot);
  return true;
}

void SlotRing::free_if_unreferenced(uint32_t slot) {
  if (refs_[slot] == 0 && state(slot) == SlotState::Ready) make_free(slot);
}

bool SlotRing::unreferenced() const {
  for (uint32_t r : refs_)
    if (r) return false;
  return true;
}

void SlotRing::make_free(uint32_t slot) {
  states_[slot].store(SlotState::Free, std::memory_order_release);
  free_.push(slot);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (producer_waiting_.load()) {
    std::lock_guard lock(wait_mu_);
    wait_cv_.notify_one();
  }
}

SlotCounts SlotRing::counts() const {
  SlotCounts c;
  for (const auto& s : states_) {
    switch (s.load(std::memory_order_acquire)) {
      case SlotState::Free:
        ++c.free;
        break;
      case SlotState::Writing:
        ++c.writing;
        break;
      case SlotState::Ready:
        ++c.ready;
        break;
    }
  }
  return c;
}

}  // namespace framebroker::daemon
