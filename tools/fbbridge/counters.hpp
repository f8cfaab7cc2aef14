// Per-link counters of one fbbridge process, in one struct: the exporter and the importer update
// them (relaxed atomics, from their one loop thread), the stats line and `--stats-json` read
// them, and so does `fbctl status` through report() (docs/fbbridge.md, "Counters").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace framebroker::fbbridge {

enum class LinkState : uint8_t {
  Waiting,  // importer: no connection yet / exporter: no peer
  Up,       // importer: connected and Hello sent / exporter: at least one peer
  Down,     // importer: the connection was lost, ZeroMQ reconnects with back-off
};
const char* to_string(LinkState s);

struct BridgeCounters {
  std::atomic<LinkState> link{LinkState::Waiting};
  std::atomic<uint64_t> frames{0};        // frames sent (exporter, per peer) / published (importer)
  std::atomic<uint64_t> bytes{0};         // pixel bytes on the wire (compressed when compressed)
  std::atomic<uint64_t> raw_bytes{0};     // pixel bytes before compression
  std::atomic<uint64_t> gaps{0};          // importer: remote seqs skipped (upstream or wire)
  std::atomic<uint64_t> gap_events{0};    // importer: how many jumps
  std::atomic<uint64_t> sessions{0};      // importer: Hellos sent / exporter: Hellos taken
  std::atomic<uint64_t> disconnects{0};   // connections lost (importer) / peers timed out
  std::atomic<uint64_t> bad_messages{0};  // refused messages (verification, sizes, protocol)
  std::atomic<uint64_t> conflated{0};     // exporter, latest: frames released unsent
  std::atomic<uint64_t> no_credit_waits{0};  // exporter, every: loops that waited for credit
  std::atomic<uint32_t> peers{0};            // exporter: peers with a live session
  std::atomic<uint32_t> in_flight{0};        // exporter: frames held by ZeroMQ now (all peers)
  std::atomic<uint32_t> in_flight_max{0};    // exporter: the most ever held at once
  std::atomic<uint32_t> streams{0};          // streams exported / imported
  std::atomic<int64_t> lag_us{-1};           // importer: realtime now - remote commit, last frame
  std::atomic<int64_t> lag_us_max{-1};

  void note_in_flight(uint32_t n) {
    in_flight.store(n, std::memory_order_relaxed);
    if (n > in_flight_max.load(std::memory_order_relaxed))
      in_flight_max.store(n, std::memory_order_relaxed);
  }
  void note_lag(int64_t us) {
    lag_us.store(us, std::memory_order_relaxed);
    if (us > lag_us_max.load(std::memory_order_relaxed))
      lag_us_max.store(us, std::memory_order_relaxed);
  }
};

// Rates between two calls of line(): one per stats line.
class StatsLine {
 public:
  // "fbbridge export: up, 2 peers, 1234 frames (120.0/s), 1.02 GB/s, ..."
  std::string line(const char* side, const BridgeCounters& c);
  // The counters as one JSON object (the exit summary).
  static std::string json(const char* side, const BridgeCounters& c);
  // What the bridge hands its broker for `fbctl status` (Client::report_stats): json() plus
  // the rates of the last line() call, the lag now, and `extra` (streams, peers).
  std::string report(const char* side, const BridgeCounters& c, nlohmann::json extra) const;

 private:
  std::chrono::steady_clock::time_point last_{};
  uint64_t last_frames_ = 0, last_bytes_ = 0;
  double fps_ = 0, bytes_per_s_ = 0;  // of the last line()
};

}  // namespace framebroker::fbbridge
