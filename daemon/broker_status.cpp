// The broker's snapshot for fbctl: streams, subscribers, cameras, and on
// request one stream's slot map. It is built on the socket thread from state
// that thread owns, so nothing is locked; the camera threads never wait for it.
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "broker.hpp"
#include "framebroker/frame_meta_generated.h"

#include "framebroker/internal/sequence_wire.hpp"

namespace framebroker::daemon {

namespace {

using Clock = std::chrono::steady_clock;

uint64_t now_mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

const char* camera_state(Stream& s) {
  if (s.camera().running()) return "running";
  if (!s.error().empty() || !s.camera().last_error().empty()) return "error";
  return "idle";
}

}  // namespace

flatbuffers::Offset<wire::SlotMap> Broker::slot_map(flatbuffers::FlatBufferBuilder& fbb,
                                                    Stream& s) {
  Generation& g = *s.current();
  const auto cache = s.fanout().latest();
  const uint64_t now = now_mono_ns();
  std::vector<flatbuffers::Offset<wire::SlotInfo>> slots;
  for (uint32_t i = 0; i < g.ring->size(); ++i) {
    const SlotState state = g.ring->state(i);
    int64_t seq = -1;
    double age_ms = 0;
    // The metadata of a READY slot is complete (the state is stored after it).
    if (state == SlotState::Ready && !g.meta[i].empty()) {
      const auto* m = flatbuffers::GetRoot<meta::FrameMeta>(g.meta[i].data());
      seq = int64_t(m->seq());
      age_ms = double(now - std::min(now, m->mono_ns())) / 1e6;
    }
    std::vector<flatbuffers::Offset<wire::SlotHolder>> holders;
    if (cache && cache->gen == g.gen && cache->slot == i)
      holders.push_back(wire::CreateSlotHolder(fbb, 0, fbb.CreateSharedString("(latest cache)"),
                                               int32_t(getpid()), false));
    for (const auto& h : s.fanout().holders(g.gen, i)) {
      std::string client = "?";
      int32_t pid = 0;
      if (const auto* entry = subscriptions_.find(h.subscriber)) {
        if (auto conn = connections_.find(entry->connection); conn != connections_.end()) {
          client = conn->second->client_name();
          pid = conn->second->peer().pid;
        }
      }
      holders.push_back(
          wire::CreateSlotHolder(fbb, h.subscriber, fbb.CreateSharedString(client), pid, h.queued));
    }
    slots.push_back(wire::CreateSlotInfo(fbb, i, fbb.CreateSharedString(to_string(state)), seq,
                                         age_ms, fbb.CreateVector(holders)));
  }
  return wire::CreateSlotMap(fbb, fbb.CreateString(s.name()), g.gen, fbb.CreateVector(slots));
}

namespace {

flatbuffers::Offset<wire::SequenceStatus> sequence_status(flatbuffers::FlatBufferBuilder& fbb,
                                                          const Stream& s) {
  const auto p = s.sequence_progress();
  if (!p.sequence) return 0;
  const auto& spec = p.sequence->spec;
  std::vector<uint32_t> last(spec.axes.size());
  if (p.last_position >= 0) spec.index_of(uint64_t(p.last_position), last);
  return wire::CreateSequenceStatus(fbb, p.sequence->id, wire::to_wire(fbb, spec), p.positions,
                                    p.positions - p.frames, fbb.CreateVector(last), p.running,
                                    p.complete);
}

}  // namespace

void Broker::on_client_stats(Connection& c, uint32_t rid, const wire::ClientStats& m) {
  const std::string_view json = m.json() ? m.json()->string_view() : std::string_view();
  if (json.size() > kMaxClientStats)
    return c.send_error(rid, wire::ErrorCode::InvalidValue,
                        "ClientStats of " + std::to_string(json.size()) +
                            " bytes refused: at most " + std::to_string(kMaxClientStats) +
                            " bytes; the last stats are kept");
  const auto first = json.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || json[first] != '{' || !nlohmann::json::accept(json))
    return c.send_error(rid, wire::ErrorCode::InvalidValue,
                        "ClientStats refused: not a JSON object; the last stats are kept");
  c.set_stats(json);
}

