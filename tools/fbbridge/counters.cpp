#include "fbbridge/counters.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace framebroker::fbbridge {

const char* to_string(LinkState s) {
  switch (s) {
    case LinkState::Up:
      return "up";
    case LinkState::Down:
      return "down";
    default:
      return "waiting";
  }
}

std::string StatsLine::line(const char* side, const BridgeCounters& c) {
  const auto now = std::chrono::steady_clock::now();
  const uint64_t frames = c.frames.load(), bytes = c.bytes.load();
  double secs = last_ == std::chrono::steady_clock::time_point{}
                    ? 0
                    : std::chrono::duration<double>(now - last_).count();
  const double fps = secs > 0 ? double(frames - last_frames_) / secs : 0;
  const double gbps = secs > 0 ? double(bytes - last_bytes_) / secs / 1e9 : 0;
  fps_ = fps;
  bytes_per_s_ = gbps * 1e9;
  last_ = now;
  last_frames_ = frames;
  last_bytes_ = bytes;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "fbbridge %s: link %s, %u peers, %llu frames (%.1f/s, %.3f GB/s), gaps %llu, "
                "sessions %llu, disconnects %llu, bad %llu, conflated %llu, in flight %u "
                "(max %u), lag %.3f ms",
                side, to_string(c.link.load()), c.peers.load(), (unsigned long long)frames, fps,
                gbps, (unsigned long long)c.gaps.load(), (unsigned long long)c.sessions.load(),
                (unsigned long long)c.disconnects.load(), (unsigned long long)c.bad_messages.load(),
                (unsigned long long)c.conflated.load(), c.in_flight.load(), c.in_flight_max.load(),
                c.lag_us.load() < 0 ? -1.0 : double(c.lag_us.load()) / 1000.0);
  return buf;
}

std::string StatsLine::json(const char* side, const BridgeCounters& c) {
  return nlohmann::json{{"side", side},
                        {"link", to_string(c.link.load())},
                        {"frames", c.frames.load()},
                        {"bytes", c.bytes.load()},
                        {"raw_bytes", c.raw_bytes.load()},
                        {"gaps", c.gaps.load()},
                        {"gap_events", c.gap_events.load()},
                        {"sessions", c.sessions.load()},
                        {"disconnects", c.disconnects.load()},
                        {"bad_messages", c.bad_messages.load()},
                        {"conflated", c.conflated.load()},
                        {"no_credit_waits", c.no_credit_waits.load()},
                        {"peers", c.peers.load()},
                        {"in_flight_max", c.in_flight_max.load()},
                        {"streams", c.streams.load()},
                        {"lag_us_max", c.lag_us_max.load()}}
      .dump();
}

std::string StatsLine::report(const char* side, const BridgeCounters& c,
                              nlohmann::json extra) const {
  nlohmann::json j = nlohmann::json::parse(json(side, c));
  j["frames_per_s"] = fps_;
  j["bytes_per_s"] = bytes_per_s_;
  j["lag_us"] = c.lag_us.load();
  j["in_flight"] = c.in_flight.load();
  j.update(extra);
  // Stream and peer names come from elsewhere: replaced, never thrown about, if not UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace framebroker::fbbridge
