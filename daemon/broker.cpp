#include "broker.hpp"

#include <pwd.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "cameras/properties.hpp"
#include "framebroker/internal/sequence_wire.hpp"

namespace framebroker::daemon {

namespace asio = boost::asio;
using wire::ErrorCode;

namespace {

constexpr auto kStallLimit = std::chrono::seconds(10);
constexpr auto kHelloLimit = std::chrono::seconds(10);
constexpr size_t kMaxFramesPerDeliver = 256;
constexpr size_t kMaxDeliverBytes = 512 * 1024;

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

wire::PropertyType wire_type(cameras::PropertyType t) {
  switch (t) {
    case cameras::PropertyType::Int:
      return wire::PropertyType::Int;
    case cameras::PropertyType::Float:
      return wire::PropertyType::Float;
    case cameras::PropertyType::String:
      return wire::PropertyType::String;
    case cameras::PropertyType::Enum:
      return wire::PropertyType::Enum;
  }
  return wire::PropertyType::String;
}

ErrorCode error_for(cameras::PropertyError::Kind k) {
  switch (k) {
    case cameras::PropertyError::Kind::Unknown:
      return ErrorCode::UnknownProperty;
    case cameras::PropertyError::Kind::Busy:
      return ErrorCode::CameraBusy;
    default:
      return ErrorCode::InvalidValue;
  }
}

}  // namespace

Broker::Broker(asio::io_context& io, std::string instance, std::string socket_path)
    : io_(io),
      instance_(std::move(instance)),
      socket_path_(std::move(socket_path)),
      acceptor_(io),
      timer_(io),
      accept_retry_(io),
      own_uid_(::geteuid()) {
  // Grown here, not on the first tick inside a measurement: the per-frame paths reuse them.
  for (auto* v : {&deliver_ids_, &collect_ids_, &wake_ids_}) v->reserve(256);
  ready_.reserve(kMaxFramesPerDeliver);
}

void Broker::set_control_group(int gid, std::string name) {
  control_gid_ = gid;
  control_group_ = std::move(name);
}

Broker::~Broker() {
  std::lock_guard lock(state_);
  shutdown();
}

Stream& Broker::add_stream(StreamConfig config, std::unique_ptr<cameras::Camera> camera) {
  const std::string name = config.name;
  auto stream = std::make_unique<Stream>(io_, instance_, std::move(config), std::move(camera),
                                         [this](Stream& s) { deliver(s); });
  auto& ref = *stream;
  ref.share_state_lock(state_);
  ref.set_release_collector([this](Stream& s) { return collect_releases(s); });
  streams_[name] = std::move(stream);
  return ref;
}

bool Broker::remove_stream(const std::string& name) {
  auto it = streams_.find(name);
  if (it == streams_.end()) return false;
  it->second->stop();
  for (const auto sub : subscriptions_.of_stream(name)) {
    if (auto c = connections_.find(subscriptions_.find(sub)->connection); c != connections_.end())
      c->second->send_error(0, ErrorCode::UnknownStream,
                            "stream '" + name + "' was removed from the broker's configuration");
    end_subscription(sub, Ending::StreamGone);
  }
  streams_.erase(it);  // unlinks its segments
  return true;
}

void Broker::end_subscription(Subscriptions::Id sub, Ending why) {
  const auto* entry = subscriptions_.find(sub);
  if (!entry) return;
  Stream* s = find_stream(entry->stream);
  if (s && why == Ending::Unsubscribed)
    s->fanout().unsubscribe(sub);
  else if (s)
    s->fanout().remove(sub);
  settle(sub, s);
}

void Broker::settle(Subscriptions::Id sub, Stream* s) {
  if (s && s->fanout().has(sub)) return;
  if (const auto* entry = subscriptions_.find(sub))
    if (auto c = connections_.find(entry->connection); c != connections_.end())
      if (auto* lanes = c->second->release_lanes()) lanes->unassign(sub);
  subscriptions_.remove(sub);
}

Stream* Broker::find_stream(std::string_view name) {
  auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : it->second.get();
}

std::string Broker::stream_names() const {
  std::string out;
  for (const auto& [name, s] : streams_) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "(none)" : out;
}

void Broker::listen(int group) {
  using asio::local::stream_protocol;
  // The socket is made under a temporary name and renamed into place once it accepts, with its
  // mode and group set: a client that sees the path never gets ECONNREFUSED or EACCES from a
  // socket that is still being set up.
  const std::string building = socket_path_ + ".new";
  ::unlink(building.c_str());
  acceptor_.open(stream_protocol());
  acceptor_.bind(stream_protocol::endpoint(building));
  acceptor_.listen(64);
  std::filesystem::permissions(building, std::filesystem::perms(0660));
  if (group >= 0 && ::chown(building.c_str(), uid_t(-1), gid_t(group)) != 0) {
    const int err = errno;
    ::unlink(building.c_str());
    throw std::system_error(err, std::generic_category(),
                            "cannot give " + socket_path_ + " to group " + std::to_string(group));
  }
  if (::rename(building.c_str(), socket_path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(building.c_str());
    throw std::system_error(err, std::generic_category(), "cannot create " + socket_path_);
  }
  owns_socket_file_ = true;
  accept();
  tick();
}

void Broker::listen_on(int fd) {
  using asio::local::stream_protocol;
  acceptor_.assign(stream_protocol(), fd);
  socket_path_ = acceptor_.local_endpoint().path();
  owns_socket_file_ = false;
  accept();
  tick();
}

std::string Broker::summary() const {
  size_t running = 0;
  double fps = 0;
  for (const auto& [name, s] : streams_) {
    running += s->fps() > 0;
    fps += s->fps();
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "%zu stream%s (%zu delivering, %.1f frames/s), %zu client%s",
                streams_.size(), streams_.size() == 1 ? "" : "s", running, fps, connections_.size(),
                connections_.size() == 1 ? "" : "s");
  return buf;
}

void Broker::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, Connection::Socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || shutting_down_) return;
      // E.g. out of file descriptors: retrying at once would spin.
      spdlog::error("accept: {}; retrying in 100 ms", ec.message());
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](boost::system::error_code e) {
        if (!e && !shutting_down_) accept();
      });
      return;
    }
    adopt(std::move(socket));
    accept();
  });
}

