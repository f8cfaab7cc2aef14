// fbbench latency: per frame size and subscriber count, framebroker's commit -> receive latency
// next to the floor, copy-over-socket and iceoryx, each measured in this same run.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/table.hpp"
#include "fbbench/bench_commands.hpp"
#include "fbbench/bench_report.hpp"
#include "fbbench/fb_runs.hpp"
#include "fbbench/iceoryx_baseline.hpp"
#include "fbbench/process.hpp"
#include "fbbench/socket_baselines.hpp"

namespace framebroker::fbbench {

namespace {

using nlohmann::json;
using tools::fixed;

struct LatencyRow {
  FrameShape frame;
  int subscribers = 0;
  LatencyRun fb, floor, copy;
  // framebroker again, its subscribers releasing over the socket as before the release lanes
  // (FRAMEBROKER_RELEASE_LANES=off): the baseline of the wake-ups per frame.
  LatencyRun fb_socket_releases;
  BrokerCost cost_socket_releases;
  std::optional<LatencyRun> iceoryx, iceoryx_busy;
  std::string iceoryx_busy_skipped;  // with --spin, why there is no busy-poll figure
  BrokerCost cost;
};

json to_json(const LatencyRow& r, bool spin) {
  json j = row_head(r.frame, r.subscribers);
  j.update(json{{"frames", r.fb.receive.count},
                {"lost", r.fb.lost},
                {"p50_by_subscriber_us", r.fb.p50_by_subscriber_us},
                {"copy_lost", r.copy.lost},
                {"p50_vs_floor", ratio(r.fb.receive.p50_us, r.floor.receive.p50_us)},
                {"p99_vs_floor", ratio(r.fb.receive.p99_us, r.floor.receive.p99_us)}});
  add_percentiles(j, "", r.fb.receive);
  add_percentiles(j, "round_trip_", r.fb.round_trip);
  add_percentiles(j, "floor_", r.floor.receive);
  add_percentiles(j, "floor_round_trip_", r.floor.round_trip);
  add_percentiles(j, "copy_", r.copy.receive);
  add_broker_cost(j, r.cost, r.subscribers);
  add_percentiles(j, "socket_releases_", r.fb_socket_releases.receive);
  j["socket_releases_wakeups_per_frame"] = r.cost_socket_releases.socket_wakeups_per_frame();
  j["socket_releases_cpu_us_per_frame_per_subscriber"] =
      r.cost_socket_releases.per_subscriber(r.subscribers);
  j["wakeups_vs_socket_releases"] =
      ratio(r.cost.socket_wakeups_per_frame(), r.cost_socket_releases.socket_wakeups_per_frame());
  if (r.iceoryx) {
    add_percentiles(j, "iceoryx_", r.iceoryx->receive);
    j["p50_vs_iceoryx"] = ratio(r.fb.receive.p50_us, r.iceoryx->receive.p50_us);
  }
  if (spin) {
    if (r.iceoryx_busy) {
      add_percentiles(j, "iceoryx_busy_", r.iceoryx_busy->receive);
      j["p50_vs_iceoryx_busy"] = ratio(r.fb.receive.p50_us, r.iceoryx_busy->receive.p50_us);
    } else {
      j["iceoryx_busy_skipped"] = r.iceoryx_busy_skipped;
    }
  }
  return j;
}

std::string us(double v) {
  return fixed(v, v < 10 ? 1 : 0);
}

void print_table(const std::vector<LatencyRow>& rows, bool with_iceoryx, bool spin) {
  std::vector<std::string> head{"size",      "subs",      "p50",      "p99",
                                "p99.9",     "max",       "rt p50",   "rt p99",
                                "floor p50", "floor p99", "copy p50", "copy p99"};
  if (with_iceoryx) head.insert(head.end(), {"iox p50", "iox p99"});
  if (spin) head.insert(head.end(), {"iox busy p50", "p50/iox busy"});
  head.insert(head.end(),
              {"p50/floor", "p99/floor", "lost", "cpu/sub", "wake/fr", "sock p50", "sock wake/fr"});
  tools::Table t(head);
  for (const auto& r : rows) {
    std::vector<std::string> cells{r.frame.label,
                                   std::to_string(r.subscribers),
                                   us(r.fb.receive.p50_us),
                                   us(r.fb.receive.p99_us),
                                   us(r.fb.receive.p999_us),
                                   us(r.fb.receive.max_us),
                                   us(r.fb.round_trip.p50_us),
                                   us(r.fb.round_trip.p99_us),
                                   us(r.floor.receive.p50_us),
                                   us(r.floor.receive.p99_us),
                                   us(r.copy.receive.p50_us),
                                   us(r.copy.receive.p99_us)};
    if (with_iceoryx)
      cells.insert(cells.end(), {r.iceoryx ? us(r.iceoryx->receive.p50_us) : "-",
                                 r.iceoryx ? us(r.iceoryx->receive.p99_us) : "-"});
    if (spin)
      cells.insert(
          cells.end(),
          {r.iceoryx_busy ? us(r.iceoryx_busy->receive.p50_us) : "skipped",
           r.iceoryx_busy ? fixed(ratio(r.fb.receive.p50_us, r.iceoryx_busy->receive.p50_us), 2)
                          : "-"});
    cells.insert(cells.end(), {fixed(ratio(r.fb.receive.p50_us, r.floor.receive.p50_us), 2),
                               fixed(ratio(r.fb.receive.p99_us, r.floor.receive.p99_us), 2),
                               std::to_string(r.fb.lost)});
    const auto cost = broker_cost_cells(r.cost, r.subscribers);
    cells.insert(cells.end(), cost.begin(), cost.end());
    cells.insert(cells.end(), {us(r.fb_socket_releases.receive.p50_us),
                               fixed(r.cost_socket_releases.socket_wakeups_per_frame(), 2)});
    t.row(cells);
  }
  t.print(std::cout);
  std::cout
      << "Times in us. p50..max: commit -> the subscriber has the frame. rt: commit -> every\n"
         "subscriber released it. floor: bare shm + 32-byte index over a Unix socket.\n"
         "copy: the frame written through a Unix socket. iox: iceoryx with a WaitSet";
  std::cout << (spin
                    ? "; iox busy:\niceoryx subscribers busy-polling take(), next to framebroker's "
                      "with --spin.\n"
                    : ".\n")
            << kBrokerCostLegend
            << "sock: framebroker with its subscribers releasing over the socket, as before the\n"
               "release lanes (FRAMEBROKER_RELEASE_LANES=off).\n";
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
    const bool spin = o.spin_us >= 0;
    const BenchSetup setup(o.sizes, o.broker);
    const BrokerSide& broker = setup.broker;
    // Once iceoryx fails it will not come back within this run: the later rows skip it.
    std::string iceoryx_why, busy_why = o.iceoryx ? "" : "--no-iceoryx";
    bool iceoryx = o.iceoryx, busy = spin && o.iceoryx;
    std::vector<LatencyRow> rows;
    for (const FrameShape& frame : setup.sizes) {
      for (const int n : o.subscribers) {
        LatencyParams p;
        p.frame_bytes = frame.bytes();
        p.width = frame.width;
        p.height = frame.height;
        p.subscribers = n;
        p.rate = o.rate;
        p.frames = o.frames;
        p.warmup = o.warmup;
        p.pin = pin;
        p.spin_us = std::max<int64_t>(o.spin_us, 0);
        LatencyRow row{frame, n};
        const std::string what = frame.label + " x " + std::to_string(n);
        std::cerr << "latency " << what << " at " << o.rate << " fps, pin " << o.pin
                  << (spin ? ", spin " + std::to_string(o.spin_us) + " us" : "") << ":\n";
        row.fb = fb_latency(broker, p, row.cost);
        progress("framebroker", row.fb);
        check_interrupted();
        ::setenv("FRAMEBROKER_RELEASE_LANES", "off", 1);  // read by each Client::connect
        try {
          row.fb_socket_releases = fb_latency(broker, p, row.cost_socket_releases);
        } catch (...) {
          ::unsetenv("FRAMEBROKER_RELEASE_LANES");
          throw;
        }
        ::unsetenv("FRAMEBROKER_RELEASE_LANES");
        progress("framebroker, socket releases", row.fb_socket_releases);
        check_interrupted();
        row.floor = floor_latency(p);
        progress("floor", row.floor);
        check_interrupted();
        row.copy = copy_latency(p);
        progress("copy", row.copy);
        check_interrupted();
        if (iceoryx) {
          row.iceoryx = iceoryx_latency(p, IceoryxWait::WaitSet, iceoryx_why);
          if (row.iceoryx) {
            progress("iceoryx", *row.iceoryx);
          } else {
            std::cerr << "  iceoryx: skipped: " << iceoryx_why << "\n";
            iceoryx = false;
          }
        }
        if (busy) {
          row.iceoryx_busy = iceoryx_latency(p, IceoryxWait::BusyPoll, busy_why);
          if (row.iceoryx_busy) {
            progress("iceoryx busy-poll", *row.iceoryx_busy);
          } else {
            std::cerr << "  iceoryx busy-poll: skipped: " << busy_why << "\n";
            busy = false;
          }
        }
        if (spin && !row.iceoryx_busy) row.iceoryx_busy_skipped = busy_why;
        rows.push_back(std::move(row));
      }
    }
    const bool with_iceoryx =
        std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.iceoryx.has_value(); });
    if (o.json) {
      json j{{"mode", "latency"}, {"rate", o.rate},         {"frames", o.frames},
             {"pin", o.pin},      {"load", load_average()}, {"rows", json::array()}};
      if (spin) j["spin_us"] = o.spin_us;
      if (!with_iceoryx && o.iceoryx) j["iceoryx_skipped"] = iceoryx_why;
      for (const auto& r : rows) j["rows"].push_back(to_json(r, spin));
      std::cout << j.dump(2) << "\n";
    } else {
      print_table(rows, with_iceoryx, spin);
      if (!with_iceoryx && o.iceoryx) std::cout << "iceoryx skipped: " << iceoryx_why << "\n";
      if (spin && !busy_why.empty()) std::cout << "iceoryx busy-poll skipped: " << busy_why << "\n";
    }
  });
}

}  // namespace framebroker::fbbench
