#include <nlohmann/json.hpp>

#include "framebroker/status.hpp"

namespace framebroker {

std::string to_json(const Status& s, int indent) {
  using nlohmann::json;
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
         {"fps", st.fps},
         {"latest_seq", st.latest_seq},
         {"overflow", st.overflow},
         {"segment", st.segment},
         {"format", {{"width", st.width}, {"height", st.height}, {"pixel_type", st.pixel_type}}}});
  }
  j["subscribers"] = json::array();
  for (const auto& sub : s.subscribers) {
    j["subscribers"].push_back({{"id", sub.id},
                                {"client", sub.client},
                                {"pid", sub.pid},
                                {"uid", sub.uid},
                                {"stream", sub.stream},
                                {"mode", sub.mode},
                                {"max_hold", sub.max_hold},
                                {"window", sub.window},
                                {"held", sub.held},
                                {"queued", sub.queued},
                                {"delivered", sub.delivered},
                                {"missed", sub.missed},
                                {"conflated", sub.conflated}});
  }
  j["cameras"] = json::array();
  for (const auto& c : s.cameras) {
    j["cameras"].push_back(
        {{"name", c.name}, {"driver", c.driver}, {"running", c.running}, {"frames", c.frames}});
  }
  return j.dump(indent);
}

}  // namespace framebroker
