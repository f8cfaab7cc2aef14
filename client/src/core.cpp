#include "core.hpp"

#include "framebroker/internal/sequence_wire.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <algorithm>
#include <thread>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "framebroker/runtime.hpp"

namespace framebroker::detail {

namespace {

// How long releases wait for more before they go (see pump).
constexpr auto kReleaseLinger = std::chrono::microseconds(250);
constexpr auto kSubscribeTimeout = std::chrono::seconds(10);

std::string program_name() {
  char buf[256] = {};
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "client";
  std::string path(buf, size_t(n));
  return path.substr(path.find_last_of('/') + 1);
}

int connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw Error(Errc::InvalidArgument, "socket path is too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(Errc::BrokerNotRunning, std::string("socket: ") + strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(Errc::BrokerNotRunning,
                "framebrokerd is not running: cannot connect to " + path + " (" + strerror(err) +
                    "). Start it with `framebrokerd` (or `systemctl start framebrokerd`), or "
                    "point --socket / FRAMEBROKER_SOCKET at the right socket.");
  }
  return fd;
}

// FRAMEBROKER_RELEASE_LANES=off makes this client release over the socket only, as clients
// before the lanes did (fbbench compares the two).
bool lanes_wanted() {
  const char* v = std::getenv("FRAMEBROKER_RELEASE_LANES");
  return !v || (std::strcmp(v, "off") != 0 && std::strcmp(v, "0") != 0);
}

Errc errc_for(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::ProtocolMismatch:
      return Errc::ProtocolMismatch;
    case wire::ErrorCode::UnknownStream:
      return Errc::UnknownStream;
    default:
      return Errc::Refused;
  }
}

}  // namespace

std::shared_ptr<Core> Core::connect(const ConnectOptions& options) {
  const std::string path =
      options.socket_path.empty() ? resolve_socket_path(options.instance) : options.socket_path;
  int fd = connect_unix(path);
  std::shared_ptr<Core> core(new Core(fd, path));
  core->options_ = options;
  flatbuffers::FlatBufferBuilder nudge;
  wire::finish(nudge, 0, wire::Message::ReleasesWritten, wire::CreateReleasesWritten(nudge));
  core->nudge_message_.assign(nudge.GetBufferPointer(), nudge.GetBufferPointer() + nudge.GetSize());
  core->hello();
  return core;
}

void Core::hello() {
  flatbuffers::FlatBufferBuilder fbb;
  const std::string name = options_.client_name.empty() ? program_name() : options_.client_name;
  auto hello = wire::CreateHello(fbb, wire::kProtocolVersion, fbb.CreateString(name),
                                 fbb.CreateString(options_.role), lanes_wanted());
  const uint32_t id = next_request_id();
  wire::finish(fbb, id, wire::Message::Hello, hello);
  auto reply = request(fbb, id, wire::Message::Welcome, std::chrono::seconds(5));
  const auto* welcome = reply.envelope()->message_as_Welcome();
  {
    std::lock_guard lock(state_mu_);
    instance_ = welcome->instance() ? welcome->instance()->str() : "";
  }
  broker_version_ = welcome->broker_version() ? welcome->broker_version()->str() : "";
  if (welcome->release_lanes() > 0) {
    const int lanes_fd = take_passed_fd();
    try {
      if (lanes_fd < 0) throw std::runtime_error("the broker passed no release lanes");
      auto lanes = std::make_unique<LaneWriter>(lanes_fd);
      std::lock_guard lock(release_mu_);
      lanes_ = std::move(lanes);
    } catch (const std::exception& e) {
      // Releases then go over the socket, as for any client without lanes.
      std::lock_guard lock(state_mu_);
      async_errors_.push_back(e.what());
    }
  }
}