void Broker::adopt(Connection::Socket socket) {
  std::lock_guard lock(state_);
  auto conn = std::make_shared<Connection>(static_cast<MessageHandler&>(*this), std::move(socket),
                                           next_connection_id_++, state_, io_.get_executor());
  conn->set_queue_limit(limits_.queued_bytes);
  connections_[conn->id()] = conn;
  conn->start();
}

void Broker::tick() {
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - last_tick_).count();
  last_tick_ = now;
  for (auto& [name, s] : streams_) s->tick(dt);
  // Releases nobody asked to hear of at once (a camera that stopped by itself, say) are
  // collected here at the latest.
  drain_all_lanes();
  for (auto& [name, s] : streams_) update_release_wake(*s);
  after_slots_freed();
  for (auto& [id, c] : connections_) {
    if (!c->greeted() && std::chrono::system_clock::now() - c->connected_at() > kHelloLimit) {
      spdlog::warn("client {} (pid {}) never said Hello; closing", id, c->peer().pid);
      c->close("no Hello");
    } else if (c->stalled(now, kStallLimit)) {
      spdlog::warn("client {} ({} pid {}) has not read its socket for {} s; disconnecting", id,
                   c->client_name(), c->peer().pid, kStallLimit.count());
      c->close("stopped reading its socket");
    }
  }
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    std::lock_guard lock(state_);
    if (!shutting_down_) tick();
  });
}

void Broker::shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  for (auto& [name, s] : streams_) s->stop();
  for (auto& [id, c] : connections_)
    c->say_goodbye(ErrorCode::ShuttingDown, "the broker is shutting down");
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  timer_.cancel();
  accept_retry_.cancel();
  for (auto& [id, c] : connections_) {
    for (const auto sub : subscriptions_.of_connection(id))
      end_subscription(sub, Ending::Disconnected);
    c->close("broker shutting down");
  }
  connections_.clear();
  streams_.clear();  // unlinks every segment
  if (owns_socket_file_) ::unlink(socket_path_.c_str());
}

// ---- messages ----

