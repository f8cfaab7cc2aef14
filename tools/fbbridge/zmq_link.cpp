#include "fbbridge/zmq_link.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <stdexcept>

namespace framebroker::fbbridge {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + zmq_strerror(zmq_errno()));
}

std::atomic<bool>* g_stop = nullptr;
int g_wake_fd = -1;

void on_stop_signal(int) {
  if (g_stop) g_stop->store(true);
  const uint64_t one = 1;
  if (g_wake_fd >= 0) [[maybe_unused]]
    auto r = ::write(g_wake_fd, &one, sizeof one);
}

}  // namespace

ZmqContext::ZmqContext() : ctx_(zmq_ctx_new()) {
  if (!ctx_) fail("zmq_ctx_new");
  zmq_ctx_set(ctx_, ZMQ_BLOCKY, 0);
}
ZmqContext::~ZmqContext() {
  term();
}
void ZmqContext::term() {
  if (ctx_) zmq_ctx_term(ctx_);
  ctx_ = nullptr;
}

ZmqSocket::ZmqSocket(void* ctx, int type) : s_(zmq_socket(ctx, type)) {
  if (!s_) fail("zmq_socket");
  set(ZMQ_LINGER, 0);
}
ZmqSocket::~ZmqSocket() {
  close();
}
void ZmqSocket::close() {
  if (s_) zmq_close(s_);
  s_ = nullptr;
}
void ZmqSocket::set(int option, int value) {
  if (zmq_setsockopt(s_, option, &value, sizeof value) != 0)
    fail("zmq_setsockopt " + std::to_string(option));
}
void ZmqSocket::set(int option, int64_t value) {
  if (zmq_setsockopt(s_, option, &value, sizeof value) != 0)
    fail("zmq_setsockopt " + std::to_string(option));
}
void ZmqSocket::set(int option, const std::string& value) {
  if (zmq_setsockopt(s_, option, value.data(), value.size()) != 0)
    fail("zmq_setsockopt " + std::to_string(option));
}

void set_link_options(ZmqSocket& s) {
  s.set(ZMQ_HEARTBEAT_IVL, kHeartbeatIvlMs);
  s.set(ZMQ_HEARTBEAT_TIMEOUT, kHeartbeatTimeoutMs);
  s.set(ZMQ_HEARTBEAT_TTL, kHeartbeatTimeoutMs);
  s.set(ZMQ_RECONNECT_IVL, kReconnectIvlMs);
  s.set(ZMQ_RECONNECT_IVL_MAX, kReconnectIvlMaxMs);
  s.set(ZMQ_HANDSHAKE_IVL, 5000);
  s.set(ZMQ_TCP_KEEPALIVE, 1);
}

bool send_bytes(void* socket, const void* data, size_t n, int flags) {
  return zmq_send(socket, data, n, flags) >= 0;
}
bool send_bytes(void* socket, std::span<const std::byte> bytes, int flags) {
  return send_bytes(socket, bytes.data(), bytes.size(), flags);
}

void drain_parts(void* socket) {
  ZmqMsg m;
  int more = 1;
  size_t len = sizeof more;
  while (zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &len) == 0 && more) {
    if (!m.recv(socket)) break;
  }
}

Monitor::Monitor(void* ctx, ZmqSocket& watched, const std::string& name, int events)
    : pair_(ctx, ZMQ_PAIR) {
  const std::string ep = "inproc://fbbridge-monitor-" + name;
  if (zmq_socket_monitor(watched.get(), ep.c_str(), events) != 0) fail("zmq_socket_monitor");
  if (zmq_connect(pair_.get(), ep.c_str()) != 0) fail("connect " + ep);
}

bool Monitor::next(Event& e) {
  ZmqMsg head, addr;
  if (!head.recv(pair_.get())) return false;
  if (head.bytes().size() >= 6) {
    std::memcpy(&e.id, head.bytes().data(), 2);
    std::memcpy(&e.value, head.bytes().data() + 2, 4);
  }
  if (head.more() && addr.recv(pair_.get()))
    e.address.assign(reinterpret_cast<const char*>(addr.bytes().data()), addr.bytes().size());
  if (addr.more()) drain_parts(pair_.get());
  return true;
}

const char* event_name(uint16_t id) {
  switch (id) {
    case ZMQ_EVENT_CONNECTED:
      return "connected";
    case ZMQ_EVENT_CONNECT_DELAYED:
      return "connect delayed";
    case ZMQ_EVENT_CONNECT_RETRIED:
      return "connect retried";
    case ZMQ_EVENT_LISTENING:
      return "listening";
    case ZMQ_EVENT_BIND_FAILED:
      return "bind failed";
    case ZMQ_EVENT_ACCEPTED:
      return "accepted";
    case ZMQ_EVENT_ACCEPT_FAILED:
      return "accept failed";
    case ZMQ_EVENT_CLOSED:
      return "closed";
    case ZMQ_EVENT_DISCONNECTED:
      return "disconnected";
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      return "handshake failed";
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      return "handshake succeeded";
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      return "handshake failed (protocol)";
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      return "handshake failed (authentication)";
    default:
      return "event";
  }
}

void curve_server(ZmqSocket& s, const CurveKeys& own) {
  s.set(ZMQ_CURVE_SERVER, 1);
  s.set(ZMQ_CURVE_SECRETKEY, own.secret_key);
  s.set(ZMQ_ZAP_DOMAIN, std::string("fbbridge"));
}

void curve_client(ZmqSocket& s, const CurveKeys& own, const std::string& server_public) {
  s.set(ZMQ_CURVE_SERVERKEY, server_public);
  s.set(ZMQ_CURVE_PUBLICKEY, own.public_key);
  s.set(ZMQ_CURVE_SECRETKEY, own.secret_key);
}

ZapHandler::ZapHandler(void* ctx, std::set<std::string> allowed)
    : rep_(ctx, ZMQ_REP), allowed_(std::move(allowed)) {
  if (zmq_bind(rep_.get(), "inproc://zeromq.zap.01") != 0) fail("bind the ZAP handler");
}

int ZapHandler::handle() {
  int refused = 0;
  ZmqMsg part;
  while (part.recv(rep_.get())) {
    // version, request id, domain, address, identity, mechanism, credentials...
    std::vector<std::string> parts;
    parts.emplace_back(reinterpret_cast<const char*>(part.bytes().data()), part.bytes().size());
    while (part.more() && part.recv(rep_.get()))
      parts.emplace_back(reinterpret_cast<const char*>(part.bytes().data()), part.bytes().size());
    const bool curve = parts.size() >= 7 && parts[5] == "CURVE" && parts[6].size() == 32;
    char z85[41] = {0};
    if (curve) zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(parts[6].data()), 32);
    const bool ok = curve && allowed_.count(z85) > 0;
    if (!ok) {
      ++refused;
      spdlog::warn("fbbridge: refused a client from {} (key {}: not in --curve-allow)",
                   parts.size() > 3 ? parts[3] : "?", curve ? z85 : "none");
    }
    const std::string reply[6] = {"1.0",
                                  parts.size() > 1 ? parts[1] : "",
                                  ok ? "200" : "400",
                                  ok ? "OK" : "key not allowed",
                                  ok ? z85 : "",
                                  ""};
    for (int i = 0; i < 6; ++i)
      send_bytes(rep_.get(), reply[i].data(), reply[i].size(), i < 5 ? ZMQ_SNDMORE : 0);
  }
  return refused;
}

int install_stop_signals(std::atomic<bool>& stop) {
  g_stop = &stop;
  g_wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return g_wake_fd;
}

}  // namespace framebroker::fbbridge