StreamInfo Core::subscribe(const std::string& stream, const SubscribeOptions& o) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateSubscribe(fbb, fbb.CreateString(stream),
                                    o.mode == Mode::Latest ? wire::Mode::Latest : wire::Mode::Every,
                                    o.max_hold, o.window, o.from_latest);
  const uint32_t id = next_request_id();
  wire::finish(fbb, id, wire::Message::Subscribe, body);
  {
    std::lock_guard lock(state_mu_);
    if (auto it = pending_.find(stream); it != pending_.end()) {
      it->second.options = o;
      it->second.spin = o.spin;
    }
  }
  auto reply = request(fbb, id, wire::Message::Subscribed, kSubscribeTimeout);
  const auto* s = reply.envelope()->message_as_Subscribed();
  const auto text = [](const flatbuffers::String* t) { return t ? t->str() : std::string(); };
  StreamInfo info{text(s->stream()), text(s->segment()), s->gen(),
                  s->slots(),        s->slot_bytes(),    o.mode,
                  s->max_hold(),     s->window()};
  set_release_budget(stream, o.mode == Mode::Latest ? s->window() : s->max_hold());
  std::lock_guard lock(state_mu_);
  if (auto it = pending_.find(stream); it != pending_.end()) it->second.info = info;
  return info;
}

StreamInfo Core::stream_info(const std::string& stream) {
  std::lock_guard lock(state_mu_);
  auto it = pending_.find(stream);
  return it == pending_.end() ? StreamInfo{} : it->second.info;
}

std::optional<BrokerRestart> Core::restart(const std::string& stream) {
  std::lock_guard lock(state_mu_);
  auto it = pending_.find(stream);
  return it == pending_.end() ? std::nullopt : it->second.restart;
}

bool Core::reconnect(Clock::time_point deadline) {
  // Polled rather than try_lock_until: libstdc++ 12 implements that with
  // pthread_mutex_clocklock, which GCC 12's ThreadSanitizer does not see, so it reported the
  // unlock as one of an unlocked mutex.
  std::unique_lock guard(reconnect_mu_, std::defer_lock);
  while (!guard.try_lock()) {  // another thread is at it
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (;;) {
    const auto now = Clock::now();
    {
      std::lock_guard lock(state_mu_);
      if (!lost_) return true;  // another thread reconnected meanwhile
      if (!outage_) {
        outage_ = true;
        lost_at_ = next_attempt_ = now;
        backoff_ = options_.reconnect_backoff_min;
        lost_why_ = lost_reason_.empty() ? "the connection ended" : lost_reason_;
      }
      if (options_.reconnect_give_up.count() > 0 && now - lost_at_ >= options_.reconnect_give_up)
        throw Error(Errc::BrokerLost,
                    "lost the broker at " + socket_path_ + ": " + lost_why_ +
                        "; it did not come back within " +
                        std::to_string(options_.reconnect_give_up.count()) + " ms" +
                        (last_try_error_.empty() ? "" : " (last try: " + last_try_error_ + ")"));
    }
    if (next_attempt_ > now) {
      if (next_attempt_ > deadline) {
        std::this_thread::sleep_until(deadline);
        return false;
      }
      std::this_thread::sleep_until(next_attempt_);
      continue;
    }
    next_attempt_ = now + backoff_;
    backoff_ = std::min<Clock::duration>(backoff_ * 2, options_.reconnect_backoff_max);
    try {
      reconnect_once();
      outage_ = false;
      last_try_error_.clear();
      return true;
    } catch (const Error& e) {
      last_try_error_ = e.what();
    }
    if (Clock::now() >= deadline) return false;
  }
}

void Core::reconnect_once() {
  const int fd = connect_unix(socket_path_);  // throws BrokerNotRunning while it is away
  {
    // Nobody reads, sends or releases while the connection is swapped.
    std::scoped_lock all(read_mu_, flush_mu_, send_mu_, state_mu_, release_mu_);
    ::close(fd_);
    fd_ = fd;
    reader_ = wire::FrameReader();  // messages still held keep their buffers
    reader_prepared_ = 0;
    last_wait_ = Clock::duration::max();
    lanes_.reset();
    for (auto& [stream, refs] : releases_) refs.clear();
    for (auto& [stream, refs] : flushing_) refs.clear();
    release_count_ = 0;
    nudge_ = false;
    replies_.clear();
    loans_.clear();
    if (passed_fd_ >= 0) ::close(passed_fd_);
    passed_fd_ = -1;
    lost_ = false;
    lost_reason_.clear();
    ++session_;  // frames of the old broker now release to nowhere
    for (auto& [stream, p] : pending_) {
      // Its new Subscribed queues the restart, in its place before the new broker's frames.
      p.lane = p.epoch = 0;
      p.segments.clear();  // frames still held keep their mappings
      p.announced.reset();
      p.ended = false;
      p.resubscribing = true;
      p.restart_reason = lost_why_;
      p.lost_at = lost_at_;
    }
  }
  try {
    hello();
    std::vector<std::pair<std::string, SubscribeOptions>> streams;
    {
      std::lock_guard lock(state_mu_);
      for (const auto& [stream, p] : pending_) streams.emplace_back(stream, p.options);
    }
    for (const auto& [stream, options] : streams) subscribe(stream, options);
  } catch (const Error& e) {
    // Lost again, or the new broker refused: the next try starts over.
    std::lock_guard lock(state_mu_);
    lost_ = true;
    if (lost_reason_.empty()) lost_reason_ = e.what();
    ::shutdown(fd_, SHUT_RDWR);
    throw;
  }
}

Core::~Core() {
  ::close(fd_);
  if (passed_fd_ >= 0) ::close(passed_fd_);
}

ssize_t Core::receive(std::span<uint8_t> into) {
  iovec iov{into.data(), into.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  for (cmsghdr* cm = n > 0 ? CMSG_FIRSTHDR(&msg) : nullptr; cm; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      std::lock_guard lock(state_mu_);
      if (passed_fd_ >= 0) ::close(passed_fd_);  // only the newest is of use
      passed_fd_ = fd;
    }
  }
  return n;
}

int Core::take_passed_fd() {
  std::lock_guard lock(state_mu_);
  return std::exchange(passed_fd_, -1);
}

std::optional<std::pair<uint32_t, uint32_t>> Core::next_loan(const std::string& stream,
                                                             Clock::time_point deadline) {
  // Past the deadline the socket is still read once without waiting: next(0) takes what has
  // arrived (an event loop calls it when the socket turns readable).
  bool read_once = false;
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard lock(state_mu_);
      auto& q = loans_[stream];
      if (!q.empty()) {
        auto l = q.front();
        q.pop_front();
        return l;
      }
      if (lost_) throw_lost();
      seen = dispatched_;
    }
    if (Clock::now() >= deadline && read_once) return std::nullopt;
    read_once = true;
    pump(deadline, seen);
  }
}

