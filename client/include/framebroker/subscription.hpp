// framebroker::Subscription: frames of one stream, in the mode chosen at
// subscribe time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "framebroker/frame.hpp"
#include "framebroker/options.hpp"
#include "framebroker/sequence.hpp"

namespace framebroker {

namespace detail {
class Core;
}

// A read-only view of a whole mapped segment; `owner` keeps the mapping.
struct MappedRing {
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;
};

struct StreamInfo {
  std::string stream;
  std::string segment;
  uint32_t gen = 0;
  uint32_t slots = 0;
  uint64_t slot_bytes = 0;
  Mode mode = Mode::Every;
  uint32_t max_hold = 0;
  uint32_t window = 0;
};

// What Subscription::restart() tells after the library reconnected to a restarted broker
// (ConnectOptions::reconnect). The new broker numbers its frames afresh: seqs start again, so
// first_seq_after may be lower than last_seq_before.
struct BrokerRestart {
  uint32_t count = 0;                   // restarts this subscription went through so far
  bool had_frame = false;               // next() returned a frame of the old broker
  uint64_t last_seq_before = 0;         // the last seq next() returned from the old broker
  uint64_t first_seq_after = 0;         // the first seq from the new one (set with that frame)
  std::chrono::milliseconds outage{0};  // from losing the broker to subscribed again
  std::string reason;                   // why the old connection ended
};

class Subscription {
 public:
  Subscription(std::shared_ptr<detail::Core> core, StreamInfo info);
  Subscription(Subscription&&) noexcept = default;
  Subscription& operator=(Subscription&&) noexcept = default;
  ~Subscription();  // unsubscribes; frames still held stay valid

  // The next frame, or nullopt when none came within `timeout`, the stream has ended, or a
  // sequence just finished (sequence_end() then says how). Throws Error(BrokerLost) once the
  // broker is gone and no frame is left, unless ConnectOptions::reconnect: then it connects
  // again while the caller waits (nullopt while the broker is away) and goes on with the new
  // broker's frames.
  std::optional<Frame> next(std::chrono::milliseconds timeout);
  // The stream's acquisition sequence as of the frames next() has returned: set when its
  // SequenceStarted passes (before its first frame, or first of all for a late joiner); nullptr
  // before any. sequence_end() is set once its SequenceFinished passed, until the next starts.
  std::shared_ptr<const Sequence> sequence() const;
  std::optional<SequenceEnd> sequence_end() const;
  // True once a published stream's producer went away and every frame it made was taken: no
  // frame will follow (frames still held stay readable).
  bool ended() const;
  // With ConnectOptions::reconnect: the latest broker restart this subscription went through
  // (set when next() passes it, just before the first frame of the new broker, which has
  // Frame::after_restart()); nullopt before any. info() then describes the new subscription.
  std::optional<BrokerRestart> restart() const;

  const StreamInfo& info() const { return info_; }
  // The stream's shared-memory segment as this process maps it (every Frame's pixels lie in
  // it): for introspection, and to prove that frames are not copies.
  MappedRing ring() const;
  // The connection's socket, for an event loop (poll, asyncio, QSocketNotifier): it turns
  // readable when the broker sent something. Take frames with next(0) until it returns
  // nothing before waiting on it again (frames already read stay queued inside the library).
  // After a reconnect it is another fd: look it up again after a frame with after_restart().
  int fileno() const;

 private:
  std::shared_ptr<detail::Core> core_;
  StreamInfo info_;
};

}  // namespace framebroker
