// Stream: one camera, its shared-memory ring(s), and its subscribers.
//
// The camera thread is the producer: it loans slots, writes pixels, commits,
// and builds each frame's metadata once. Commits go into a lock-free queue.
// Draining that queue (publishing to the fanout and delivering) needs the
// broker's state lock. With share_state_lock() the committing camera thread
// tries that lock and, when it is free, drains and delivers itself: the frame
// reaches its subscribers with one wake-up (camera -> client) instead of two
// (camera -> socket thread -> client). When the lock is busy it never waits:
// it rings an eventfd (only when no drain is pending) and the socket thread
// drains after, batching what came meanwhile. Frames that come faster than
// 10,000/s take that path too: then the socket thread's batches, running in
// parallel with the camera, move more frames than one thread doing both. Everything except the
// FrameSink calls runs with the state lock held.
#pragma once

#include <flatbuffers/flatbuffers.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/lockfree/spsc_queue.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cameras/camera.hpp"
#include "fanout.hpp"
#include "framebroker/frame_meta_generated.h"
#include "framebroker/internal/segment.hpp"
#include "framebroker/sequence.hpp"
#include "latency_histogram.hpp"
#include "slot_ring.hpp"

namespace framebroker::daemon {

enum class Overflow { Drop, Block };
const char* to_string(Overflow o);

// The ring's size: ring_mb if set, else ring_ms of frames at the camera's FrameRate if set (at
// least kMinSlots, kMinSlots when the rate is 0 or unknown, at most ring_slot_cap()), else
// slots. Read again whenever a generation is made (at every start). Cameras of the broker's
// configuration get ring_ms = kDefaultRingMs unless they give slots or ring_mb (config.cpp).
struct StreamConfig {
  static constexpr uint32_t kMinSlots = 32;
  static constexpr uint32_t kDefaultRingMs = 1000;
  std::string name;
  uint32_t slots = kMinSlots;
  uint32_t ring_mb = 0;  // when set, slots = ring_mb / slot size
  uint32_t ring_ms = 0;  // when set (and ring_mb is not), slots = ring_ms of frames
  Overflow overflow = Overflow::Drop;
  std::chrono::milliseconds block_timeout{1000};
  bool lock_memory = false;
  int group = -1;             // owner group of the segments; -1: the broker's
  int realtime_priority = 0;  // SCHED_FIFO priority of the camera thread; 0: normal
};

// The most slots ring_ms may give a stream of `slot_bytes` slots: an eighth of the RAM, at most
// 16384 slots, at least kMinSlots.
uint32_t ring_slot_cap(uint64_t slot_bytes);
// Slots for ring_ms of frames at `fps` (0: unknown), within kMinSlots and ring_slot_cap().
uint32_t ring_slots_for_time(uint32_t ring_ms, double fps, uint64_t slot_bytes);

// One shared-memory segment and the ring that tracks its slots.
struct Generation {
  uint32_t gen = 0;
  std::unique_ptr<shm::Segment> segment;
  std::unique_ptr<SlotRing> ring;
  std::vector<std::vector<uint8_t>> meta;  // per slot; written by the producer while WRITING
  std::vector<uint64_t> commit_ns;         // per slot: CLOCK_MONOTONIC of its last commit
  boost::lockfree::spsc_queue<FrameRef> commits;

  Generation(uint32_t g, std::unique_ptr<shm::Segment> seg)
      : gen(g),
        segment(std::move(seg)),
        ring(std::make_unique<SlotRing>(segment->slots())),
        meta(segment->slots()),
        commit_ns(segment->slots()),
        commits(segment->slots() + 1) {}
  // Clients that still map it keep their mapping; the name goes at once.
  ~Generation() { shm::Segment::remove(segment->name()); }
};

class Stream : public cameras::FrameSink, private RefCounter {
 public:
  // on_frames is called on the socket thread after each drain that published.
  Stream(boost::asio::io_context& io, std::string instance, StreamConfig config,
         std::unique_ptr<cameras::Camera> camera, std::function<void(Stream&)> on_frames);
  ~Stream() override;

  const std::string& name() const { return config_.name; }
  const StreamConfig& config() const { return config_; }
  cameras::Camera& camera() { return *camera_; }
  Fanout& fanout() { return fanout_; }

  // Creates a new generation when the format outgrew the slots (camera idle).
  void ensure_generation();
  // A new generation whatever the format (a published name advertised again).
  void new_generation();
  // A published stream's frames are committed on the socket thread, which holds the state lock
  // and drains itself after each Commit batch: commit() neither locks nor rings the bell.
  void set_committed_on_socket_thread() { committed_on_socket_thread_ = true; }
  // Frames the producer had no slot for: each costs a seq, as a camera's drop does.
  void count_dropped(uint64_t frames);
  // A published stream whose producer went away; no frame comes after.
  bool ended() const { return ended_; }
  void set_ended(bool ended) { ended_ = ended; }
  // Ring size and policy for the next generation (a published name advertised again).
  void set_ring(uint32_t slots, Overflow overflow) {
    config_.slots = slots;
    config_.ring_mb = 0;
    config_.overflow = overflow;
  }
  void start(std::optional<uint64_t> frames);
  void stop();
  void snap();