void Broker::on_message(Connection& c, const wire::Received& msg) {
  const auto* env = msg.envelope();
  const uint32_t rid = env->request_id();
  if (!env->message()) {  // the Verifier accepts a union type with no body
    c.send_error(rid, ErrorCode::Malformed, "message has a type but no body");
    return c.close_after_flush();
  }
  if (!c.greeted() && env->message_type() != wire::Message::Hello) {
    c.send_error(rid, ErrorCode::Malformed, "the first message must be Hello");
    return c.close_after_flush();
  }
  // Whatever the client wrote to its lanes came before this message (an Unsubscribe, say).
  drain_lanes(c);
  if (!c.open()) return;
  switch (env->message_type()) {
    case wire::Message::Hello:
      return on_hello(c, rid, *env->message_as_Hello());
    case wire::Message::Subscribe:
      return on_subscribe(c, rid, *env->message_as_Subscribe());
    case wire::Message::Unsubscribe:
      return on_unsubscribe(c, *env->message_as_Unsubscribe());
    case wire::Message::Release:
      return on_release(c, *env->message_as_Release());
    case wire::Message::StatusRequest:
      return on_status(c, rid, *env->message_as_StatusRequest());
    case wire::Message::CameraCommand:
      return on_camera(c, rid, *env->message_as_CameraCommand());
    case wire::Message::DiscoverRequest:
      return on_discover(c, rid, *env->message_as_DiscoverRequest());
    case wire::Message::Advertise:
      return on_advertise(c, rid, *env->message_as_Advertise());
    case wire::Message::Commit:
      return on_commit(c, *env->message_as_Commit());
    case wire::Message::BeginSequence:
      return on_begin_sequence(c, rid, *env->message_as_BeginSequence());
    case wire::Message::EndSequence:
      return on_end_sequence(c, *env->message_as_EndSequence());
    case wire::Message::ReleasesWritten:
      return;  // drained above
    case wire::Message::ClientStats:
      return on_client_stats(c, rid, *env->message_as_ClientStats());
    default:
      c.send_error(
          rid, ErrorCode::Malformed,
          std::string("a client may not send ") + wire::EnumNameMessage(env->message_type()));
  }
}

void Broker::on_hello(Connection& c, uint32_t rid, const wire::Hello& m) {
  if (c.greeted()) return c.send_error(rid, ErrorCode::Malformed, "Hello was already said");
  if (m.protocol_version() != wire::kProtocolVersion) {
    spdlog::warn("client {} (pid {}) speaks protocol {}, not {}; closing", c.id(), c.peer().pid,
                 m.protocol_version(), wire::kProtocolVersion);
    c.send_error(rid, ErrorCode::ProtocolMismatch,
                 "this broker speaks protocol version " + std::to_string(wire::kProtocolVersion) +
                     ", the client " + std::to_string(m.protocol_version()) +
                     "; use a client library of the same release");
    return c.close_after_flush();
  }
  // Clients count once they said Hello (one that never does is closed by the tick), so the
  // refusal answers the Hello and the client library reports it.
  const auto greeted = std::count_if(connections_.begin(), connections_.end(),
                                     [](const auto& kv) { return kv.second->greeted(); });
  if (size_t(greeted) >= limits_.clients) {
    spdlog::warn("client {} (pid {}) refused: {} clients connected (max_clients)", c.id(),
                 c.peer().pid, greeted);
    c.send_error(rid, ErrorCode::LimitReached,
                 "the broker serves at most " + std::to_string(limits_.clients) +
                     " clients at once (max_clients in its config); try again later");
    return c.close_after_flush();
  }
  c.greet(str(m.client_name()), str(m.role()));
  spdlog::info("client {} connected: {} ({}, pid {}, uid {})", c.id(), c.client_name(), c.role(),
               c.peer().pid, c.peer().uid);
  std::unique_ptr<ReleaseLanes> lanes;
  if (m.release_lanes()) {
    try {
      lanes = std::make_unique<ReleaseLanes>();
    } catch (const std::exception& e) {
      spdlog::warn("client {}: no release lanes ({}); it releases over the socket", c.id(),
                   e.what());
    }
  }
  const auto welcome = [&](bool with_lanes) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body =
        wire::CreateWelcome(fbb, wire::kProtocolVersion, fbb.CreateString(FRAMEBROKER_VERSION),
                            fbb.CreateString(instance_), c.id(), with_lanes ? shm::kLanes : 0,
                            with_lanes ? shm::kLaneRecords : 0);
    wire::finish(fbb, rid, wire::Message::Welcome, body);
    return fbb;
  };
  // Hello is the first message, so nothing waits in the outbound queue and the fd can go.
  if (lanes && c.send_with_fd(welcome(true), lanes->fd())) {
    lanes->close_fd();
    c.set_release_lanes(std::move(lanes));
    return;
  }
  c.send(welcome(false));
}

