#include "framebroker/client.hpp"

#include <nlohmann/json.hpp>

#include "core.hpp"
#include "framebroker/internal/sequence_wire.hpp"

namespace framebroker {

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(10);
// A scan waits for GigE answers, and for any scan another client asked for first.
constexpr auto kDiscoverTimeout = std::chrono::seconds(60);

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

SlotMapStatus slot_map_from_wire(const wire::SlotMap& m) {
  SlotMapStatus out{str(m.stream()), m.gen(), {}};
  if (!m.slots()) return out;
  for (const auto* sl : *m.slots()) {
    SlotStatus o{sl->index(), str(sl->state()), sl->seq(), sl->age_ms(), {}};
    if (sl->holders())
      for (const auto* h : *sl->holders())
        o.holders.push_back({h->subscriber(), str(h->client()), h->pid(), h->queued()});
    out.slots.push_back(std::move(o));
  }
  return out;
}

Status status_from_wire(const wire::Status& w) {
  Status s;
  if (const auto* b = w.broker()) {
    s.broker = {str(b->instance()), b->pid(), str(b->version()), b->uptime_s(), b->clients()};
  }
  if (w.streams()) {
    for (const auto* st : *w.streams()) {
      StreamStatus o;
      o.name = str(st->name());
      o.camera = str(st->camera());
      o.gen = st->gen();
      o.slots = st->slots();
      o.slot_bytes = st->slot_bytes();
      o.free = st->free();
      o.writing = st->writing();
      o.ready = st->ready();
      o.published = st->published();
      o.dropped = st->dropped();
      o.dropped_ring_full = st->dropped_ring_full();
      o.dropped_camera = st->dropped_camera();
      o.frame_bytes = st->frame_bytes();
      o.mb_per_s = st->mb_per_s();
      o.retired_gens = st->retired_gens();
      o.recycled = st->recycled();
      o.recycle_p50_us = st->recycle_p50_us();
      o.recycle_p99_us = st->recycle_p99_us();
      o.recycle_p999_us = st->recycle_p999_us();
      o.recycle_max_us = st->recycle_max_us();
      o.fps = st->fps();
      o.latest_seq = st->latest_seq();
      if (const auto* f = st->format()) {
        o.width = f->width();
        o.height = f->height();
        o.pixel_type = str(f->pixel_type());
      }
      o.overflow = str(st->overflow());
      o.segment = str(st->segment());
      o.producer = str(st->producer());
      o.producer_client = str(st->producer_client());
      o.producer_pid = st->producer_pid();
      o.state = str(st->state());
      if (const auto* q = st->sequence()) {
        SequenceStatus sq;
        sq.id = q->id();
        try {
          sq.spec = wire::from_wire(q->spec());
        } catch (const std::invalid_argument&) {
          // Shown without its axes rather than not at all.
        }
        sq.positions = q->positions();
        sq.missed = q->missed();
        if (q->last_index()) sq.last_index.assign(q->last_index()->begin(), q->last_index()->end());
        sq.running = q->running();
        sq.complete = q->complete();
        o.sequence = std::move(sq);
      }
      s.streams.push_back(std::move(o));
    }
  }
  if (w.subscribers()) {
    for (const auto* sub : *w.subscribers()) {
      SubscriberStatus o;
      o.id = sub->id();
      o.client = str(sub->client());
      o.pid = sub->pid();
      o.uid = sub->uid();
      o.stream = str(sub->stream());
      o.mode = sub->mode() == wire::Mode::Latest ? "latest" : "every";
      o.max_hold = sub->max_hold();
      o.window = sub->window();
      o.held = sub->held();
      o.queued = sub->queued();
      o.delivered = sub->delivered();
      o.missed = sub->missed();
      o.conflated = sub->conflated();
      o.last_seq = sub->last_seq();
      o.lag = sub->lag();
      o.connected_unix_ms = sub->connected_unix_ms();
      o.gid = sub->gid();
      o.role = str(sub->role());
      s.subscribers.push_back(std::move(o));
    }
  }
  if (w.cameras()) {
    for (const auto* c : *w.cameras())
      s.cameras.push_back({str(c->name()), str(c->driver()), c->running(), c->frames(),
                           str(c->state()), str(c->error()), c->fps()});
  }
  if (const auto* m = w.slot_map()) s.slot_map = slot_map_from_wire(*m);
  if (w.clients())
    for (const auto* c : *w.clients())
      s.clients.push_back({c->id(), str(c->client()), c->pid(), str(c->role()), str(c->stats())});
  return s;
}

wire::Received camera_request(detail::Core& core, const std::string& camera, wire::CameraOp op,
                              const std::string& property = {}, const std::string& value = {},
                              int64_t frames = -1, const SequenceSpec* sequence = nullptr) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateCameraCommand(fbb, fbb.CreateString(camera), op,
                                        fbb.CreateString(property), fbb.CreateString(value), frames,
                                        sequence ? wire::to_wire(fbb, *sequence) : 0);
  const uint32_t id = core.next_request_id();
  wire::finish(fbb, id, wire::Message::CameraCommand, body);
  return core.request(fbb, id, wire::Message::CameraReply, kRequestTimeout);
}