bool Core::ended(const std::string& stream) {
  std::lock_guard lock(state_mu_);
  auto it = pending_.find(stream);
  return it != pending_.end() && it->second.ended && it->second.items.empty();
}

std::shared_ptr<const Sequence> Core::sequence(const std::string& stream) {
  std::lock_guard lock(state_mu_);
  auto it = pending_.find(stream);
  return it == pending_.end() ? nullptr : it->second.sequence;
}

std::optional<SequenceEnd> Core::sequence_end(const std::string& stream) {
  std::lock_guard lock(state_mu_);
  auto it = pending_.find(stream);
  return it == pending_.end() ? std::nullopt : it->second.sequence_end;
}

void Core::send(const flatbuffers::FlatBufferBuilder& fbb) {
  send_bytes({fbb.GetBufferPointer(), fbb.GetSize()});
}

void Core::send_bytes(std::span<const uint8_t> bytes) {
  std::lock_guard lock(send_mu_);
  const uint8_t* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::send(fd_, p, left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::lock_guard state(state_mu_);
      lost_ = true;
      if (lost_reason_.empty()) lost_reason_ = std::string("send failed: ") + strerror(errno);
      throw_lost();
    }
    p += n;
    left -= size_t(n);
  }
}

void Core::throw_lost() const {
  throw Error(Errc::BrokerLost, "lost the broker at " + socket_path_ +
                                    (lost_reason_.empty() ? "" : ": " + lost_reason_));
}

