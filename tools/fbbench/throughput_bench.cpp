// fbbench throughput: per frame size and subscriber count, how many frames framebroker moves
// (and what it costs the broker) next to the floor and copy-over-socket, in this same run.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/table.hpp"
#include "fbbench/bench_commands.hpp"
#include "fbbench/bench_report.hpp"
#include "fbbench/fb_runs.hpp"
#include "fbbench/process.hpp"
#include "fbbench/socket_baselines.hpp"

namespace framebroker::fbbench {

namespace {

using nlohmann::json;
using tools::fixed;

constexpr double kBaselineSeconds = 10;

struct ThroughputRow {
  FrameShape frame;
  int subscribers = 0;
  ThroughputRun fb, floor, copy;
  BrokerCost cost;
};

std::vector<std::string> subscriber_modes(int n) {
  std::vector<std::string> modes;
  for (int i = 0; i < n; ++i) modes.push_back(i % 2 == 0 ? "every" : "latest");
  return modes;
}

// A delivery is one frame handed to one subscriber; every per-second figure says what it counts.
json to_json(const ThroughputRow& r) {
  const uint64_t bytes = r.frame.bytes();
  json j = row_head(r.frame, r.subscribers);
  j.update(json{
      {"subscriber_modes", subscriber_modes(r.subscribers)},
      {"seconds", r.fb.seconds},
      {"published_per_s", r.fb.published_per_s()},
      {"deliveries_per_subscriber_per_s", r.fb.deliveries_per_subscriber_per_s()},
      {"deliveries_per_subscriber_per_s_min", r.fb.min_deliveries_per_subscriber_per_s()},
      {"floor_deliveries_per_subscriber_per_s", r.floor.deliveries_per_subscriber_per_s()},
      {"copy_deliveries_per_subscriber_per_s", r.copy.deliveries_per_subscriber_per_s()},
      {"deliveries_vs_floor",
       ratio(r.fb.deliveries_per_subscriber_per_s(), r.floor.deliveries_per_subscriber_per_s())},
      {"deliveries_vs_copy",
       ratio(r.fb.deliveries_per_subscriber_per_s(), r.copy.deliveries_per_subscriber_per_s())},
      {"published", r.fb.published},
      {"delivered", r.fb.delivered},
      {"delivered_by_subscriber", r.fb.delivered_by_subscriber},
      {"dropped", r.fb.dropped},
      {"missed_by_subscriber", r.fb.missed_by_subscriber},
      {"delivered_gbps", r.fb.gbps(bytes)},
      {"floor_delivered_gbps", r.floor.gbps(bytes)},
      {"copy_delivered_gbps", r.copy.gbps(bytes)},
      {"broker_rss_start_kb", r.cost.rss_start_kb},
      {"broker_rss_end_kb", r.cost.rss_end_kb}});
  add_broker_cost(j, r.cost, r.subscribers);
  return j;
}

std::string missed_cell(const std::vector<uint64_t>& missed) {
  std::string cell;
  for (const uint64_t m : missed) cell += (cell.empty() ? "" : "/") + std::to_string(m);
  return cell;
}

void print_table(const std::vector<ThroughputRow>& rows) {
  tools::Table t({"size", "subs", "published/s", "per sub/s", "min sub/s", "floor sub/s", "x floor",
                  "copy sub/s", "dropped", "missed", "GB/s", "floor GB/s", "cpu us/frame", "alone",
                  "cpu/sub", "wake/fr", "rss MB"});
  for (const auto& r : rows) {
    const uint64_t bytes = r.frame.bytes();
    std::vector<std::string> cells{r.frame.label,
                                   std::to_string(r.subscribers),
                                   fixed(r.fb.published_per_s(), 0),
                                   fixed(r.fb.deliveries_per_subscriber_per_s(), 0),
                                   fixed(r.fb.min_deliveries_per_subscriber_per_s(), 0),
                                   fixed(r.floor.deliveries_per_subscriber_per_s(), 0),
                                   fixed(ratio(r.fb.deliveries_per_subscriber_per_s(),
                                               r.floor.deliveries_per_subscriber_per_s()),
                                         2),
                                   fixed(r.copy.deliveries_per_subscriber_per_s(), 0),
                                   std::to_string(r.fb.dropped),
                                   missed_cell(r.fb.missed_by_subscriber),
                                   fixed(r.fb.gbps(bytes), 2),
                                   fixed(r.floor.gbps(bytes), 2),
                                   fixed(r.cost.cpu_us_per_frame, 2),
                                   fixed(r.cost.cpu_us_per_frame_alone, 2)};
    const auto cost = broker_cost_cells(r.cost, r.subscribers);
    cells.insert(cells.end(), cost.begin(), cost.end());
    cells.push_back(fixed(double(r.cost.rss_start_kb) / 1024, 0) + "->" +
                    fixed(double(r.cost.rss_end_kb) / 1024, 0));
    t.row(cells);
  }
  t.print(std::cout);
  std::cout << "published/s: frames the camera published per second. A delivery is one frame\n"
               "handed to one subscriber (subscriber 1 `every`, 2 `latest`, ...): per sub/s is\n"
               "the mean over subscribers, min sub/s the least. floor and copy: the same per\n"
               "subscriber for the baselines, whose every subscriber gets every frame; x floor:\n"
               "per sub/s / floor sub/s. dropped: frames the camera could not publish (no free\n"
               "slot); missed: frames skipped for each subscriber. GB/s: frame bytes delivered,\n"
               "summed over subscribers. cpu us/frame: the broker's CPU time per published frame;\n"
               "alone: the same with no subscriber (the camera's own cost).\n"
            << kBrokerCostLegend;
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
    for (const FrameShape& frame : setup.sizes) {
      for (const int n : o.subscribers) {
        ThroughputParams p;
        p.frame_bytes = frame.bytes();
        p.width = frame.width;
        p.height = frame.height;
        p.subscribers = n;
        p.seconds = o.seconds;
        p.read_all = o.read == "all";
        p.pin = pin;
        ThroughputRow row{frame, n};
        std::cerr << "throughput " << frame.label << " x " << n << ", read " << o.read << ", pin "
                  << o.pin << ":\n";
        row.fb = fb_throughput(broker, p, o.rate, row.cost);
        std::cerr << "  framebroker: " << fixed(row.fb.published_per_s(), 0)
                  << " frames/s published, " << fixed(row.fb.deliveries_per_subscriber_per_s(), 0)
                  << " deliveries/s per subscriber, " << row.fb.dropped << " dropped, broker "
                  << fixed(row.cost.cpu_us_per_frame, 2) << " us/frame\n";
        check_interrupted();
        ThroughputParams baseline = p;  // a long run is for the broker's RSS; baselines need less
        baseline.seconds = std::min(p.seconds, kBaselineSeconds);
        row.floor = floor_throughput(baseline);
        std::cerr << "  floor: " << fixed(row.floor.deliveries_per_subscriber_per_s(), 0)
                  << " deliveries/s per subscriber\n";
        check_interrupted();
        row.copy = copy_throughput(baseline);
        std::cerr << "  copy: " << fixed(row.copy.deliveries_per_subscriber_per_s(), 0)
                  << " deliveries/s per subscriber\n";
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