const char* type_name(wire::PropertyType t) {
  switch (t) {
    case wire::PropertyType::Int:
      return "int";
    case wire::PropertyType::Float:
      return "float";
    case wire::PropertyType::String:
      return "string";
    case wire::PropertyType::Enum:
      return "enum";
  }
  return "unknown";
}

}  // namespace

Client Client::connect(const ConnectOptions& options) {
  Client c(detail::Core::connect(options));
  c.connect_options_ = options;
  c.connect_options_.socket_path = c.core_->socket_path();
  return c;
}

Subscription Client::subscribe(const std::string& stream, const SubscribeOptions& o) {
  // Frames may follow Subscribed at once: register the stream before asking.
  if (!core_->add_subscription(stream))
    throw Error(Errc::InvalidArgument, "this client is already subscribed to " + stream);
  try {
    return Subscription(core_, core_->subscribe(stream, o));
  } catch (...) {
    core_->remove_subscription(stream);
    throw;
  }
}

Status Client::status(const std::string& slots_of) {
  flatbuffers::FlatBufferBuilder fbb;
  const uint32_t id = core_->next_request_id();
  auto body =
      wire::CreateStatusRequest(fbb, slots_of.empty() ? flatbuffers::Offset<flatbuffers::String>()
                                                      : fbb.CreateString(slots_of));
  wire::finish(fbb, id, wire::Message::StatusRequest, body);
  auto reply = core_->request(fbb, id, wire::Message::Status, kRequestTimeout);
  return status_from_wire(*reply.envelope()->message_as_Status());
}

std::vector<DeviceInfo> Client::discover_cameras(bool include_fake) {
  flatbuffers::FlatBufferBuilder fbb;
  const uint32_t id = core_->next_request_id();
  wire::finish(fbb, id, wire::Message::DiscoverRequest,
               wire::CreateDiscoverRequest(fbb, include_fake));
  auto reply = core_->request(fbb, id, wire::Message::DiscoverReply, kDiscoverTimeout);
  std::vector<DeviceInfo> out;
  const auto* r = reply.envelope()->message_as_DiscoverReply();
  if (!r->devices()) return out;
  for (const auto* d : *r->devices())
    out.push_back({str(d->id()), str(d->physical_id()), str(d->vendor()), str(d->model()),
                   str(d->serial()), str(d->protocol()), str(d->address())});
  return out;
}

const std::string& Client::socket_path() const {
  return core_->socket_path();
}
const std::string& Client::instance() const {
  return core_->instance();
}
const std::string& Client::broker_version() const {
  return core_->broker_version();
}
void Client::report_stats(std::string_view json_object) {
  constexpr size_t kMaxStats = 8 * 1024;  // the broker's limit (daemon/broker.hpp)
  if (json_object.size() > kMaxStats)
    throw Error(Errc::InvalidArgument, "report_stats: " + std::to_string(json_object.size()) +
                                           " bytes, at most " + std::to_string(kMaxStats));
  const auto first = json_object.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || json_object[first] != '{' ||
      !nlohmann::json::accept(json_object))
    throw Error(Errc::InvalidArgument, "report_stats: not a JSON object");
  flatbuffers::FlatBufferBuilder fbb(json_object.size() + 128);
  auto body = wire::CreateClientStats(fbb, fbb.CreateString(json_object));
  wire::finish(fbb, 0, wire::Message::ClientStats, body);
  core_->send(fbb);
}

void Client::flush() {
  core_->flush_releases();
}
std::vector<std::string> Client::take_async_errors() {
  return core_->take_async_errors();
}

void CameraControl::start(std::optional<uint64_t> frames) {
  camera_request(*core_, name_, wire::CameraOp::Start, {}, {}, frames ? int64_t(*frames) : -1);
}

void CameraControl::start(const SequenceSpec& spec) {
  try {
    spec.check();
  } catch (const std::invalid_argument& e) {
    throw Error(Errc::InvalidArgument, e.what());
  }
  camera_request(*core_, name_, wire::CameraOp::Start, {}, {}, int64_t(spec.frames()), &spec);
}

void CameraControl::stop() {
  camera_request(*core_, name_, wire::CameraOp::Stop);
}

void CameraControl::snap() {
  camera_request(*core_, name_, wire::CameraOp::Snap);
}

std::string CameraControl::get(const std::string& prop) {
  auto reply = camera_request(*core_, name_, wire::CameraOp::Get, prop);
  return str(reply.envelope()->message_as_CameraReply()->value());
}

void CameraControl::set(const std::string& prop, const std::string& value) {
  camera_request(*core_, name_, wire::CameraOp::Set, prop, value);
}

std::vector<PropertyInfo> CameraControl::properties() {
  auto reply = camera_request(*core_, name_, wire::CameraOp::List);
  std::vector<PropertyInfo> out;
  const auto* r = reply.envelope()->message_as_CameraReply();
  if (!r->properties()) return out;
  for (const auto* p : *r->properties()) {
    PropertyInfo info;
    info.name = str(p->name());
    info.type = type_name(p->type());
    info.value = str(p->value());
    info.unit = str(p->unit());
    if (p->has_limits()) {
      info.min = p->min();
      info.max = p->max();
    }
    if (p->allowed())
      for (const auto* a : *p->allowed()) info.allowed.push_back(a->str());
    info.read_only = p->read_only();
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace framebroker
