// The ZeroMQ pieces both ends share: RAII for contexts, sockets and messages, the link options
// (heart-beats, reconnect back-off, limits), CURVE set-up with a ZAP handler for allowed client
// keys, socket monitors turned into log lines, and the stop signal as a pollable fd.
#pragma once

#include <zmq.h>

#include <atomic>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "fbbridge/curve_keys.hpp"

namespace framebroker::fbbridge {

// The link's timing (docs/fbbridge.md, "Faults").
inline constexpr int kHeartbeatIvlMs = 500;       // ZMQ_HEARTBEAT_IVL
inline constexpr int kHeartbeatTimeoutMs = 1500;  // ZMQ_HEARTBEAT_TIMEOUT: a dead link is seen
inline constexpr int kReconnectIvlMs = 100;       // ZMQ_RECONNECT_IVL, doubling up to
inline constexpr int kReconnectIvlMaxMs = 2000;   // ZMQ_RECONNECT_IVL_MAX

class ZmqContext {
 public:
  ZmqContext();
  ~ZmqContext();
  ZmqContext(const ZmqContext&) = delete;
  ZmqContext& operator=(const ZmqContext&) = delete;
  void* get() const { return ctx_; }
  // Waits until every socket is closed and ZeroMQ has freed every message (running their free
  // callbacks). Idempotent; the destructor calls it.
  void term();

 private:
  void* ctx_;
};

class ZmqSocket {
 public:
  ZmqSocket(void* ctx, int type);
  ~ZmqSocket();  // LINGER 0: unsent messages are dropped (their free callbacks run)
  ZmqSocket(const ZmqSocket&) = delete;
  ZmqSocket& operator=(const ZmqSocket&) = delete;
  void* get() const { return s_; }
  void set(int option, int value);
  void set(int option, int64_t value);
  void set(int option, const std::string& value);
  void close();

 private:
  void* s_;
};

// One received message part, reused (zmq_msg_recv re-initializes it).
class ZmqMsg {
 public:
  ZmqMsg() { zmq_msg_init(&m_); }
  ~ZmqMsg() { zmq_msg_close(&m_); }
  ZmqMsg(const ZmqMsg&) = delete;
  ZmqMsg& operator=(const ZmqMsg&) = delete;
  zmq_msg_t* get() { return &m_; }
  std::span<const std::byte> bytes() {
    return {static_cast<const std::byte*>(zmq_msg_data(&m_)), zmq_msg_size(&m_)};
  }
  bool more() { return zmq_msg_more(&m_) != 0; }
  // Receives the next part without waiting; false when none (EAGAIN) or on error.
  bool recv(void* socket) { return zmq_msg_recv(&m_, socket, ZMQ_DONTWAIT) >= 0; }

 private:
  zmq_msg_t m_;
};

// Heart-beats, reconnect back-off, LINGER 0 and TCP keep-alive on a socket of either end.
void set_link_options(ZmqSocket& s);
// Sends `bytes` as one message part (flags: ZMQ_SNDMORE, ZMQ_DONTWAIT). False on EAGAIN etc.
bool send_bytes(void* socket, std::span<const std::byte> bytes, int flags);
bool send_bytes(void* socket, const void* data, size_t n, int flags);
// Receives and drops the rest of a multipart message.
void drain_parts(void* socket);

// A socket monitor: its events (connected, disconnected, handshake failed, ...) as log lines.
class Monitor {
 public:
  Monitor(void* ctx, ZmqSocket& watched, const std::string& name, int events);
  void* get() const { return pair_.get(); }
  struct Event {
    uint16_t id = 0;
    int32_t value = 0;
    std::string address;
  };
  // Takes the next event without waiting; false when none.
  bool next(Event& e);

 private:
  ZmqSocket pair_;
};
const char* event_name(uint16_t id);

// CURVE: the server side with its secret key (and, when `allowed` is not empty, a ZAP handler
// that lets in only those client public keys); the client with its keys and the server's public.
void curve_server(ZmqSocket& s, const CurveKeys& own);
void curve_client(ZmqSocket& s, const CurveKeys& own, const std::string& server_public);

// ZAP (RFC 27) on inproc://zeromq.zap.01: admits the CURVE clients whose public keys are listed.
class ZapHandler {
 public:
  ZapHandler(void* ctx, std::set<std::string> allowed_z85);
  void* get() const { return rep_.get(); }
  // Answers the pending requests; returns how many were refused.
  int handle();

 private:
  ZmqSocket rep_;
  std::set<std::string> allowed_;
};

// SIGINT and SIGTERM set `stop` and make the returned fd readable (for zmq_poll).
int install_stop_signals(std::atomic<bool>& stop);

}  // namespace framebroker::fbbridge
