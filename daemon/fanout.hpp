// Fanout: who gets which frame of one stream, and who holds what.
//
// Runs under the broker's state lock, with no sockets of its own: the broker
// asks it what to send (take_next) and tells it what came back (release).
// Every reference it takes or drops passes through take_ref/drop_ref, the
// only callers of RefCounter: a reference is taken when a frame is queued to
// a subscriber or becomes the latest cache, and dropped when that subscriber
// releases it or goes (drop_queue/drop_all), or when the cache moves on.
//
// Policies (docs/DESIGN.md, "Subscriber modes"):
//   every:  queued while held + queued < max_hold, else counted as missed.
//   latest: at most `window` in flight; when a hold is released the newest
//           frame is sent, and the frames skipped are counted as conflated.
//   from_latest: the cached newest frame is queued at subscribe time.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framebroker/internal/ring_queue.hpp"

namespace framebroker::daemon {

struct FrameRef {
  uint32_t gen = 0;
  uint32_t slot = 0;
  uint64_t seq = 0;
  bool operator==(const FrameRef&) const = default;
};

class RefCounter {
 public:
  virtual ~RefCounter() = default;
  virtual void add_ref(const FrameRef& f) = 0;
  virtual void drop_ref(const FrameRef& f) = 0;
};

enum class SubscriberMode { Every, Latest };

struct SubscriberOptions {
  SubscriberMode mode = SubscriberMode::Every;
  uint32_t max_hold = 0;  // 0 = default (slots - 4, at least 1)
  uint32_t window = 0;    // 0 = 1
  bool from_latest = false;
};

struct SubscriberCounters {
  uint64_t delivered = 0, missed = 0, conflated = 0;
  uint32_t held = 0, queued = 0;
  int64_t last_seq = -1;  // the last seq sent to it
};

struct Holder {
  uint64_t subscriber;
  bool queued;  // queued for it, not yet sent
};

enum class ReleaseResult { Ok, NotHeld };

class Fanout {
 public:
  using SubscriberId = uint64_t;

  Fanout(RefCounter& refs, uint32_t slots) : refs_(refs), slots_(slots) {}
  ~Fanout();

  // Slot count of the current generation: drives the default max_hold and
  // caps every subscriber's (a ring that shrank re-caps the existing ones).
  void set_slots(uint32_t slots);
  uint32_t default_max_hold() const { return slots_ > 5 ? slots_ - 4 : 1; }
  // One subscriber may hold at most slots - 2: the latest cache and the
  // camera's next frame always find a slot.
  uint32_t max_hold_cap() const { return slots_ > 3 ? slots_ - 2 : 1; }

  // Adds (or re-activates) a subscriber; returns the effective options.
  SubscriberOptions subscribe(SubscriberId id, SubscriberOptions options);
  // Stops delivery; queued frames are dropped, held ones stay until released.
  void unsubscribe(SubscriberId id);
  // Drops everything the subscriber queued or held (its client went away).
  void remove(SubscriberId id);
  bool has(SubscriberId id) const { return subs_.count(id) != 0; }
  bool active(SubscriberId id) const;

  // A committed frame: becomes the latest cache and is queued per policy.
  void publish(const FrameRef& frame);
  // Forgets the cached frame (e.g. the generation changed).
  void clear_latest();
  std::optional<FrameRef> latest() const { return latest_; }

  // A finished message (a sequence event) each active subscriber gets after every frame with a
  // seq below `before_seq` that is queued to it, and before any later one.
  using Message = std::shared_ptr<const std::vector<uint8_t>>;
  void queue_message(const Message& m, uint64_t before_seq);
  // The same for one subscriber (a late joiner's SequenceStarted: before_seq 0 puts it first).
  void queue_message_to(SubscriberId id, const Message& m, uint64_t before_seq);
  // The message now due for `id` (no frame queued ahead of it), or nullptr.
  Message take_message(SubscriberId id);
  bool has_messages(SubscriberId id) const;

  // Moves up to `limit` queued frames to held and returns them, in seq order.
  std::vector<FrameRef> take_sendable(SubscriberId id, size_t limit = SIZE_MAX);
  // The same for one frame, without allocating.
  std::optional<FrameRef> take_next(SubscriberId id);
  // Checks that `id` holds exactly this frame; if so drops the hold.
  ReleaseResult release(SubscriberId id, const FrameRef& frame);

  // How many more frames every active `every` subscriber can take before one of them would miss
  // one (UINT32_MAX when there is none): a blocking producer gets no more credit than this.
  uint32_t every_room() const;
  bool empty() const { return subs_.empty(); }

  SubscriberCounters counters(SubscriberId id) const;
  SubscriberOptions options(SubscriberId id) const;
  std::vector<SubscriberId> subscriber_ids() const;
  // The same into `out` (cleared first), so that a caller reusing it allocates nothing.
  void subscriber_ids(std::vector<SubscriberId>& out) const;
  // Subscribers holding or queued a slot, for inspection.
  std::vector<Holder> holders(uint32_t gen, uint32_t slot) const;
  // Total references this fanout holds on (gen, slot), cache included.
  uint32_t refs_on(uint32_t gen, uint32_t slot) const;

 private:
  // What one subscriber holds of one generation, indexed by slot (kNotHeld or the seq held
  // there; all kNotHeld when count is 0). A subscriber has one per generation it has held frames
  // of (two across a generation change); an emptied table is reused for the next generation.
  struct HoldTable {
    static constexpr uint64_t kNotHeld = UINT64_MAX;
    uint32_t gen = 0;
    uint32_t count = 0;  // slots held
    std::vector<uint64_t> seq;
    bool held(uint32_t slot) const { return slot < seq.size() && seq[slot] != kNotHeld; }
  };

  struct Subscriber {
    SubscriberOptions requested;  // as asked (0 = default)
    SubscriberOptions opt;        // in force for the current slot count
    bool active = true;
    // Oldest first. Its capacity (set at subscribe and set_slots to the ring's slot count, more
    // than a subscriber can have in flight) stays, so queuing a frame allocates nothing.
    internal::RingQueue<FrameRef> queue;
    std::deque<std::pair<uint64_t, Message>> messages;  // (before_seq, message)
    std::vector<HoldTable> tables;
    uint32_t held = 0;           // slots held, over all tables
    bool newer_pending = false;  // latest: a frame came while the window was full
    SubscriberCounters c;
    uint32_t in_flight() const { return uint32_t(held + queue.size()); }
    const HoldTable* table(uint32_t gen) const;
    HoldTable* table(uint32_t gen);
    bool held_slot(uint32_t gen, uint32_t slot) const;
    // The table for `gen`, made (or an empty one reused) for `slots` slots when there is none.
    HoldTable& table_for(uint32_t gen, uint32_t slots);
  };

  // Already held or queued by s (a frame is never queued to anyone twice).
  static bool holds(const Subscriber& s, const FrameRef& f);
  void enqueue(Subscriber& s, const FrameRef& f);
  SubscriberOptions effective(SubscriberOptions o) const;
  void offer(Subscriber& s, const FrameRef& f);
  void top_up_latest(Subscriber& s);
  void drop_queue(Subscriber& s);
  void drop_all(Subscriber& s);  // queued and held
  // The only two places that talk to RefCounter.
  void take_ref(const FrameRef& f);
  void drop_ref(const FrameRef& f);

  RefCounter& refs_;
  uint32_t slots_;
  std::map<SubscriberId, Subscriber> subs_;
  std::optional<FrameRef> latest_;
};

}  // namespace framebroker::daemon
