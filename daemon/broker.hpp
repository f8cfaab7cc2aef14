// Broker: the socket thread. It accepts clients, answers their requests,
// routes each stream's frames to its subscribers, and takes every hold of a
// client back the moment its socket closes.
//
// One lock, state_, guards all of it: the socket thread holds it in every
// handler, and a camera thread holds it while it delivers its own frames (see
// stream.hpp). Code outside the event loop's handlers (setup, signals, the
// service heartbeat) takes it with lock_state() before calling in.
#pragma once

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "stream.hpp"
#include "subscriptions.hpp"

namespace framebroker::daemon {

class Broker : private MessageHandler {
 public:
  Broker(boost::asio::io_context& io, std::string instance, std::string socket_path);
  ~Broker() override;

  std::unique_lock<std::mutex> lock_state() { return std::unique_lock(state_); }

  // Takes ownership of a camera and serves it as a stream of the same name.
  Stream& add_stream(StreamConfig config, std::unique_ptr<cameras::Camera> camera);
  // Starts accepting on a new socket at the socket path (which must not exist), mode 0660,
  // owned by `group` unless it is -1.
  void listen(int group = -1);
  // Starts accepting on a listening socket systemd passed in (socket activation). Its file
  // belongs to systemd and stays at shutdown.
  void listen_on(int fd);
  const std::string& socket_path() const { return socket_path_; }
  // Serves a socket already connected to a client, as if accepted (the fuzz target drives the
  // broker through a socketpair this way).
  void adopt(Connection::Socket socket);
  // Limits camera control (set, start, stop, snap) to members of group `gid` (-1: anyone who can
  // connect). Root and the broker's own user are always allowed. `name` is for the messages.
  void set_control_group(int gid, std::string name);
  // One line for systemd's STATUS=: streams, frames per second, clients.
  std::string summary() const;
  // Stops cameras, tells clients, closes everything.
  void shutdown();

  // Limits publishing to members of group `gid` (-1: anyone who can connect), and the ring a
  // client may ask for to `max_ring_bytes` (0: a quarter of the machine's memory).
  // Published streams' segments belong to `segment_group` (-1: the broker's), as cameras' do.
  void set_publish_limits(int gid, std::string group, uint64_t max_ring_bytes, int segment_group);

  // What one client may take: refusals are LimitReached errors that name the config key.
  struct ClientLimits {
    size_t clients = 256;                                  // max_clients
    size_t subscriptions = 64;                             // max_subscriptions (per client)
    size_t queued_bytes = Connection::kDefaultQueueLimit;  // max_queued_mb (per client)
  };
  void set_client_limits(const ClientLimits& limits) { limits_ = limits; }

  // Stops the camera and drops the stream; its subscribers are told and lose their
  // subscriptions (frames they hold stay mapped on their side). False if there is none.
  bool remove_stream(const std::string& name);
  Stream* find_stream(std::string_view name);

 private:
  // How a subscription ends. Unsubscribed: frames the client holds stay held until it releases
  // them. Disconnected and StreamGone: every hold goes back at once.
  enum class Ending { Unsubscribed, Disconnected, StreamGone };

  void accept();
  void tick();

  // MessageHandler
  void on_message(Connection& c, const wire::Received& msg) override;
  void on_writable(Connection& c) override;
  void on_closed(Connection& c) override;

  void on_hello(Connection& c, uint32_t rid, const wire::Hello& m);
  void on_subscribe(Connection& c, uint32_t rid, const wire::Subscribe& m);
  void on_unsubscribe(Connection& c, const wire::Unsubscribe& m);
  void on_release(Connection& c, const wire::Release& m);
  // What follows frames coming back to subscriber `sub` of `s` on the socket thread: it may have
  // settled, be owed frames, have reached the end of an ended stream, and producers may be lent
  // the freed slots.
  void after_release(Connection& c, Stream& s, Subscriptions::Id sub);

  // Release lanes (docs/DESIGN.md, "Release lanes").
  // Takes what `c` wrote to its lanes; the socket thread calls it before each message of `c`.
  void drain_lanes(Connection& c);
  void drain_all_lanes();
  // The stream's collector (Stream::set_release_collector): its subscribers' lanes, from the
  // committing thread. Only releases and settles; the caller delivers.
  uint32_t collect_releases(Stream& s);
  // A lane broke the rules: the client is told why and disconnected.
  void lane_violation(Connection& c, const std::string& problem);
  // Sets the wake flag of every lane of `s`'s subscribers: set when no commit is coming to
  // collect releases (the camera is idle, the stream is published or ended) or the camera
  // blocks on a full ring, so each release must reach the broker at once.
  void update_release_wake(Stream& s);
  bool releases_wanted_at_once(Stream& s);
  // In broker_status.cpp: the snapshot behind fbctl status/streams/slots/...
  void on_status(Connection& c, uint32_t rid, const wire::StatusRequest& m);
  // Keeps a client's own counters for status (at most kMaxClientStats bytes, a JSON object).
  void on_client_stats(Connection& c, uint32_t rid, const wire::ClientStats& m);
  static constexpr size_t kMaxClientStats = 8 * 1024;
  static constexpr size_t kClientStatsBudget = 256 * 1024;  // all clients' stats in one Status
  flatbuffers::Offset<wire::SlotMap> slot_map(flatbuffers::FlatBufferBuilder& fbb, Stream& s);
  void on_camera(Connection& c, uint32_t rid, const wire::CameraCommand& m);
  // Start with a sequence: checks it (std::invalid_argument), announces it, starts the camera.
  void start_sequence(Connection& c, Stream& s, const wire::CameraCommand& m);

