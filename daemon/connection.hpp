// Connection: one client socket. It frames and verifies what arrives, hands
// each message to its MessageHandler, and queues what goes out. Nothing here
// blocks: reads and writes are asynchronous on the broker's one socket thread,
// and the outbound queue is bounded (a client that stops reading is dropped).
//
// Its state belongs to the broker's state lock: every handler takes it, and a
// camera thread that delivers holds it while it calls send(). send() writes
// straight to the socket when nothing is queued (no Asio call, so any thread
// may do it); only what the socket would not take waits for the socket thread.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "framebroker/internal/wire.hpp"
#include "release_lanes.hpp"

namespace framebroker::daemon {

class Connection;

// Who the peer was when it connected. Unknown ids are -1, never 0: not root by accident.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = uid_t(-1);
  gid_t gid = gid_t(-1);
  std::vector<gid_t> groups;  // supplementary groups (SO_PEERGROUPS)

  bool in_group(gid_t g) const;  // as primary or supplementary group
};

class MessageHandler {
 public:
  virtual ~MessageHandler() = default;
  virtual void on_message(Connection& c, const wire::Received& msg) = 0;
  virtual void on_writable(Connection& c) = 0;  // the outbound queue drained
  virtual void on_closed(Connection& c) = 0;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;
  using Clock = std::chrono::steady_clock;

  // Frames below this many queued bytes flow; above it they wait (queued).
  static constexpr size_t kSoftLimit = 256 * 1024;
  // Above this many queued bytes (by default) the client is not reading: it is disconnected.
  static constexpr size_t kDefaultQueueLimit = 16 * 1024 * 1024;

  Connection(MessageHandler& handler, Socket socket, uint64_t id, std::mutex& state,
             boost::asio::io_context::executor_type socket_thread);

  void start();
  // Sends a finished (size-prefixed) message, or queues what the socket will not take now.
  void send(const flatbuffers::FlatBufferBuilder& fbb);
  // A finished, length-prefixed message built elsewhere (e.g. once for every subscriber).
  void send(std::span<const uint8_t> message);
  void send_error(uint32_t request_id, wire::ErrorCode code, const std::string& message);
  // Sends a message with `fd` attached (SCM_RIGHTS) to its first byte; the fd stays the
  // caller's. Socket thread only, and only while nothing waits in the outbound queue (ancillary
  // data cannot wait there): false, with nothing sent, otherwise.
  bool send_with_fd(const flatbuffers::FlatBufferBuilder& fbb, int fd);
  // Sends what is queued, then closes.
  void close_after_flush();
  // Closes at once; on_closed follows.
  void close(const std::string& reason);
  // Sends the error, then closes: from any thread (a camera thread draining a release lane that
  // broke the rules calls it).
  void fail(wire::ErrorCode code, const std::string& message);
  // Best-effort synchronous goodbye for shutdown (never blocks).
  void say_goodbye(wire::ErrorCode code, const std::string& message);

  void set_queue_limit(size_t bytes) { queue_limit_ = bytes; }

  uint64_t id() const { return id_; }
  const PeerCredentials& peer() const { return peer_; }
  bool open() const { return open_; }
  bool has_room() const { return !broken_ && out_.size() + writing_.size() < kSoftLimit; }
  // True when a write has waited longer than `limit` for the client to read.
  bool stalled(Clock::time_point now, std::chrono::seconds limit) const;

  // The client's Hello: who it says it is. Its subscriptions live in the broker's registry.
  void greet(std::string client_name, std::string role);
  bool greeted() const { return greeted_; }
  const std::string& client_name() const { return client_name_; }
  const std::string& role() const { return role_; }
  std::chrono::system_clock::time_point connected_at() const { return connected_at_; }
  // The client's last ClientStats (a JSON object, verbatim); empty: it never sent one.
  const std::string& stats() const { return stats_; }
  void set_stats(std::string_view json) { stats_.assign(json); }

  // The client's release lanes, when it asked for them at Hello (nullptr: it releases over the
  // socket only).
  ReleaseLanes* release_lanes() { return lanes_.get(); }
  void set_release_lanes(std::unique_ptr<ReleaseLanes> lanes) { lanes_ = std::move(lanes); }

 private:
  bool on_socket_thread() const { return socket_thread_.running_in_this_thread(); }
  // close(), from any thread: a camera thread leaves the Asio calls to the socket thread.
  void close_soon(const std::string& reason);
  void read_more();
  void on_read(size_t n);
  void write_more();
  void finish_close();

  MessageHandler& handler_;
  std::mutex& state_;
  boost::asio::io_context::executor_type socket_thread_;
  Socket socket_;
  uint64_t id_;
  PeerCredentials peer_;
  wire::FrameReader reader_;
  std::vector<uint8_t> out_, writing_;
  size_t queue_limit_ = kDefaultQueueLimit;
  Clock::time_point write_started_{};
  bool open_ = true;
  bool closing_ = false;
  bool broken_ = false;        // a close is on its way to the socket thread
  bool write_posted_ = false;  // a write_more is on its way to the socket thread
  bool fail_posted_ = false;   // a fail() is on its way to the socket thread
  std::string close_reason_;
  bool greeted_ = false;
  std::string client_name_ = "?";
  std::string role_;
  std::string stats_;
  std::chrono::system_clock::time_point connected_at_ = std::chrono::system_clock::now();
  std::unique_ptr<ReleaseLanes> lanes_;
};

}  // namespace framebroker::daemon
