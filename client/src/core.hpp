// detail::Core: one connection to the broker, shared by the Client, its
// Subscriptions and every Frame they hand out (a Frame outlives nothing it
// points into).
//
// Threads: any thread may release frames. Reading the socket is serialized by
// read_mu_; sends by send_mu_. Releases are batched and flushed before the
// reader blocks, when a batch fills, or at once when another thread is
// blocked reading (so a release from a worker thread never waits).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "framebroker/error.hpp"
#include "framebroker/internal/ring_queue.hpp"
#include "framebroker/internal/segment.hpp"
#include "framebroker/internal/wire.hpp"
#include "framebroker/options.hpp"
#include "framebroker/sequence.hpp"
#include "framebroker/subscription.hpp"
#include "lane_writer.hpp"

namespace framebroker::detail {

class Core;

struct FrameHandle {
  std::shared_ptr<Core> core;
  std::shared_ptr<shm::Segment> segment;
  wire::Received message;  // keeps meta alive
  const meta::FrameMeta* meta = nullptr;
  std::string stream;
  uint32_t gen = 0, slot = 0;
  uint64_t seq = 0;
  std::span<const std::byte> pixels;
  std::shared_ptr<const Sequence> sequence;  // the one it belongs to, if announced
  uint32_t lane = 0, epoch = 0;              // its subscription's release lane (0: none)
  uint64_t session = 0;        // the connection it came over (Core::session_): an older one's
                               // release goes nowhere, its broker is gone
  bool after_restart = false;  // the first frame after a reconnect
};

class Core : public std::enable_shared_from_this<Core> {
 public:
  using Clock = std::chrono::steady_clock;

  static std::shared_ptr<Core> connect(const ConnectOptions& options);
  ~Core();

  // Sends a request and waits for the reply with the same request id.
  // Broker errors become Error(Refused/UnknownStream/...).
  wire::Received request(flatbuffers::FlatBufferBuilder& fbb, uint32_t request_id,
                         wire::Message expected, std::chrono::milliseconds timeout);
  uint32_t next_request_id() { return ++last_request_id_; }

  // False when the stream is already subscribed on this connection.
  bool add_subscription(const std::string& stream);
  // Asks the broker for a subscription of `stream` (added with add_subscription) and remembers
  // `options`: a reconnect subscribes again with them.
  StreamInfo subscribe(const std::string& stream, const SubscribeOptions& options);
  // The subscription as the broker last confirmed it (changes with a reconnect).
  StreamInfo stream_info(const std::string& stream);
  // The latest broker restart next_frame() passed for `stream`.
  std::optional<BrokerRestart> restart(const std::string& stream);
  void remove_subscription(const std::string& stream);
  // Pops a delivered frame of `stream`, reading the socket until `deadline`.
  std::optional<std::unique_ptr<FrameHandle>> next_frame(const std::string& stream,
                                                         Clock::time_point deadline);

  // Gives a frame back: through its subscription's release lane when it has one, else batched
  // over the socket. The handle goes back to the pool.
  void release(std::unique_ptr<FrameHandle> h);
  void release(const std::string& stream, uint32_t gen, uint32_t slot, uint64_t seq);
  void flush_releases();
  // Busy-polls for up to `spin` before next() on `stream` sleeps on the socket.
  void set_spin(const std::string& stream, std::chrono::microseconds spin);
  // How many frames of `stream` the broker lets this client have in flight (max_hold, or a
  // latest subscriber's window): releases never wait for a batch the broker would stall on.
  void set_release_budget(const std::string& stream, uint32_t frames);
  std::vector<std::string> take_async_errors();