wire::Received Core::request(flatbuffers::FlatBufferBuilder& fbb, uint32_t request_id,
                             wire::Message expected, std::chrono::milliseconds timeout) {
  flush_releases();
  send(fbb);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard lock(state_mu_);
      auto it = replies_.find(request_id);
      if (it != replies_.end()) {
        wire::Received reply = std::move(it->second);
        replies_.erase(it);
        const auto* env = reply.envelope();
        if (const auto* err = env->message_as_Error()) {
          throw Error(errc_for(err->code()), err->message() ? err->message()->str() : "refused",
                      int(err->code()));
        }
        if (env->message_type() != expected || !env->message())
          throw Error(Errc::Protocol, "the broker answered with an unexpected message");
        if (const auto* s = env->message_as_Subscribed()) {
          // Mapped now so that a segment this library refuses fails the subscribe, instead of
          // every frame being handed back unseen.
          const std::string stream = s->stream() ? s->stream()->str() : "";
          if (auto p = pending_.find(stream); p != pending_.end()) {
            try {
              segment_for(p->second, stream, s->gen());
            } catch (const shm::SegmentMissing&) {
              // Retired since it was announced: frames come from a later generation.
            } catch (const std::exception& e) {
              throw Error(Errc::Protocol, "cannot subscribe to " + stream + ": " + e.what());
            }
          }
        }
        return reply;
      }
      if (lost_) throw_lost();
      seen = dispatched_;
    }
    if (Clock::now() >= deadline)
      throw Error(Errc::Timeout,
                  "the broker did not answer within " + std::to_string(timeout.count()) + " ms");
    pump(deadline, seen);
  }
}

bool Core::add_subscription(const std::string& stream) {
  std::lock_guard lock(state_mu_);
  return pending_.try_emplace(stream).second;
}

void Core::remove_subscription(const std::string& stream) {
  internal::RingQueue<Item> unread;
  {
    std::lock_guard lock(state_mu_);
    auto it = pending_.find(stream);
    if (it == pending_.end()) return;
    unread = std::move(it->second.items);
    pending_.erase(it);
  }
  // Through the lane when they have one: the broker takes the lane before the Unsubscribe.
  for (; !unread.empty(); unread.pop_front())
    if (auto& h = unread.front().frame) release(std::move(h));
  set_release_budget(stream, 0);
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, 0, wire::Message::Unsubscribe,
               wire::CreateUnsubscribe(fbb, fbb.CreateString(stream)));
  try {
    flush_releases();
    send(fbb);
  } catch (const Error&) {
    // The broker is gone; it dropped every hold with the connection.
  }
}

std::optional<std::unique_ptr<FrameHandle>> Core::next_frame(const std::string& stream,
                                                             Clock::time_point deadline) {
  // Past the deadline the socket is still read once without waiting: next(0) takes what has
  // arrived (an event loop calls it when the socket turns readable).
  bool read_once = false;
  std::chrono::microseconds spin{0};
  std::shared_ptr<shm::Segment> ring;  // kept mapped while pump watches its counter
  for (;;) {
    uint64_t seen;
    bool lost;
    {
      std::lock_guard lock(state_mu_);
      auto it = pending_.find(stream);
      if (it == pending_.end()) throw Error(Errc::InvalidArgument, "not subscribed to " + stream);
      auto& p = it->second;
      bool sequence_finished = false;
      while (!p.items.empty() && !p.items.front().frame) {  // sequence events, in their place
        Item& e = p.items.front();
        if (e.restarted) {
          e.restarted->had_frame = std::exchange(p.had_frame, false);
          e.restarted->last_seq_before = p.last_seq;
          p.restart = std::move(e.restarted);
          p.mark_next = true;
          p.sequence.reset();  // the old broker's sequence is over
          p.sequence_end.reset();
        } else if (e.started) {
          p.sequence = std::move(e.started);
          p.sequence_end.reset();
        } else {
          p.sequence_end = e.finished;
          sequence_finished = true;
        }
        p.items.pop_front();
        if (sequence_finished) break;
      }
      if (sequence_finished) return std::nullopt;
      if (!p.items.empty()) {
        auto h = std::move(p.items.front().frame);
        p.items.pop_front();
        h->core = shared_from_this();
        p.had_frame = true;
        p.last_seq = h->seq;
        h->after_restart = std::exchange(p.mark_next, false);
        if (h->after_restart && p.restart) p.restart->first_seq_after = h->seq;
        return h;
      }
      if (it->second.ended) return std::nullopt;
      if (lost_ && !options_.reconnect) throw_lost();
      lost = lost_;
      seen = dispatched_;
      spin = p.spin;
      if (spin.count() > 0 && !p.segments.empty()) ring = p.segments.rbegin()->second;
    }
    if (lost) {
      if (!reconnect(deadline)) return std::nullopt;
      continue;
    }
    if (Clock::now() >= deadline && read_once) return std::nullopt;
    read_once = true;
    pump(deadline, seen, spin, ring.get());
  }
}