  // In broker_publish.cpp: streams that clients publish.
  struct Publication {
    uint64_t connection = 0;  // 0 once the producer has gone: the stream has ended
    std::string client;
    pid_t pid = 0;
    // (gen << 32 | slot) on loan to the producer: at most kMaxCredits, so a flat vector whose
    // capacity stays (no node per loan).
    std::vector<uint64_t> loans;
    bool lent(uint64_t k) const { return std::find(loans.begin(), loans.end(), k) != loans.end(); }
    void give_back(uint64_t k) { std::erase(loans, k); }
    cameras::FrameInfo scratch;  // reused for each commit: its tag strings keep their capacity
    uint32_t credits = 0;        // loans to keep outstanding
    std::vector<std::pair<std::string, std::string>> tags;
    bool blocking = true;
    bool ended() const { return connection == 0; }
  };
  void on_advertise(Connection& c, uint32_t rid, const wire::Advertise& m);
  void on_commit(Connection& c, const wire::Commit& m);
  void on_begin_sequence(Connection& c, uint32_t rid, const wire::BeginSequence& m);
  void on_end_sequence(Connection& c, const wire::EndSequence& m);
  Publication* publication_of(std::string_view stream);
  // Lends the producer free slots up to its credit (a blocking one no further than the slowest
  // `every` subscriber can take without missing a frame).
  void grant_loans(Stream& s, Publication& p);
  // Hands committed frames to the fanout (a blocking stream's only as far as subscribers have
  // room).
  void publish_committed(Stream& s, Publication& p);
  // The producer went away: its loans go back unpublished, and the stream ends.
  void end_publication(const std::string& stream);
  // An ended stream's subscriber got everything it was queued: tell it, and end it.
  void finish_if_ended(Connection& c, Stream& s, Subscriptions::Id sub);
  // Drops ended streams nobody holds anything of (their segments are unlinked).
  void reap_ended();
  // Slots may have come free (releases, a client gone): producers get loans again (of one
  // stream, or of all), and ended streams nobody holds go.
  void after_slots_freed(Stream* only = nullptr);
  // In broker_discover.cpp: the scan runs on a thread of its own, which sends the reply.
  void on_discover(Connection& c, uint32_t rid, const wire::DiscoverRequest& m);
  bool may_control(const Connection& c) const;

  // The one way a subscription ends; see Ending.
  void end_subscription(Subscriptions::Id sub, Ending why);
  // Forgets a subscriber the fanout no longer has (ended, and nothing left held): the one place
  // an entry leaves the registry.
  void settle(Subscriptions::Id sub, Stream* s);

  // Sends each connection what its subscribers of `s` have queued.
  void deliver(Stream& s);
  void deliver_to(Connection& c, Stream& s, uint64_t subscriber);
  std::string stream_names() const;

  boost::asio::io_context& io_;
  std::mutex state_;
  std::string instance_, socket_path_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer accept_retry_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_tick_ = started_;

  std::map<std::string, std::unique_ptr<Stream>, std::less<>> streams_;
  std::map<uint64_t, std::shared_ptr<Connection>> connections_;
  Subscriptions subscriptions_;
  std::map<std::string, Publication, std::less<>> publications_;
  ClientLimits limits_;
  uint64_t max_publish_bytes_ = 0;  // 0: a quarter of RAM
  int publish_gid_ = -1;
  std::string publish_group_;
  int stream_group_ = -1;
  std::vector<uint32_t> loan_batch_;
  uint64_t next_connection_id_ = 1;
  uint64_t next_sequence_id_ = 1;
  bool shutting_down_ = false;
  bool owns_socket_file_ = false;
  int control_gid_ = -1;
  std::string control_group_;
  uid_t own_uid_;
  // Reused for every Deliver, so that a frame costs no allocation here.
  // Sized for the largest batch (512 KiB and one more frame's meta) so it never grows mid-run.
  flatbuffers::FlatBufferBuilder deliver_fbb_{640 * 1024};
  std::vector<flatbuffers::Offset<wire::FrameReady>> ready_;
  std::vector<uint64_t> deliver_ids_;
  std::vector<uint64_t> collect_ids_, wake_ids_;

  // broker_discover.cpp's thread. Last: it is joined before the state its reply needs goes.
  struct Discovery;
  std::shared_ptr<Discovery> discovery_;
};

}  // namespace framebroker::daemon
