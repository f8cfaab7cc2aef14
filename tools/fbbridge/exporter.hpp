// fbbridge export: local streams to importers over a ZeroMQ ROUTER socket, with per-peer
// credits (docs/fbbridge.md). One thread: it polls the ROUTER, the subscriptions' sockets, the
// "ZeroMQ is done with these frames" queue and the stop signal.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "fbbridge/counters.hpp"
#include "framebroker/options.hpp"

namespace framebroker::fbbridge {

struct ExportOptions {
  std::string bind;                      // tcp://ADDR:PORT
  std::vector<std::string> streams;      // empty: every stream (and those that appear later)
  bool latest = false;                   // --mode latest
  bool lz4 = false;                      // --compress lz4
  int clevel = 1;                        // Blosc level for lz4
  std::string curve_server_key;          // a .key file: CURVE on
  std::vector<std::string> curve_allow;  // client .pub files admitted (empty: any with the key)
  uint32_t max_window = 8;               // the most credits a peer may grant
  std::chrono::milliseconds peer_timeout{3000};    // silent this long: the peer is gone
  std::chrono::milliseconds stats_interval{1000};  // 0: no periodic stats line
  ConnectOptions connect;
};

// Runs until `stop`; throws on a setup error (bind, keys, streams). Returns the exit code.
int run_exporter(const ExportOptions& o, BridgeCounters& c, std::atomic<bool>& stop, int wake_fd);

}  // namespace framebroker::fbbridge