void Broker::on_subscribe(Connection& c, uint32_t rid, const wire::Subscribe& m) {
  const std::string name = str(m.stream());
  Stream* s = find_stream(name);
  if (!s)
    return c.send_error(rid, ErrorCode::UnknownStream,
                        "no stream named '" + name + "'; streams: " + stream_names());
  if (s->ended())
    return c.send_error(rid, ErrorCode::UnknownStream,
                        "stream '" + name + "' has ended (its producer went away)");
  auto& fan = s->fanout();
  // A subscriber that unsubscribed but still holds frames comes back under the same id.
  const auto existing = subscriptions_.find(c.id(), name);
  if (existing && fan.active(*existing))
    return c.send_error(rid, ErrorCode::AlreadySubscribed, "already subscribed to " + name);
  if (!existing) {
    size_t mine = 0;
    subscriptions_.for_connection(c.id(), [&](auto, const auto&) { ++mine; });
    if (mine >= limits_.subscriptions)
      return c.send_error(rid, ErrorCode::LimitReached,
                          "a client may have at most " + std::to_string(limits_.subscriptions) +
                              " subscriptions (max_subscriptions in the broker's config)");
  }
  const Subscriptions::Id id = existing ? *existing : subscriptions_.add(c.id(), name);
  SubscriberOptions opt;
  opt.mode = m.mode() == wire::Mode::Latest ? SubscriberMode::Latest : SubscriberMode::Every;
  opt.max_hold = std::min(m.max_hold(), fan.max_hold_cap());
  opt.window = std::min(m.window(), s->current()->ring->size());
  opt.from_latest = m.from_latest();
  opt = fan.subscribe(id, opt);
  // A late joiner learns the running sequence before any frame.
  if (auto started = s->sequence_started()) fan.queue_message_to(id, started, 0);

  std::optional<ReleaseLanes::Assignment> lane;
  if (auto* lanes = c.release_lanes()) {
    lane = lanes->assign(id);
    lanes->set_wake(id, releases_wanted_at_once(*s));
  }

  const Generation& g = *s->current();
  flatbuffers::FlatBufferBuilder fbb;
  auto body =
      wire::CreateSubscribed(fbb, fbb.CreateString(name), fbb.CreateString(g.segment->name()),
                             g.gen, g.ring->size(), g.segment->slot_bytes(), m.mode(), opt.max_hold,
                             opt.window, lane ? lane->lane : 0, lane ? lane->epoch : 0);
  wire::finish(fbb, rid, wire::Message::Subscribed, body);
  c.send(fbb);
  spdlog::info("client {} ({}) subscribed to {} as subscriber {} ({}, max_hold {}, window {})",
               c.id(), c.client_name(), name, id,
               opt.mode == SubscriberMode::Latest ? "latest" : "every", opt.max_hold, opt.window);
  deliver_to(c, *s, id);
}

void Broker::on_unsubscribe(Connection& c, const wire::Unsubscribe& m) {
  const std::string name = str(m.stream());
  const auto sub = subscriptions_.find(c.id(), name);
  Stream* s = find_stream(name);
  if (!sub || !s || !s->fanout().active(*sub))
    return c.send_error(0, ErrorCode::NotSubscribed, "not subscribed to '" + name + "'");
  end_subscription(*sub, Ending::Unsubscribed);
}

void Broker::on_release(Connection& c, const wire::Release& m) {
  const std::string_view name = m.stream() ? m.stream()->string_view() : std::string_view();
  Stream* s = find_stream(name);
  if (!s)
    return c.send_error(
        0, ErrorCode::UnknownStream,
        "release for unknown stream '" + std::string(name) + "'; streams: " + stream_names());
  const auto found = subscriptions_.find(c.id(), name);
  if (!found)
    return c.send_error(0, ErrorCode::NotHeld,
                        "release on " + std::string(name) + ", which this client holds nothing of");
  const Subscriptions::Id sub = *found;
  std::string bad;
  size_t bad_count = 0;
  if (m.refs()) {
    for (const auto* r : *m.refs()) {
      if (s->fanout().release(sub, {r->gen(), r->slot(), r->seq()}) == ReleaseResult::Ok) continue;
      if (++bad_count <= 4)
        bad += (bad.empty() ? "" : ", ") +
               ("gen " + std::to_string(r->gen()) + " slot " + std::to_string(r->slot()) + " seq " +
                std::to_string(r->seq()));
    }
  }
  if (bad_count) {
    spdlog::warn("client {} ({} pid {}): {} release(s) of frames it does not hold on {}", c.id(),
                 c.client_name(), c.peer().pid, bad_count, name);
    c.send_error(0, ErrorCode::NotHeld,
                 "released " + std::to_string(bad_count) + " frame(s) of " + std::string(name) +
                     " this client does not hold (double release or wrong slot/seq): " + bad);
  }
  after_release(c, *s, sub);
}

