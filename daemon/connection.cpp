#include "connection.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace framebroker::daemon {

namespace asio = boost::asio;

Connection::Connection(MessageHandler& handler, Socket socket, uint64_t id, std::mutex& state,
                       asio::io_context::executor_type socket_thread)
    : handler_(handler),
      state_(state),
      socket_thread_(socket_thread),
      socket_(std::move(socket)),
      id_(id) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
    peer_ = {cred.pid, cred.uid, cred.gid, {}};
  // Read once here: they are fixed at connect(). When 32 are too few, ERANGE says how many.
  peer_.groups.resize(32);
  auto read_groups = [&] {
    len = socklen_t(peer_.groups.size() * sizeof(gid_t));
    return getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERGROUPS, peer_.groups.data(),
                      &len) == 0;
  };
  bool ok = read_groups();
  if (!ok && errno == ERANGE) {
    peer_.groups.resize(len / sizeof(gid_t));
    ok = read_groups();
  }
  if (ok) {
    peer_.groups.resize(len / sizeof(gid_t));
  } else {
    spdlog::warn("client {} (pid {}): cannot read its groups: {}", id_, peer_.pid,
                 std::strerror(errno));
    peer_.groups.clear();
  }
}

bool PeerCredentials::in_group(gid_t g) const {
  return gid == g || std::find(groups.begin(), groups.end(), g) != groups.end();
}

void Connection::greet(std::string client_name, std::string role) {
  greeted_ = true;
  client_name_ = client_name.empty() ? "?" : std::move(client_name);
  role_ = std::move(role);
}

void Connection::start() {
  read_more();
}

void Connection::read_more() {
  if (!open_ || closing_) return;
  auto area = reader_.write_area();
  socket_.async_read_some(asio::buffer(area.data(), area.size()),
                          [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                            std::lock_guard lock(self->state_);
                            if (!self->open_) return;
                            if (ec) {
                              self->close(ec == asio::error::eof ? "disconnected" : ec.message());
                              return;
                            }
                            self->on_read(n);
                          });
}

void Connection::on_read(size_t n) {
  reader_.commit(n);
  wire::Received msg;
  for (;;) {
    if (!open_ || closing_) return;
    switch (reader_.next(msg)) {
      case wire::FrameReader::Status::NeedMore:
        return read_more();
      case wire::FrameReader::Status::TooLarge:
        spdlog::warn("client {} ({} pid {}): message over {} bytes; closing", id_, client_name_,
                     peer_.pid, wire::kMaxMessageBytes);
        send_error(0, wire::ErrorCode::TooLarge,
                   "message larger than " + std::to_string(wire::kMaxMessageBytes) + " bytes");
        return close_after_flush();
      case wire::FrameReader::Status::Malformed:
        spdlog::warn("client {} ({} pid {}): malformed message; closing", id_, client_name_,
                     peer_.pid);
        send_error(0, wire::ErrorCode::Malformed, "message failed FlatBuffers verification");
        return close_after_flush();
      case wire::FrameReader::Status::Message:
        handler_.on_message(*this, msg);
        break;
    }
  }
}

void Connection::send(const flatbuffers::FlatBufferBuilder& fbb) {
  send({fbb.GetBufferPointer(), fbb.GetSize()});
}

void Connection::send(std::span<const uint8_t> message) {
  if (!open_ || broken_) return;
  const uint8_t* data = message.data();
  size_t size = message.size();
  if (writing_.empty() && out_.empty()) {
    // What async_write would try first anyway, without a trip through the socket thread.
    const ssize_t n = ::send(socket_.native_handle(), data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == ssize_t(size)) return;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return close_soon(std::strerror(errno));
    if (n > 0) data += n, size -= size_t(n);
  }
  out_.insert(out_.end(), data, data + size);
  if (out_.size() > queue_limit_) {
    spdlog::warn("client {} ({} pid {}) stopped reading: {} bytes queued; disconnecting", id_,
                 client_name_, peer_.pid, out_.size());
    return close_soon("stopped reading its socket");
  }
  if (on_socket_thread()) return write_more();
  if (!writing_.empty() || write_posted_) return;  // the write in flight picks it up
  write_posted_ = true;
  asio::post(socket_thread_, [self = shared_from_this()] {
    std::lock_guard lock(self->state_);
    self->write_posted_ = false;
    self->write_more();
  });
}

bool Connection::send_with_fd(const flatbuffers::FlatBufferBuilder& fbb, int fd) {
  if (!open_ || broken_ || !writing_.empty() || !out_.empty()) return false;
  iovec iov{const_cast<uint8_t*>(fbb.GetBufferPointer()), fbb.GetSize()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n <= 0) return false;
  if (size_t(n) < fbb.GetSize()) {  // the fd went with the first byte; the rest may wait
    out_.insert(out_.end(), fbb.GetBufferPointer() + n, fbb.GetBufferPointer() + fbb.GetSize());
    write_more();
  }
  return true;
}

void Connection::close_soon(const std::string& reason) {
  if (on_socket_thread()) return close(reason);
  if (broken_) return;
  broken_ = true;
  asio::post(socket_thread_, [self = shared_from_this(), reason] {
    std::lock_guard lock(self->state_);
    self->close(reason);
  });
}

void Connection::send_error(uint32_t request_id, wire::ErrorCode code, const std::string& message) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::build_error(fbb, request_id, code, message);
  send(fbb);
}

void Connection::fail(wire::ErrorCode code, const std::string& message) {
  if (on_socket_thread()) {
    send_error(0, code, message);
    return close_after_flush();
  }
  if (broken_ || closing_ || std::exchange(fail_posted_, true)) return;
  asio::post(socket_thread_, [self = shared_from_this(), code, message] {
    std::lock_guard lock(self->state_);
    if (self->open_) self->fail(code, message);
  });
}

void Connection::write_more() {
  if (!writing_.empty() || out_.empty() || !open_) return;
  writing_.swap(out_);
  write_started_ = Clock::now();
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      std::lock_guard lock(self->state_);
                      if (!self->open_) return;
                      self->writing_.clear();
                      if (ec) return self->close(ec.message());
                      if (!self->out_.empty()) return self->write_more();
                      if (self->closing_) return self->close(self->close_reason_);
                      self->handler_.on_writable(*self);
                    });
}

bool Connection::stalled(Clock::time_point now, std::chrono::seconds limit) const {
  return open_ && !writing_.empty() && now - write_started_ > limit;
}

void Connection::close_after_flush() {
  closing_ = true;
  close_reason_ = "closed after an error";
  if (writing_.empty() && out_.empty()) close(close_reason_);
}

void Connection::close(const std::string& reason) {
  if (!open_) return;
  open_ = false;
  spdlog::debug("client {} ({} pid {}): {}", id_, client_name_, peer_.pid, reason);
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  // Deferred so that a close from inside a broker loop never edits what it walks.
  asio::post(socket_thread_, [self = shared_from_this()] {
    std::lock_guard lock(self->state_);
    self->handler_.on_closed(*self);
  });
}

void Connection::say_goodbye(wire::ErrorCode code, const std::string& message) {
  // Only between messages: bytes of a half-written message may still be queued.
  if (!open_ || !writing_.empty() || !out_.empty()) return;
  flatbuffers::FlatBufferBuilder fbb;
  wire::build_error(fbb, 0, code, message);
  ::send(socket_.native_handle(), fbb.GetBufferPointer(), fbb.GetSize(),
         MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace framebroker::daemon
