// What `fbbench latency` and `fbbench throughput` both report about the broker, in their JSON
// and tables alike.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/table.hpp"
#include "fbbench/fb_runs.hpp"

namespace framebroker::fbbench {

inline double ratio(double a, double b) {
  return b > 0 ? a / b : 0;
}

// `prefix`p50_us, p99_us, p999_us and max_us of a latency distribution.
inline void add_percentiles(nlohmann::json& row, const std::string& prefix, const LatencyStats& s) {
  row[prefix + "p50_us"] = s.p50_us;
  row[prefix + "p99_us"] = s.p99_us;
  row[prefix + "p999_us"] = s.p999_us;
  row[prefix + "max_us"] = s.max_us;
}

// The keys that open every latency and throughput row: which frames, how many subscribers.
inline nlohmann::json row_head(const FrameShape& frame, int subscribers) {
  return {{"size", frame.label},
          {"width", frame.width},
          {"height", frame.height},
          {"frame_bytes", frame.bytes()},
          {"slots", bench_slots(frame.bytes())},
          {"subscribers", subscribers}};
}

// The broker's cost over the measured window: CPU per frame (alone: no subscriber; per
// subscriber: what each adds), the socket thread's wake-ups per frame and every thread's totals.
inline void add_broker_cost(nlohmann::json& row, const BrokerCost& c, int subscribers) {
  row["broker_frames"] = c.frames;
  row["broker_cpu_us_per_frame"] = c.cpu_us_per_frame;
  row["broker_cpu_us_per_frame_alone"] = c.cpu_us_per_frame_alone;
  row["broker_cpu_us_per_frame_per_subscriber"] = c.per_subscriber(subscribers);
  row["broker_wakeups_per_frame"] = c.socket_wakeups_per_frame();
  auto& threads = row["broker_threads"] = nlohmann::json::array();
  for (const ThreadSample& t : c.threads)
    threads.push_back({{"tid", t.tid},
                       {"name", t.name},
                       {"socket_thread", t.tid == c.pid},
                       {"voluntary_switches", t.voluntary},
                       {"involuntary_switches", t.involuntary},
                       {"cpu_us", double(t.cpu_ns) / 1e3}});
}

// The table's cells for the same: CPU us per frame per subscriber, socket-thread wake-ups per
// frame.
inline std::vector<std::string> broker_cost_cells(const BrokerCost& c, int subscribers) {
  return {tools::fixed(c.per_subscriber(subscribers), 2),
          tools::fixed(c.socket_wakeups_per_frame(), 2)};
}

inline const char* const kBrokerCostLegend =
    "cpu/sub: the broker's CPU time per frame, less the camera's own (no subscriber), per\n"
    "subscriber, in us. wake/fr: voluntary context switches of the broker's socket thread\n"
    "(its main thread) per frame published: how often a frame woke it.\n";

}  // namespace framebroker::fbbench