void Core::pump(Clock::time_point deadline, uint64_t seen, std::chrono::microseconds spin,
                const shm::Segment* ring) {
  std::lock_guard rl(read_mu_);
  {
    std::lock_guard lock(state_mu_);
    if (dispatched_ != seen || lost_) return;  // news arrived while we waited for read_mu_
  }
  if (const size_t want = in_flight_budget_.load(); want > reader_prepared_) {
    reader_.prepare(want);  // each frame in flight may pin a message of its own
    reader_prepared_ = want;
  }
  if (spin.count() > 0) {
    flush_releases();  // a spinning reader does not linger: it has a core to itself
    if (spin_until_readable(ring, std::min(deadline, Clock::now() + spin))) {
      auto area = reader_.write_area();
      const ssize_t n = receive(area);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      return dispatch_batch(n);
    }
  }
  reader_waiting_.store(true);
  // Releases linger while frames keep coming (the last wait was shorter than the linger): the
  // next frame arrives first, and the releases of many frames go in one message, so the broker
  // wakes once per batch instead of once per frame. At lower rates, or when nothing comes within
  // the linger, they go at once.
  const auto waited_from = Clock::now();
  bool readable = false;
  if (last_wait_ < kReleaseLinger && releases_pending()) {
    readable = wait_readable(std::min(deadline, waited_from + kReleaseLinger));
    if (!readable) flush_releases();
  } else {
    flush_releases();
  }
  if (!readable) readable = wait_readable(deadline);
  last_wait_ = Clock::now() - waited_from;
  reader_waiting_.store(false);
  if (!readable) return;  // timeout or EINTR: the caller checks its deadline

  auto area = reader_.write_area();
  ssize_t n = receive(area);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  dispatch_batch(n);
  // Frames that arrived for a stream unsubscribed meanwhile go back at once: nobody may come
  // back to this connection to carry them.
  if (gave_back_.exchange(false)) {
    try {
      flush_releases();
    } catch (const Error&) {
      // Lost broker: it dropped the holds already.
    }
  }
}

void Core::dispatch_batch(ssize_t n) {
  std::lock_guard lock(state_mu_);
  ++dispatched_;
  if (n <= 0) {
    lost_ = true;
    if (lost_reason_.empty())
      lost_reason_ = n == 0 ? "the broker closed the connection" : strerror(errno);
    return;
  }
  reader_.commit(size_t(n));
  wire::Received msg;
  for (;;) {
    auto st = reader_.next(msg);
    if (st == wire::FrameReader::Status::NeedMore) break;
    if (st != wire::FrameReader::Status::Message) {
      lost_ = true;
      lost_reason_ = "the broker sent a message this library cannot read";
      ::shutdown(fd_, SHUT_RDWR);
      break;
    }
    dispatch(msg);
  }
}

bool Core::wait_readable(Clock::time_point until) {
  const auto left = std::max(Clock::duration::zero(), until - Clock::now());
  const auto sec = std::chrono::duration_cast<std::chrono::seconds>(left);
  const timespec ts{time_t(sec.count()),
                    long(std::chrono::duration_cast<std::chrono::nanoseconds>(left - sec).count())};
  pollfd pfd{fd_, POLLIN, 0};
  return ::ppoll(&pfd, 1, &ts, nullptr) > 0;
}