void Broker::after_release(Connection& c, Stream& s, Subscriptions::Id sub) {
  settle(sub, &s);  // an unsubscribed subscriber may have let go of its last frame
  deliver_to(c, s, sub);
  if (s.ended()) finish_if_ended(c, s, sub);
  after_slots_freed(&s);
}

// ---- release lanes ----

void Broker::drain_lanes(Connection& c) {
  auto* lanes = c.release_lanes();
  if (!lanes || lanes->dead()) return;
  // A lane is one subscriber's, and drain_all walks them in order: the subscribers that got
  // frames back, without allocating.
  std::array<Subscriptions::Id, shm::kLanes> touched{};
  size_t n_touched = 0;
  std::string problem;
  const auto released = lanes->drain_all(
      [&](uint64_t sub, const FrameRef& f) {
        const auto* entry = subscriptions_.find(sub);
        Stream* s = entry ? find_stream(entry->stream) : nullptr;
        if (!s || s->fanout().release(sub, f) != ReleaseResult::Ok) return false;
        if (n_touched == 0 || touched[n_touched - 1] != sub) touched[n_touched++] = sub;
        return true;
      },
      problem);
  if (!released) lane_violation(c, problem);
  for (size_t i = 0; i < n_touched; ++i)
    if (const auto* entry = subscriptions_.find(touched[i]))
      if (Stream* s = find_stream(entry->stream)) after_release(c, *s, touched[i]);
}

void Broker::drain_all_lanes() {
  for (auto& [id, c] : connections_) drain_lanes(*c);
}

uint32_t Broker::collect_releases(Stream& s) {
  s.fanout().subscriber_ids(collect_ids_);
  uint32_t total = 0;
  std::string problem;
  for (const uint64_t sub : collect_ids_) {
    const auto* entry = subscriptions_.find(sub);
    if (!entry) continue;
    auto conn = connections_.find(entry->connection);
    if (conn == connections_.end()) continue;
    auto* lanes = conn->second->release_lanes();
    if (!lanes) continue;
    const auto n = lanes->drain(
        sub, [&](const FrameRef& f) { return s.fanout().release(sub, f) == ReleaseResult::Ok; },
        problem);
    if (!n) {
      lane_violation(*conn->second, problem);
      continue;
    }
    if (*n) settle(sub, &s);
    total += *n;
  }
  return total;
}

void Broker::lane_violation(Connection& c, const std::string& problem) {
  spdlog::warn("client {} ({} pid {}): {}; disconnecting it", c.id(), c.client_name(), c.peer().pid,
               problem);
  c.fail(ErrorCode::NotHeld, problem + "; the broker disconnected this client");
}

bool Broker::releases_wanted_at_once(Stream& s) {
  return s.ended() || publication_of(s.name()) || !s.camera().running() ||
         s.config().overflow == Overflow::Block;
}

void Broker::update_release_wake(Stream& s) {
  const bool wake = releases_wanted_at_once(s);
  s.fanout().subscriber_ids(wake_ids_);
  for (const uint64_t sub : wake_ids_) {
    const auto* entry = subscriptions_.find(sub);
    if (!entry) continue;
    if (auto c = connections_.find(entry->connection); c != connections_.end())
      if (auto* lanes = c->second->release_lanes()) lanes->set_wake(sub, wake);
  }
  // What was written before the flag went up would otherwise wait for the tick: a viewer that
  // let go of its frame just before the camera stopped is owed the newest one now.
  if (wake && collect_releases(s)) deliver(s);
}

void Broker::after_slots_freed(Stream* only) {
  if (only) {
    // A camera's stream has no publication: nothing to look at.
    if (auto p = publications_.find(only->name()); p != publications_.end()) {
      publish_committed(*only, p->second);
      grant_loans(*only, p->second);  // none once it ended
      reap_ended();
    }
    return;
  }
  for (auto& [stream, p] : publications_) {
    if (auto* s = find_stream(stream)) {
      publish_committed(*s, p);
      grant_loans(*s, p);
    }
  }
  reap_ended();
}