  // Sequences (docs/sequences.md). The sequence starts at the next seq; a camera's must be idle
  // (its start follows). Queues SequenceStarted for every subscriber, after the frames before it.
  std::shared_ptr<const Sequence> begin_sequence(uint64_t id, SequenceSpec spec);
  // Ends the running sequence at the next seq: stopped early, or a publisher's end.
  void end_sequence();
  // Once every position of the running sequence is used and published, queues
  // SequenceFinished after its last frame. True if it did.
  bool finish_sequence_if_done();
  // The running sequence's SequenceStarted, for a late joiner; nullptr when none runs.
  Fanout::Message sequence_started() const { return running_ ? started_msg_ : nullptr; }
  struct SequenceProgress {
    std::shared_ptr<const Sequence> sequence;  // the running one, or the last; nullptr: none yet
    uint64_t positions = 0, frames = 0;
    int64_t last_position = -1;
    bool running = false, complete = false;
  };
  SequenceProgress sequence_progress() const;
  // The position a publisher's explicit index names in the running sequence, checked; throws
  // std::invalid_argument when no sequence runs or the index lies outside its axes.
  uint64_t position_of(std::span<const uint32_t> index) const;

  Generation* current() { return current_.get(); }
  Generation* generation(uint32_t gen);
  const std::vector<uint8_t>& meta_of(const FrameRef& f);
  // Drains pending commits into the fanout (normally via the posted wake-up).
  void drain();
  // Publishes at most `max` pending commits (a blocking published stream: no more than every
  // `every` subscriber has room for; the rest wait, READY and unpublished, in commit order).
  void drain_up_to(size_t max);
  size_t pending_commits() { return current_ ? current_->commits.read_available() : 0; }
  // Takes back what subscribers released through their release lanes and returns how many
  // frames came back. Called under the state lock at the start of every drain (so a commit
  // collects before it publishes: releases need not wake anyone), and by a camera thread that
  // finds no free slot. It must not drain this stream.
  void set_release_collector(std::function<uint32_t(Stream&)> collect) {
    collect_releases_ = std::move(collect);
  }
  // The lock that guards the fanout and everything on_frames touches: from now
  // on the camera thread drains itself when it can take it, and the bell's
  // drain takes it too.
  void share_state_lock(std::mutex& state) { state_ = &state; }

  // Why the last start failed ("" after a good start).
  const std::string& error() const { return error_; }
  uint64_t published() const { return published_.load(); }
  uint64_t dropped() const { return dropped_full_.load() + dropped_camera_.load(); }
  uint64_t dropped_full() const { return dropped_full_.load(); }
  uint64_t dropped_camera() const { return dropped_camera_.load(); }
  int64_t latest_seq() const;
  double fps() const { return fps_; }
  // Called once a second by the broker.
  void tick(double seconds);
  size_t retired_generations() const { return retired_.size(); }
  // Commit -> every client released the frame (its slot is free, or kept only as the latest
  // frame), since the camera last started (socket thread).
  const LatencyHistogram& recycle() const { return recycle_; }

  // FrameSink (producer thread).
  std::optional<cameras::Loan> loan(size_t bytes) override;
  void commit(const cameras::Loan& loan, const cameras::FrameInfo& info) override;
  void abort(const cameras::Loan& loan) override;
  void drop(std::string_view reason) override;
  std::optional<cameras::Loan> loan_ahead(size_t bytes) override;
  void drop_ring_full() override;

 private:
  void add_ref(const FrameRef& f) override;
  void drop_ref(const FrameRef& f) override;
  void build_meta(const cameras::Loan& loan, const cameras::FrameInfo& info, uint64_t seq,
                  uint64_t mono_ns);
  void retire_if_unreferenced(uint32_t gen);
  void wait_for_bell();
  // On the camera thread, when the ring is full: collects released frames if the state lock is
  // free this instant (never waits for it). True if any came back.
  bool collect_if_unlocked();
  uint32_t slot_count_for(uint64_t slot_bytes) const;

  std::string instance_;
  StreamConfig config_;
  std::unique_ptr<cameras::Camera> camera_;
  std::function<void(Stream&)> on_frames_;
  std::function<uint32_t(Stream&)> collect_releases_;

  std::unique_ptr<Generation> current_;
  std::map<uint32_t, std::unique_ptr<Generation>> retired_;  // still referenced
  Fanout fanout_;

  // Producer-side state.
  std::atomic<uint64_t> next_seq_{0};
  std::atomic<uint64_t> published_{0}, dropped_full_{0}, dropped_camera_{0};
  std::atomic<bool> drain_pending_{false};
  std::mutex* state_ = nullptr;
  // Frames closer than this (above 10,000 frames/s) go through the socket thread in batches.
  static constexpr uint64_t kInlineGapNs = 100'000;
  uint64_t last_inline_ns_ = 0;        // when the camera thread last delivered itself
  std::atomic<bool> snapping_{false};  // the producer is the socket thread itself
  bool committed_on_socket_thread_ = false;
  bool ended_ = false;
  int bell_fd_ = -1;  // eventfd: camera thread -> socket thread
  boost::asio::posix::stream_descriptor bell_;
  flatbuffers::FlatBufferBuilder meta_fbb_{1024};
  std::vector<flatbuffers::Offset<meta::Tag>> tag_offsets_;  // build_meta's, reused

  // The sequence; written on the socket thread while the camera is idle (or by a publisher's
  // socket-thread commits), read by build_meta.
  std::shared_ptr<const Sequence> sequence_;
  Fanout::Message started_msg_;
  uint64_t sequence_end_ = 0;  // first seq after it
  uint64_t sequence_frames_ = 0;
  std::atomic<int64_t> last_position_{-1};
  bool running_ = false, complete_ = false;

  LatencyHistogram recycle_;
  std::string error_;
  double fps_ = 0;
  uint64_t published_at_tick_ = 0;
};

}  // namespace framebroker::daemon