bool Core::spin_until_readable(const shm::Segment* ring, Clock::time_point until) {
  const auto readable = [this] {
    pollfd pfd{fd_, POLLIN, 0};
    return ::poll(&pfd, 1, 0) > 0;
  };
  uint64_t published = ring ? ring->published_count() : 0;
  bool hot = false;  // a frame was committed: its Deliver is on its way
  for (uint32_t i = 0;; ++i) {
    if (ring && ring->published_count() != published) {
      published = ring->published_count();
      hot = true;
    }
    // Without news from the counter the socket is still looked at now and then: not every
    // message follows a commit.
    if ((hot || (i & 1023) == 0) && readable()) return true;
    if ((i & 63) == 0 && Clock::now() >= until) return false;
    __builtin_ia32_pause();
  }
}

bool Core::releases_pending() {
  std::lock_guard lock(release_mu_);
  return release_count_ > 0;
}

void Core::dispatch(const wire::Received& msg) {
  const auto* env = msg.envelope();
  if (env->message_type() == wire::Message::Deliver) return on_deliver(msg);
  if (const auto* l = env->message_as_Loaned()) {
    auto& q = loans_[l->stream() ? l->stream()->str() : ""];
    if (l->slots())
      for (const uint32_t slot : *l->slots()) q.push_back({l->gen(), slot});
    return;
  }
  if (env->message_type() == wire::Message::SequenceStarted ||
      env->message_type() == wire::Message::SequenceFinished)
    return on_sequence(*env);
  if (const auto* e = env->message_as_EndOfStream()) {
    if (auto it = pending_.find(e->stream() ? e->stream()->str() : ""); it != pending_.end())
      it->second.ended = true;
    return;
  }
  if (env->request_id() != 0) {
    // Frames of a new subscription may come in this very batch: they need its lane already.
    if (const auto* s = env->message_as_Subscribed())
      if (auto it = pending_.find(s->stream() ? s->stream()->string_view() : "");
          it != pending_.end()) {
        auto& p = it->second;
        p.lane = s->release_lane();
        p.epoch = s->release_epoch();
        if (std::exchange(p.resubscribing, false)) {
          BrokerRestart r;
          r.count = ++p.restarts;
          r.outage =
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - p.lost_at);
          r.reason = p.restart_reason;
          p.items.push_back({nullptr, nullptr, std::nullopt, std::move(r)});
        }
      }
    replies_[env->request_id()] = msg;
    return;
  }
  if (const auto* err = env->message_as_Error()) {
    std::string text = err->message() ? err->message()->str() : "error";
    if (err->code() == wire::ErrorCode::ShuttingDown || err->code() == wire::ErrorCode::SlowReader)
      lost_reason_ = text;
    else
      async_errors_.push_back(std::move(text));
  }
}

std::shared_ptr<shm::Segment> Core::mapped_segment(const std::string& stream, uint32_t gen) {
  std::lock_guard lock(state_mu_);
  auto p = pending_.find(stream);
  if (p == pending_.end())
    throw Error(Errc::InvalidArgument, "not subscribed to '" + stream + "' on this connection");
  if (!p->second.segments.empty()) gen = std::max(gen, p->second.segments.rbegin()->first);
  return segment_for(p->second, stream, gen);
}

std::shared_ptr<shm::Segment> Core::segment_for(Pending& p, const std::string& stream,
                                                uint32_t gen) {
  auto it = p.segments.find(gen);
  if (it != p.segments.end()) return it->second;
  // A new generation: older ones stay mapped only while a Frame holds them.
  std::erase_if(p.segments,
                [gen](const auto& kv) { return kv.first < gen && kv.second.use_count() == 1; });
  auto seg = std::shared_ptr<shm::Segment>(
      shm::Segment::open_readonly(shm::segment_name(instance_, stream, gen), gen));
  p.segments.emplace(gen, seg);
  return seg;
}

