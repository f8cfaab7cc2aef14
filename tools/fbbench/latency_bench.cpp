// fbbench latency: per frame size and subscriber count, framebroker's commit -> receive latency
// next to the floor, copy-over-socket and iceoryx, each measured in this same run.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/table.hpp"
#include "fbbench/bench_commands.hpp"
#include "fbbench/fb_runs.hpp"
#include "fbbench/iceoryx_baseline.hpp"
#include "fbbench/process.hpp"
#include "fbbench/socket_baselines.hpp"

namespace framebroker::fbbench {

namespace {

using nlohmann::json;
using tools::fixed;

struct LatencyRow {
  uint64_t bytes = 0;
  int subscribers = 0;
  LatencyRun fb, floor, copy;
  std::optional<LatencyRun> iceoryx;
};

double ratio(double a, double b) {
  return b > 0 ? a / b : 0;
}

json to_json(const LatencyRow& r) {
  json j{{"size", size_label(r.bytes)},
         {"frame_bytes", r.bytes},
         {"slots", bench_slots(r.bytes)},
         {"subscribers", r.subscribers},
         {"frames", r.fb.receive.count},
         {"lost", r.fb.lost},
         {"p50_us", r.fb.receive.p50_us},
         {"p99_us", r.fb.receive.p99_us},
         {"p999_us", r.fb.receive.p999_us},
         {"max_us", r.fb.receive.max_us},
         {"p50_by_subscriber_us", r.fb.p50_by_subscriber_us},
         {"round_trip_p50_us", r.fb.round_trip.p50_us},
         {"round_trip_p99_us", r.fb.round_trip.p99_us},
         {"round_trip_p999_us", r.fb.round_trip.p999_us},
         {"round_trip_max_us", r.fb.round_trip.max_us},
         {"floor_p50_us", r.floor.receive.p50_us},
         {"floor_p99_us", r.floor.receive.p99_us},
         {"floor_p999_us", r.floor.receive.p999_us},
         {"floor_round_trip_p50_us", r.floor.round_trip.p50_us},
         {"floor_round_trip_p99_us", r.floor.round_trip.p99_us},
         {"copy_p50_us", r.copy.receive.p50_us},
         {"copy_p99_us", r.copy.receive.p99_us},
         {"copy_lost", r.copy.lost},
         {"p50_vs_floor", ratio(r.fb.receive.p50_us, r.floor.receive.p50_us)},
         {"p99_vs_floor", ratio(r.fb.receive.p99_us, r.floor.receive.p99_us)}};
  if (r.iceoryx) {
    j["iceoryx_p50_us"] = r.iceoryx->receive.p50_us;
    j["iceoryx_p99_us"] = r.iceoryx->receive.p99_us;
    j["p50_vs_iceoryx"] = ratio(r.fb.receive.p50_us, r.iceoryx->receive.p50_us);
  }
  return j;
}

std::string us(double v) {
  return fixed(v, v < 10 ? 1 : 0);
}

void print_table(const std::vector<LatencyRow>& rows, bool with_iceoryx) {
  std::vector<std::string> head{"size",      "subs",      "p50",      "p99",
                                "p99.9",     "max",       "rt p50",   "rt p99",
                                "floor p50", "floor p99", "copy p50", "copy p99"};
  if (with_iceoryx) head.insert(head.end(), {"iox p50", "iox p99"});
  head.insert(head.end(), {"p50/floor", "p99/floor", "lost"});
  tools::Table t(head);
  for (const auto& r : rows) {
    std::vector<std::string> cells{
        size_label(r.bytes),        std::to_string(r.subscribers), us(r.fb.receive.p50_us),
        us(r.fb.receive.p99_us),    us(r.fb.receive.p999_us),      us(r.fb.receive.max_us),
        us(r.fb.round_trip.p50_us), us(r.fb.round_trip.p99_us),    us(r.floor.receive.p50_us),
        us(r.floor.receive.p99_us), us(r.copy.receive.p50_us),     us(r.copy.receive.p99_us)};
    if (with_iceoryx)
      cells.insert(cells.end(), {r.iceoryx ? us(r.iceoryx->receive.p50_us) : "-",
                                 r.iceoryx ? us(r.iceoryx->receive.p99_us) : "-"});
    cells.insert(cells.end(), {fixed(ratio(r.fb.receive.p50_us, r.floor.receive.p50_us), 2),
                               fixed(ratio(r.fb.receive.p99_us, r.floor.receive.p99_us), 2),
                               std::to_string(r.fb.lost)});
    t.row(cells);
  }
  t.print(std::cout);
  std::cout
      << "Times in us. p50..max: commit -> the subscriber has the frame. rt: commit -> every\n"
         "subscriber released it. floor: bare shm + 32-byte index over a Unix socket.\n"
         "copy: the frame written through a Unix socket. iox: iceoryx with a WaitSet.\n";
}

void progress(const std::string& what, const LatencyRun& r) {
  std::cerr << "  " << what << ": p50 " << us(r.receive.p50_us) << " us, p99 "
            << us(r.receive.p99_us) << " us (" << r.receive.count << " samples, " << r.lost
            << " lost)\n";
}

}  // namespace

int run_latency_bench(const LatencyOptions& o) {
  return run_guarded([&] {
    const Pin pin = parse_pin(o.pin);
    const BenchSetup setup(o.sizes, o.broker);
    const BrokerSide& broker = setup.broker;
    std::string iceoryx_why;
    bool iceoryx = o.iceoryx;
    std::vector<LatencyRow> rows;
    for (const uint64_t bytes : setup.sizes) {
      for (const int n : o.subscribers) {
        LatencyParams p;
        p.frame_bytes = bytes;
        p.subscribers = n;
        p.rate = o.rate;
        p.frames = o.frames;
        p.warmup = o.warmup;
        p.pin = pin;
        LatencyRow row{bytes, n};
        const std::string what = size_label(bytes) + " x " + std::to_string(n);
        std::cerr << "latency " << what << " at " << o.rate << " fps, pin " << o.pin << ":\n";
        row.fb = fb_latency(broker, p);
        progress("framebroker", row.fb);
        check_interrupted();
        row.floor = floor_latency(p);
        progress("floor", row.floor);
        check_interrupted();
        row.copy = copy_latency(p);
        progress("copy", row.copy);
        check_interrupted();
        if (iceoryx) {
          row.iceoryx = iceoryx_latency(p, iceoryx_why);
          if (row.iceoryx) {
            progress("iceoryx", *row.iceoryx);
          } else {
            std::cerr << "  iceoryx: skipped: " << iceoryx_why << "\n";
            iceoryx = false;  // it will not come back within this run
          }
        }
        rows.push_back(std::move(row));
      }
    }
    const bool with_iceoryx =
        std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.iceoryx.has_value(); });
    if (o.json) {
      json j{{"mode", "latency"}, {"rate", o.rate},         {"frames", o.frames},
             {"pin", o.pin},      {"load", load_average()}, {"rows", json::array()}};
      if (!with_iceoryx && o.iceoryx) j["iceoryx_skipped"] = iceoryx_why;
      for (const auto& r : rows) j["rows"].push_back(to_json(r));
      std::cout << j.dump(2) << "\n";
    } else {
      print_table(rows, with_iceoryx);
      if (!with_iceoryx && o.iceoryx) std::cout << "iceoryx skipped: " << iceoryx_why << "\n";
    }
  });
}

}  // namespace framebroker::fbbench