  // Publishing (a Publisher has a Core of its own).
  void send(const flatbuffers::FlatBufferBuilder& fbb);
  // The fd the broker passed with its last message that carried one (-1: none); the caller
  // owns it.
  int take_passed_fd();
  // The next slot the broker lent for `stream` as {gen, slot}, reading the socket until
  // `deadline`; nullopt when none came.
  std::optional<std::pair<uint32_t, uint32_t>> next_loan(const std::string& stream,
                                                         Clock::time_point deadline);
  // The mapping of `stream`'s newest generation this connection knows (at least `gen`).
  std::shared_ptr<shm::Segment> mapped_segment(const std::string& stream, uint32_t gen);
  // True once the broker said `stream` ended and every frame before that was taken.
  bool ended(const std::string& stream);
  // The sequence of `stream` as of what next_frame() last returned, and how it finished (once
  // next_frame() passed its SequenceFinished).
  std::shared_ptr<const Sequence> sequence(const std::string& stream);
  std::optional<SequenceEnd> sequence_end(const std::string& stream);

  int fd() const { return fd_; }
  const std::string& socket_path() const { return socket_path_; }
  const std::string& instance() const { return instance_; }
  const std::string& broker_version() const { return broker_version_; }

 private:
  // A frame, or a sequence event in its place among them.
  struct Item {
    std::unique_ptr<FrameHandle> frame;
    std::shared_ptr<const Sequence> started;
    std::optional<SequenceEnd> finished;
    std::optional<BrokerRestart> restarted;  // subscribed again to a new broker
  };
  struct Pending {
    internal::RingQueue<Item> items;
    uint32_t lane = 0, epoch = 0;  // from Subscribed
    std::chrono::microseconds spin{0};
    std::shared_ptr<const Sequence> announced;  // the last SequenceStarted read off the socket
    std::shared_ptr<const Sequence> sequence;   // as of the last item taken
    std::optional<SequenceEnd> sequence_end;
    bool ended = false;  // EndOfStream came: no frame follows those queued
    std::map<uint32_t, std::shared_ptr<shm::Segment>> segments;  // by gen
    // Reconnecting (ConnectOptions::reconnect).
    SubscribeOptions options;              // as subscribed: a reconnect asks again with them
    StreamInfo info;                       // as the broker last confirmed it
    bool resubscribing = false;            // its next Subscribed queues a restart item
    uint32_t restarts = 0;                 // restart items queued so far
    std::string restart_reason;            // why the connection ended, for that item
    Clock::time_point lost_at;             // when it ended
    bool had_frame = false;                // next_frame() returned a frame of the current broker
    uint64_t last_seq = 0;                 // of the last frame next_frame() returned
    bool mark_next = false;                // the next frame returned is the first after a restart
    std::optional<BrokerRestart> restart;  // the latest restart passed
  };

  Core(int fd, std::string socket_path) : fd_(fd), socket_path_(std::move(socket_path)) {}
  // Says Hello on the current connection; takes the release lanes the broker passes.
  void hello();
  // With options_.reconnect, after the connection ended: connects again (waiting out the
  // back-off, until `deadline`), says Hello and subscribes every stream again. False when
  // `deadline` came first; throws Error(BrokerLost) once options_.reconnect_give_up passed.
  bool reconnect(Clock::time_point deadline);
  // One try: a new socket replaces the dead one, then Hello and the subscriptions. Throws.
  void reconnect_once();
  void send_bytes(std::span<const uint8_t> bytes);
  // recv() that also takes an fd passed with SCM_RIGHTS.
  ssize_t receive(std::span<uint8_t> into);
  // Reads one batch from the socket, waiting until deadline. Returns at once
  // when another thread dispatched something since the caller looked
  // (`seen` is the dispatch count the caller saw under state_mu_).
  // With `spin`, busy-polls for that long first (watching `ring`'s publish counter).
  void pump(Clock::time_point deadline, uint64_t seen,
            std::chrono::microseconds spin = std::chrono::microseconds(0),
            const shm::Segment* ring = nullptr);
  // poll() for the socket until `until`; true when it is readable (or closed).
  bool wait_readable(Clock::time_point until);
  // Takes the messages in the `n` bytes just received (n <= 0: the connection ended).
  void dispatch_batch(ssize_t n);
  // Busy-polls the socket (and the ring's publish counter, which moves first) until data
  // arrives or `until`; true when there is something to read.
  bool spin_until_readable(const shm::Segment* ring, Clock::time_point until);
  std::unique_ptr<FrameHandle> new_handle();
  // Queues a socket Release (the fallback of the lanes); the caller holds release_mu_.
  void queue_release(std::string_view stream, uint32_t gen, uint32_t slot, uint64_t seq);
  bool releases_pending();
  void dispatch(const wire::Received& msg);
  void on_deliver(const wire::Received& msg);
  void on_sequence(const wire::Envelope& env);
  std::shared_ptr<shm::Segment> segment_for(Pending& p, const std::string& stream, uint32_t gen);
  [[noreturn]] void throw_lost() const;