void Core::on_sequence(const wire::Envelope& env) {
  if (const auto* m = env.message_as_SequenceStarted()) {
    auto it = pending_.find(m->stream() ? m->stream()->str() : "");
    if (it == pending_.end()) return;
    auto sq = std::make_shared<Sequence>();
    sq->id = m->id();
    sq->stream = it->first;
    sq->first_seq = m->first_seq();
    try {
      sq->spec = wire::from_wire(m->spec());
    } catch (const std::invalid_argument& e) {
      async_errors_.push_back("sequence " + std::to_string(m->id()) + " of " + it->first +
                              ": the broker sent a bad description: " + e.what());
      return;
    }
    it->second.announced = sq;
    it->second.items.push_back({nullptr, std::move(sq), std::nullopt});
  } else if (const auto* f = env.message_as_SequenceFinished()) {
    auto it = pending_.find(f->stream() ? f->stream()->str() : "");
    if (it == pending_.end()) return;
    it->second.items.push_back(
        {nullptr, nullptr, SequenceEnd{f->id(), f->frames(), f->missed(), f->complete()}});
  }
}

void Core::on_deliver(const wire::Received& msg) {
  const auto* deliver = msg.envelope()->message_as_Deliver();
  if (!deliver || !deliver->frames()) return;
  for (const auto* f : *deliver->frames()) {
    const std::string_view stream = f->stream() ? f->stream()->string_view() : "";
    auto it = pending_.find(stream);
    // meta_nested_root() dereferences a missing meta: a FrameReady without one crashed here.
    const auto* m = f->meta() ? f->meta_nested_root() : nullptr;
    if (it == pending_.end() || !m) {  // unsubscribed meanwhile: give it straight back
      std::lock_guard rl(release_mu_);
      queue_release(stream, f->gen(), f->slot(), f->seq());
      gave_back_ = true;
      continue;
    }
    auto h = new_handle();
    try {
      h->segment = segment_for(it->second, it->first, f->gen());
      if (f->slot() >= h->segment->slots()) throw std::runtime_error("slot out of range");
    } catch (const std::exception& e) {  // give the frame back; tell the caller later
      std::lock_guard rl(release_mu_);
      queue_release(stream, f->gen(), f->slot(), f->seq());
      async_errors_.push_back("frame " + std::to_string(f->seq()) + " of " + std::string(stream) +
                              " could not be mapped: " + e.what());
      continue;
    }
    h->message = msg;
    h->meta = m;
    h->stream = stream;
    h->lane = it->second.lane;
    h->epoch = it->second.epoch;
    h->gen = f->gen();
    h->slot = f->slot();
    h->seq = f->seq();
    h->session = session_;
    auto slot = h->segment->slot(f->slot());
    h->pixels = slot.first(std::min<uint64_t>(m->bytes(), slot.size()));
    const auto& announced = it->second.announced;
    if (m->sequence_id() && announced && announced->id == m->sequence_id()) h->sequence = announced;
    it->second.items.push_back({std::move(h), nullptr, std::nullopt});
  }
}

std::unique_ptr<FrameHandle> Core::new_handle() {
  {
    std::lock_guard lock(release_mu_);
    if (!handles_.empty()) {
      auto h = std::move(handles_.back());
      handles_.pop_back();
      return h;
    }
  }
  return std::make_unique<FrameHandle>();
}

void Core::queue_release(std::string_view stream, uint32_t gen, uint32_t slot, uint64_t seq) {
  auto it = releases_.find(stream);
  if (it == releases_.end()) it = releases_.emplace(std::string(stream), 0).first;
  it->second.emplace_back(seq, gen, slot);
  ++release_count_;
}

