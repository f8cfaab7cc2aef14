// fbbridge import: frames from an exporter (ZeroMQ DEALER, connecting with back-off) published
// into the local broker as PREFIX + remote name, one copy (or decompression) from ZeroMQ's
// receive buffer into the loaned slot, provenance passed through; credits granted as frames
// are committed (docs/fbbridge.md).
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "fbbridge/counters.hpp"
#include "framebroker/options.hpp"

namespace framebroker::fbbridge {

struct ImportOptions {
  std::string connect;              // tcp://HOST:PORT
  std::string prefix;               // local stream = prefix + remote name
  uint32_t window = 4;              // frames in flight on the link
  int64_t max_message_mb = 512;     // ZMQ_MAXMSGSIZE: a larger message drops the connection
  uint32_t slots = 0;               // slots of each local ring (0: the broker's default)
  std::string curve_client_key;     // a .key file: CURVE on
  std::string curve_server_public;  // the exporter's .pub file
  std::chrono::milliseconds stats_interval{1000};
  ConnectOptions local;
};

int run_importer(const ImportOptions& o, BridgeCounters& c, std::atomic<bool>& stop, int wake_fd);

}  // namespace framebroker::fbbridge