bool Broker::may_control(const Connection& c) const {
  const PeerCredentials& p = c.peer();
  return control_gid_ < 0 || p.uid == 0 || p.uid == own_uid_ || p.in_group(gid_t(control_gid_));
}

void Broker::on_camera(Connection& c, uint32_t rid, const wire::CameraCommand& m) {
  const std::string cam = str(m.camera());
  if ((m.op() == wire::CameraOp::Start || m.op() == wire::CameraOp::Stop) && publication_of(cam))
    return c.send_error(rid, ErrorCode::CameraBusy,
                        "stream " + cam + " is published by client " + publication_of(cam)->client +
                            ": it starts and stops with its producer");
  if (m.op() != wire::CameraOp::List && m.op() != wire::CameraOp::Get && !may_control(c)) {
    const struct passwd* pw = ::getpwuid(c.peer().uid);
    const std::string user = pw ? pw->pw_name : std::to_string(c.peer().uid);
    spdlog::warn("client {} ({}, pid {}, user {}) may not {} {}: not in control group {}", c.id(),
                 c.client_name(), c.peer().pid, user, wire::EnumNameCameraOp(m.op()), cam,
                 control_group_);
    return c.send_error(rid, ErrorCode::PermissionDenied,
                        "camera control on this broker is limited to group " + control_group_ +
                            "; ask an administrator to add user " + user + " to it (usermod -aG " +
                            control_group_ + " " + user + "), then log in again");
  }
  Stream* s = find_stream(cam);
  if (!s)
    return c.send_error(rid, ErrorCode::UnknownCamera,
                        "no camera named '" + cam + "'; cameras: " + stream_names());
  auto& camera = s->camera();
  flatbuffers::FlatBufferBuilder fbb;
  std::string value;
  std::vector<flatbuffers::Offset<wire::PropertyInfo>> props;
  try {
    switch (m.op()) {
      case wire::CameraOp::List:
        for (const auto& p : camera.properties().all()) {
          std::vector<flatbuffers::Offset<flatbuffers::String>> allowed;
          for (const auto& a : p.allowed) allowed.push_back(fbb.CreateString(a));
          props.push_back(wire::CreatePropertyInfo(
              fbb, fbb.CreateString(p.name), wire_type(p.type), fbb.CreateString(p.value),
              fbb.CreateString(p.unit), p.min.value_or(0), p.max.value_or(0),
              p.min.has_value() || p.max.has_value(), fbb.CreateVector(allowed), p.read_only));
        }
        break;
      case wire::CameraOp::Get:
        value = camera.get(str(m.property()));
        break;
      case wire::CameraOp::Set:
        camera.set(str(m.property()), str(m.value()));
        value = camera.get(str(m.property()));
        spdlog::info("client {} ({}) set {}.{} = {}", c.id(), c.client_name(), cam,
                     str(m.property()), value);
        break;
      case wire::CameraOp::Start:
        if (m.sequence()) {
          start_sequence(c, *s, m);
          break;
        }
        s->start(m.frames() < 0 ? std::nullopt : std::optional<uint64_t>(uint64_t(m.frames())));
        update_release_wake(*s);
        spdlog::info("client {} ({}) started {}", c.id(), c.client_name(), cam);
        break;
      case wire::CameraOp::Stop:
        s->stop();
        update_release_wake(*s);
        spdlog::info("client {} ({}) stopped {}", c.id(), c.client_name(), cam);
        break;
      case wire::CameraOp::Snap:
        s->snap();
        break;
    }
  } catch (const cameras::PropertyError& e) {
    return c.send_error(rid, error_for(e.kind), e.what());
  } catch (const std::invalid_argument& e) {
    return c.send_error(rid, ErrorCode::InvalidValue, e.what());
  } catch (const cameras::CameraError& e) {
    return c.send_error(rid, ErrorCode::CameraBusy, e.what());
  } catch (const std::exception& e) {
    spdlog::error("camera {}: {}", cam, e.what());
    return c.send_error(rid, ErrorCode::CameraFailed, e.what());
  }
  auto body =
      wire::CreateCameraReply(fbb, fbb.CreateString(cam), fbb.CreateString(value),
                              props.empty() ? 0 : fbb.CreateVector(props), camera.running());
  wire::finish(fbb, rid, wire::Message::CameraReply, body);
  c.send(fbb);
}