void Core::release(std::unique_ptr<FrameHandle> h) {
  bool flush;
  {
    std::lock_guard lock(release_mu_);
    // A frame of a broker since lost has nobody to go back to.
    const auto written = h->session != session_ ? LaneWriter::Result::Written
                         : lanes_ && h->lane
                             ? lanes_->write(h->lane, h->epoch, h->gen, h->slot, h->seq)
                             : LaneWriter::Result::Full;
    if (written == LaneWriter::Result::Full)
      queue_release(h->stream, h->gen, h->slot, h->seq);
    else if (written == LaneWriter::Result::WrittenNudge && !std::exchange(nudge_, true))
      ++release_count_;
    flush =
        release_count_ > 0 && (release_count_ >= release_batch_.load() || reader_waiting_.load());
    // Back to the pool, holding nothing: the message and segment go now, the string keeps its
    // capacity for the next frame.
    h->core.reset();
    h->segment.reset();
    h->message.bytes.reset();
    h->sequence.reset();
    h->meta = nullptr;
    if (handles_.size() < kPooledHandles) handles_.push_back(std::move(h));
  }
  if (flush) {
    try {
      flush_releases();
    } catch (const Error&) {
      // Lost broker: it dropped the hold already.
    }
  }
}

void Core::release(const std::string& stream, uint32_t gen, uint32_t slot, uint64_t seq) {
  size_t count;
  {
    std::lock_guard lock(release_mu_);
    queue_release(stream, gen, slot, seq);
    count = release_count_;
  }
  if (count >= release_batch_.load() || reader_waiting_.load()) {
    try {
      flush_releases();
    } catch (const Error&) {
      // Lost broker: it dropped the hold already.
    }
  }
}

void Core::set_spin(const std::string& stream, std::chrono::microseconds spin) {
  std::lock_guard lock(state_mu_);
  if (auto it = pending_.find(stream); it != pending_.end()) it->second.spin = spin;
}

void Core::set_release_budget(const std::string& stream, uint32_t frames) {
  {
    // Room for every frame the broker may send ahead, and the sequence events among them.
    std::lock_guard lock(state_mu_);
    // No ring has more than 65536 slots (framebrokerd's `slots` limit): a larger budget from a
    // confused broker must not make the library reserve gigabytes.
    if (auto it = pending_.find(stream); it != pending_.end())
      it->second.items.reserve(std::min<size_t>(frames, 65536) * 2 + 16);
  }
  std::lock_guard lock(release_mu_);
  if (frames == 0)
    release_budgets_.erase(stream);
  else
    release_budgets_[stream] = frames;
  size_t batch = kReleaseBatch;
  size_t in_flight = 0;
  // Half the budget: the broker still has room to send while these wait.
  for (const auto& [s, budget] : release_budgets_) {
    batch = std::min<size_t>(batch, budget / 2);
    in_flight += budget;
  }
  release_batch_ = std::max<size_t>(batch, 1);
  // Handles for every frame that may be in flight, and a few for frames read ahead.
  in_flight_budget_ = in_flight + 8;
  while (handles_.size() < std::min<size_t>(in_flight + 8, kPooledHandles))
    handles_.push_back(std::make_unique<FrameHandle>());
}

void Core::flush_releases() {
  std::lock_guard flushing(flush_mu_);
  bool nudge;
  {
    std::lock_guard lock(release_mu_);
    if (release_count_ == 0) return;
    releases_.swap(flushing_);  // both keep their entries: no allocation next time
    release_count_ = 0;
    nudge = std::exchange(nudge_, false);
  }
  bool lost;
  {
    std::lock_guard lock(state_mu_);
    lost = lost_;
  }
  for (auto& [stream, refs] : flushing_) {
    if (refs.empty() || lost) {
      refs.clear();
      continue;
    }
    auto& fbb = release_fbb_;
    fbb.Clear();
    auto body = wire::CreateRelease(fbb, fbb.CreateString(stream), fbb.CreateVectorOfStructs(refs));
    wire::finish(fbb, 0, wire::Message::Release, body);
    refs.clear();
    send(fbb);
  }
  if (nudge && !lost) send_bytes(nudge_message_);
}

std::vector<std::string> Core::take_async_errors() {
  // What has arrived is read first: a publisher may not read its socket otherwise until its
  // next loan.
  uint64_t seen;
  bool lost;
  {
    std::lock_guard lock(state_mu_);
    seen = dispatched_;
    lost = lost_;
  }
  if (!lost) pump(Clock::now(), seen);
  std::lock_guard lock(state_mu_);
  return std::exchange(async_errors_, {});
}

}  // namespace framebroker::detail
