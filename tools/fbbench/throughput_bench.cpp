// fbbench throughput: per frame size and subscriber count, how many frames framebroker moves
// (and what it costs the broker) next to the floor and copy-over-socket, in this same run.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/table.hpp"
#include "fbbench/bench_commands.hpp"
#include "fbbench/fb_runs.hpp"
#include "fbbench/process.hpp"
#include "fbbench/socket_baselines.hpp"

namespace framebroker::fbbench {

namespace {

using nlohmann::json;
using tools::fixed;

constexpr double kBaselineSeconds = 10;

struct ThroughputRow {
  uint64_t bytes = 0;
  int subscribers = 0;
  ThroughputRun fb, floor, copy;
  BrokerCost cost;
};

json to_json(const ThroughputRow& r) {
  return {
      {"size", size_label(r.bytes)},
      {"frame_bytes", r.bytes},
      {"slots", bench_slots(r.bytes)},
      {"subscribers", r.subscribers},
      {"seconds", r.fb.seconds},
      {"fps", r.fb.fps()},
      {"gbps", r.fb.gbps(r.bytes)},
      {"delivered", r.fb.delivered},
      {"dropped", r.fb.dropped},
      {"broker_cpu_us_per_frame", r.cost.cpu_us_per_frame},
      {"broker_cpu_us_per_frame_alone", r.cost.cpu_us_per_frame_alone},
      {"broker_cpu_us_per_frame_per_subscriber", r.cost.per_subscriber(r.subscribers)},
      {"broker_rss_start_kb", r.cost.rss_start_kb},
      {"broker_rss_end_kb", r.cost.rss_end_kb},
      {"copy_fps", r.copy.fps()},
      {"copy_gbps", r.copy.gbps(r.bytes)},
      {"floor_fps", r.floor.fps()},
      {"floor_gbps", r.floor.gbps(r.bytes)},
      {"fps_vs_copy", r.copy.fps() > 0 ? r.fb.fps() / r.copy.fps() : 0},
      {"gbps_vs_copy", r.copy.gbps(r.bytes) > 0 ? r.fb.gbps(r.bytes) / r.copy.gbps(r.bytes) : 0},
      {"gbps_vs_floor",
       r.floor.gbps(r.bytes) > 0 ? r.fb.gbps(r.bytes) / r.floor.gbps(r.bytes) : 0}};
}

void print_table(const std::vector<ThroughputRow>& rows) {
  tools::Table t({"size", "subs", "fps", "GB/s", "dropped", "cpu us/frame", "alone", "per sub",
                  "rss MB", "copy fps", "copy GB/s", "floor fps", "floor GB/s", "x copy fps",
                  "x floor GB/s"});
  for (const auto& r : rows) {
    const json j = to_json(r);
    t.row({size_label(r.bytes), std::to_string(r.subscribers), fixed(r.fb.fps(), 0),
           fixed(r.fb.gbps(r.bytes), 2), std::to_string(r.fb.dropped),
           fixed(r.cost.cpu_us_per_frame, 2), fixed(r.cost.cpu_us_per_frame_alone, 2),
           fixed(r.cost.per_subscriber(r.subscribers), 2),
           fixed(double(r.cost.rss_start_kb) / 1024, 0) + "->" +
               fixed(double(r.cost.rss_end_kb) / 1024, 0),
           fixed(r.copy.fps(), 0), fixed(r.copy.gbps(r.bytes), 2), fixed(r.floor.fps(), 0),
           fixed(r.floor.gbps(r.bytes), 2), fixed(j["fps_vs_copy"].get<double>(), 1),
           fixed(j["gbps_vs_floor"].get<double>(), 2)});
  }
  t.print(std::cout);
  std::cout << "fps: frames the first (every) subscriber got per second; GB/s: summed over\n"
               "subscribers. cpu us/frame: the broker's CPU time per published frame; alone:\n"
               "the same with no subscriber (the camera's own cost); per sub: what each\n"
               "subscriber adds, (cpu - alone) / subscribers.\n"
               "floor: bare shm + 32-byte index and ack over Unix sockets, every subscriber\n"
               "gets every frame. copy: each frame written through each subscriber's socket.\n";
}

}  // namespace

int run_throughput_bench(const ThroughputOptions& o) {
  return run_guarded([&] {
    const Pin pin = parse_pin(o.pin);
    if (o.read != "none" && o.read != "all")
      throw std::invalid_argument("--read must be none or all, not '" + o.read + "'");
    const BenchSetup setup(o.sizes, o.broker);
    const BrokerSide& broker = setup.broker;
    std::vector<ThroughputRow> rows;
    for (const uint64_t bytes : setup.sizes) {
      for (const int n : o.subscribers) {
        ThroughputParams p;
        p.frame_bytes = bytes;
        p.subscribers = n;
        p.seconds = o.seconds;
        p.read_all = o.read == "all";
        p.pin = pin;
        ThroughputRow row{bytes, n};
        std::cerr << "throughput " << size_label(bytes) << " x " << n << ", read " << o.read
                  << ", pin " << o.pin << ":\n";
        row.fb = fb_throughput(broker, p, o.rate, row.cost);
        std::cerr << "  framebroker: " << fixed(row.fb.fps(), 0) << " fps, " << row.fb.dropped
                  << " dropped, broker " << fixed(row.cost.cpu_us_per_frame, 2) << " us/frame\n";
        check_interrupted();
        ThroughputParams baseline = p;  // a long run is for the broker's RSS; baselines need less
        baseline.seconds = std::min(p.seconds, kBaselineSeconds);
        row.floor = floor_throughput(baseline);
        std::cerr << "  floor: " << fixed(row.floor.fps(), 0) << " fps\n";
        check_interrupted();
        row.copy = copy_throughput(baseline);
        std::cerr << "  copy: " << fixed(row.copy.fps(), 0) << " fps\n";
        check_interrupted();
        rows.push_back(row);
      }
    }
    if (o.json) {
      json j{{"mode", "throughput"}, {"seconds", o.seconds}, {"read", o.read},
             {"rate", o.rate},       {"pin", o.pin},         {"load", load_average()},
             {"rows", json::array()}};
      for (const auto& r : rows) j["rows"].push_back(to_json(r));
      std::cout << j.dump(2) << "\n";
    } else {
      print_table(rows);
    }
  });
}

}  // namespace framebroker::fbbench