void Broker::start_sequence(Connection& c, Stream& s, const wire::CameraCommand& m) {
  SequenceSpec spec = wire::from_wire(m.sequence());
  if (m.frames() >= 0 && uint64_t(m.frames()) != spec.frames())
    throw std::invalid_argument("the axes " + spec.axes_text() + " make " +
                                std::to_string(spec.frames()) + " frames, not " +
                                std::to_string(m.frames()) + " (--frames)");
  if (s.camera().running())
    throw cameras::CameraError("camera " + s.name() + " is already running");
  const auto sq = s.begin_sequence(next_sequence_id_++, std::move(spec));
  try {
    s.start(sq->spec.frames());
  } catch (...) {
    s.end_sequence();  // its subscribers see it start and finish with nothing in it
    deliver(s);
    throw;
  }
  update_release_wake(s);
  spdlog::info("client {} ({}) started {}: sequence {} ({}, order {}, {} frames)", c.id(),
               c.client_name(), s.name(), sq->id, sq->spec.axes_text(), sq->spec.order(),
               sq->spec.frames());
  deliver(s);
}

// ---- delivery ----

void Broker::deliver(Stream& s) {
  s.fanout().subscriber_ids(deliver_ids_);
  for (const uint64_t sub : deliver_ids_) {
    const auto* entry = subscriptions_.find(sub);
    if (!entry) continue;
    auto conn = connections_.find(entry->connection);
    if (conn != connections_.end()) deliver_to(*conn->second, s, sub);
  }
}

void Broker::deliver_to(Connection& c, Stream& s, uint64_t subscriber) {
  if (!c.open() || !c.has_room()) return;  // stays queued until the socket drains
  auto& fbb = deliver_fbb_;
  fbb.Clear();
  ready_.clear();
  auto stream = fbb.CreateString(s.name());
  const auto send_batch = [&] {
    if (ready_.empty()) return;
    wire::finish(fbb, 0, wire::Message::Deliver,
                 wire::CreateDeliver(fbb, fbb.CreateVector(ready_)));
    c.send(fbb);
    fbb.Clear();
    ready_.clear();
    stream = fbb.CreateString(s.name());
  };
  // Batched, but well inside the 1 MiB message limit whatever the tags weigh. A sequence event
  // due before the next frame ends the batch and goes in its place in the order.
  while (ready_.size() < kMaxFramesPerDeliver && fbb.GetSize() < kMaxDeliverBytes) {
    if (const auto message = s.fanout().take_message(subscriber)) {
      send_batch();
      c.send(std::span<const uint8_t>(*message));
      continue;
    }
    const auto next = s.fanout().take_next(subscriber);
    if (!next) break;
    const FrameRef& f = *next;
    const auto& meta = s.meta_of(f);
    ready_.push_back(wire::CreateFrameReady(fbb, stream, f.gen, f.slot, f.seq,
                                            fbb.CreateVector(meta.data(), meta.size())));
  }
  send_batch();
}

void Broker::on_writable(Connection& c) {
  subscriptions_.for_connection(c.id(), [&](Subscriptions::Id sub, const std::string& stream) {
    if (auto* s = find_stream(stream)) deliver_to(c, *s, sub);
  });
  // A subscriber of an ended stream that just got its last queued frames is told now (not
  // inside the walk above: ending a subscription edits the registry).
  for (const auto& [stream, p] : publications_) {
    if (!p.ended()) continue;
    if (const auto sub = subscriptions_.find(c.id(), stream))
      if (auto* s = find_stream(stream)) finish_if_ended(c, *s, *sub);
  }
}

void Broker::on_closed(Connection& c) {
  // Every hold this client had goes back now: no heartbeat, no timeout.
  for (const auto sub : subscriptions_.of_connection(c.id()))
    end_subscription(sub, Ending::Disconnected);
  std::vector<std::string> produced;
  for (const auto& [stream, p] : publications_)
    if (p.connection == c.id()) produced.push_back(stream);
  for (const auto& stream : produced) end_publication(stream);
  after_slots_freed();
  if (c.greeted())
    spdlog::info("client {} ({} pid {}) disconnected", c.id(), c.client_name(), c.peer().pid);
  connections_.erase(c.id());
}

}  // namespace framebroker::daemon