void Broker::on_status(Connection& c, uint32_t rid, const wire::StatusRequest& m) {
  const auto t0 = Clock::now();
  // Counts and holders as the clients see them: what they released is taken first.
  drain_all_lanes();
  Stream* mapped = nullptr;
  if (m.slots_of() && m.slots_of()->size() > 0) {
    mapped = find_stream(m.slots_of()->str());
    if (!mapped)
      return c.send_error(
          rid, wire::ErrorCode::UnknownStream,
          "no stream named '" + m.slots_of()->str() + "'; streams: " + stream_names());
  }
  flatbuffers::FlatBufferBuilder fbb(16 * 1024);
  const double uptime = std::chrono::duration<double>(Clock::now() - started_).count();
  auto broker = wire::CreateBrokerInfo(fbb, fbb.CreateString(instance_), int32_t(getpid()),
                                       fbb.CreateString(FRAMEBROKER_VERSION), uptime,
                                       uint32_t(connections_.size()));
  std::vector<flatbuffers::Offset<wire::StreamInfo>> streams;
  std::vector<flatbuffers::Offset<wire::CameraInfo>> cams;
  for (auto& [name, s] : streams_) {
    const Generation& g = *s->current();
    const auto counts = g.ring->counts();
    const Publication* pub = publication_of(name);
    const auto fmt = s->camera().format();
    const uint64_t frame_bytes = fmt.frame_bytes();
    auto format = wire::CreateFrameFormat(fbb, fmt.width, fmt.height,
                                          fbb.CreateString(cameras::to_string(fmt.pixel_type)));
    auto sequence = sequence_status(fbb, *s);
    streams.push_back(wire::CreateStreamInfo(
        fbb, fbb.CreateString(name), fbb.CreateString(s->camera().name()), g.gen, g.ring->size(),
        g.segment->slot_bytes(), counts.free, counts.writing, counts.ready, s->published(),
        s->dropped(), s->fps(), s->latest_seq(), format,
        fbb.CreateString(to_string(s->config().overflow)), fbb.CreateString(g.segment->name()),
        s->dropped_full(), s->dropped_camera(), frame_bytes, s->fps() * double(frame_bytes) / 1e6,
        uint32_t(s->retired_generations()), s->recycle().count(),
        s->recycle().quantile_ns(0.5) / 1e3, s->recycle().quantile_ns(0.99) / 1e3,
        s->recycle().quantile_ns(0.999) / 1e3, double(s->recycle().max_ns()) / 1e3,
        fbb.CreateString(pub ? "client" : "camera"), fbb.CreateString(pub ? pub->client : ""),
        pub ? int32_t(pub->pid) : 0,
        fbb.CreateString(pub ? (pub->ended() ? "ended" : "live") : camera_state(*s)), sequence));
    const std::string error =
        s->camera().last_error().empty() ? s->error() : s->camera().last_error();
    cams.push_back(wire::CreateCameraInfo(
        fbb, fbb.CreateString(s->camera().name()), fbb.CreateString(s->camera().driver()),
        s->camera().running(), s->camera().frames_committed(), fbb.CreateString(camera_state(*s)),
        fbb.CreateString(error), s->fps()));
  }
  std::vector<flatbuffers::Offset<wire::SubscriberInfo>> subs;
  for (const auto& [id, ref] : subscriptions_.all()) {
    auto conn = connections_.find(ref.connection);
    Stream* s = find_stream(ref.stream);
    if (conn == connections_.end() || !s || !s->fanout().has(id)) continue;
    const auto& cc = *conn->second;
    const auto opt = s->fanout().options(id);
    const auto ctr = s->fanout().counters(id);
    const int64_t latest = s->latest_seq();
    const int64_t lag = ctr.last_seq < 0 ? latest + 1 : latest - ctr.last_seq;
    const int64_t connected_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(cc.connected_at().time_since_epoch())
            .count();
    subs.push_back(wire::CreateSubscriberInfo(
        fbb, id, fbb.CreateString(cc.client_name()), cc.peer().pid, cc.peer().uid,
        fbb.CreateString(ref.stream),
        opt.mode == SubscriberMode::Latest ? wire::Mode::Latest : wire::Mode::Every, opt.max_hold,
        opt.window, ctr.held, ctr.queued, ctr.delivered, ctr.missed, ctr.conflated, ctr.last_seq,
        lag, connected_ms, cc.peer().gid, fbb.CreateString(cc.role())));
  }
  // Client stats share the status message's 1 MiB with everything else: past a budget, a
  // client is listed with a note instead of its stats.
  std::vector<flatbuffers::Offset<wire::ClientInfo>> reporting;
  size_t stats_bytes = 0;
  for (const auto& [id, conn] : connections_) {
    if (conn->stats().empty()) continue;
    stats_bytes += conn->stats().size();
    const bool fits = stats_bytes <= kClientStatsBudget;
    reporting.push_back(wire::CreateClientInfo(
        fbb, id, fbb.CreateString(conn->client_name()), conn->peer().pid,
        fbb.CreateString(conn->role()),
        fbb.CreateString(
            fits ? conn->stats()
                 : std::string(R"({"omitted":"too many client stats for one status"})"))));
  }
  auto map = mapped ? slot_map(fbb, *mapped) : flatbuffers::Offset<wire::SlotMap>();
  auto body = wire::CreateStatus(fbb, broker, fbb.CreateVector(streams), fbb.CreateVector(subs),
                                 fbb.CreateVector(cams), map, fbb.CreateVector(reporting));
  wire::finish(fbb, rid, wire::Message::Status, body);
  spdlog::debug("status for client {} built in {:.1f} us ({} bytes)", c.id(),
                std::chrono::duration<double, std::micro>(Clock::now() - t0).count(),
                fbb.GetSize());
  c.send(fbb);
}

}  // namespace framebroker::daemon
