#include <nlohmann/json.hpp>

#include "framebroker/status.hpp"

namespace framebroker {

namespace {

using nlohmann::json;

json slot_map_json(const SlotMapStatus& m) {
  json slots = json::array();
  for (const auto& s : m.slots) {
    json holders = json::array();
    for (const auto& h : s.holders)
      holders.push_back({{"subscriber", h.subscriber},
                         {"client", h.client},
                         {"pid", h.pid},
                         {"queued", h.queued}});
    slots.push_back({{"index", s.index},
                     {"state", s.state},
                     {"seq", s.seq < 0 ? json(nullptr) : json(s.seq)},
                     {"age_ms", s.age_ms},
                     {"holders", holders}});
  }
  return {{"stream", m.stream}, {"gen", m.gen}, {"slots", slots}};
}

// Names come from other clients (a Hello's client name is any string): bytes that are not UTF-8
// are replaced, never thrown about, so one odd client cannot break status for everyone.
std::string dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string to_json(const Status& s, int indent) {
  json j;
  j["broker"] = {{"instance", s.broker.instance},
                 {"pid", s.broker.pid},
                 {"version", s.broker.version},
                 {"uptime_s", s.broker.uptime_s},
                 {"clients", s.broker.clients}};
  j["streams"] = json::array();
  for (const auto& st : s.streams) {
    j["streams"].push_back(
        {{"name", st.name},
         {"camera", st.camera},
         {"gen", st.gen},
         {"slots", st.slots},
         {"slot_bytes", st.slot_bytes},
         {"free", st.free},
         {"writing", st.writing},
         {"ready", st.ready},
         {"published", st.published},
         {"dropped", st.dropped},
         {"dropped_reasons", {{"ring_full", st.dropped_ring_full}, {"camera", st.dropped_camera}}},
         {"fps", st.fps},
         {"mb_per_s", st.mb_per_s},
         {"frame_bytes", st.frame_bytes},
         {"latest_seq", st.latest_seq},
         {"overflow", st.overflow},
         {"segment", st.segment},
         {"retired_gens", st.retired_gens},
         {"recycle",
          {{"frames", st.recycled},
           {"p50_us", st.recycle_p50_us},
           {"p99_us", st.recycle_p99_us},
           {"p999_us", st.recycle_p999_us},
           {"max_us", st.recycle_max_us}}},
         // width and height also at the top: scripts look for them next to "published".
         {"width", st.width},
         {"height", st.height},
         {"format", {{"width", st.width}, {"height", st.height}, {"pixel_type", st.pixel_type}}},
         {"producer",
          {{"kind", st.producer}, {"client", st.producer_client}, {"pid", st.producer_pid}}},
         {"state", st.state}});
    if (const auto& q = st.sequence) {
      json index = json::object();
      for (size_t i = 0; i < q->spec.axes.size() && i < q->last_index.size(); ++i)
        index[std::string(1, q->spec.axes[i].name)] = q->last_index[i];
      json sizes = json::object();
      for (const auto& a : q->spec.axes) sizes[std::string(1, a.name)] = a.size;
      j["streams"].back()["sequence"] = {{"id", q->id},
                                         {"axes", q->spec.axes_text()},
                                         {"order", q->spec.order()},
                                         {"sizes", sizes},
                                         {"channels", q->spec.channels},
                                         {"frames", q->spec.frames()},
                                         {"positions", q->positions},
                                         {"missed", q->missed},
                                         {"last_index", index},
                                         {"running", q->running},
                                         {"complete", q->complete}};
    }
  }
  j["subscribers"] = json::array();
  for (const auto& sub : s.subscribers) {
    j["subscribers"].push_back({{"id", sub.id},
                                {"client", sub.client},
                                {"pid", sub.pid},
                                {"uid", sub.uid},
                                {"gid", sub.gid},
                                {"stream", sub.stream},
                                {"mode", sub.mode},
                                {"max_hold", sub.max_hold},
                                {"window", sub.window},
                                {"held", sub.held},
                                {"queued", sub.queued},
                                {"delivered", sub.delivered},
                                {"missed", sub.missed},
                                {"conflated", sub.conflated},
                                {"last_seq", sub.last_seq},
                                {"lag", sub.lag},
                                {"connected_unix_ms", sub.connected_unix_ms},
                                {"role", sub.role}});
  }
  j["cameras"] = json::array();
  for (const auto& c : s.cameras) {
    j["cameras"].push_back({{"name", c.name},
                            {"driver", c.driver},
                            {"running", c.running},
                            {"state", c.state},
                            {"error", c.error},
                            {"frames", c.frames},
                            {"fps", c.fps}});
  }
  if (s.slot_map) j["slot_map"] = slot_map_json(*s.slot_map);
  // Clients that reported their own counters (an fbbridge's link): "stats" is their object.
  j["clients"] = json::array();
  for (const auto& c : s.clients) {
    json stats = json::parse(c.stats, nullptr, false);
    if (stats.is_discarded()) stats = c.stats;  // the broker checked it; kept rather than lost
    j["clients"].push_back(
        {{"id", c.id}, {"client", c.client}, {"pid", c.pid}, {"role", c.role}, {"stats", stats}});
  }
  return dump(j, indent);
}

std::string to_json(const SlotMapStatus& m, int indent) {
  return dump(slot_map_json(m), indent);
}

}  // namespace framebroker