  int fd_;
  std::string socket_path_, instance_, broker_version_;
  ConnectOptions options_;

  // Reconnecting; reconnect_mu_ guards what follows it (session_ changes under every mutex
  // below as well, so any of them is enough to read it).
  std::mutex reconnect_mu_;
  uint64_t session_ = 0;  // connections made after the first
  bool outage_ = false;   // lost_at_ and the back-off are set for the current loss
  Clock::time_point lost_at_, next_attempt_;
  Clock::duration backoff_{};
  std::string lost_why_, last_try_error_;
  std::atomic<uint32_t> last_request_id_{0};

  std::mutex send_mu_;
  std::mutex read_mu_;  // one reader at a time; guards reader_ and last_wait_
  wire::FrameReader reader_;
  Clock::duration last_wait_ = Clock::duration::max();  // of the last pump, for data to come

  std::mutex state_mu_;  // guards everything below
  std::map<std::string, Pending, std::less<>> pending_;
  std::map<uint32_t, wire::Received> replies_;
  std::vector<std::string> async_errors_;
  std::map<std::string, internal::RingQueue<std::pair<uint32_t, uint32_t>>> loans_;  // by stream
  int passed_fd_ = -1;
  uint64_t dispatched_ = 0;  // batches read so far
  bool lost_ = false;
  std::string lost_reason_;

  std::mutex release_mu_;  // guards lanes_ writes, releases_, release_count_, nudge_, handles_
  std::unique_ptr<LaneWriter> lanes_;
  std::vector<std::unique_ptr<FrameHandle>> handles_;  // returned handles, reused
  static constexpr size_t kPooledHandles = 1024;
  // Socket releases waiting to go, by stream. Entries and their capacity stay (flush empties the
  // vectors), so a release allocates nothing once each stream has been seen.
  std::map<std::string, std::vector<wire::SlotRef>, std::less<>> releases_;
  size_t release_count_ = 0;  // socket releases waiting, plus 1 for a nudge
  bool nudge_ = false;        // a ReleasesWritten is owed
  std::mutex flush_mu_;       // one flush at a time; guards what follows
  std::map<std::string, std::vector<wire::SlotRef>, std::less<>> flushing_;
  flatbuffers::FlatBufferBuilder release_fbb_{1024};
  std::vector<uint8_t> nudge_message_;               // ReleasesWritten, built once
  std::map<std::string, uint32_t> release_budgets_;  // by stream
  static constexpr size_t kReleaseBatch = 32;
  std::atomic<size_t> release_batch_{kReleaseBatch};  // flush at this many pending releases
  std::atomic<bool> reader_waiting_{false};
  // Frames this connection may have in flight, summed over its subscriptions: the receive
  // buffers and frame handles are made for that many up front (pump prepares the reader).
  std::atomic<size_t> in_flight_budget_{0};
  size_t reader_prepared_ = 0;          // guarded by read_mu_
  std::atomic<bool> gave_back_{false};  // on_deliver gave frames of a closed subscription back
};

}  // namespace framebroker::detail
