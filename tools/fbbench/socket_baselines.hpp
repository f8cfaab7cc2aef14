// The two baselines that need no broker, run in the same fbbench invocation as framebroker:
//
//   floor: a bare shared-memory segment; the sender (a forked process) sends each subscriber a
//          32-byte slot index over a Unix socket and reuses a slot once every subscriber has sent
//          its 32-byte ack back. No broker logic: the best any socket-notified design can do.
//   copy:  the sender writes the whole frame through each subscriber's Unix socket, the way a
//          naive broker would.
//
// Subscribers are threads of the calling process, one socket each; placement follows the Pin.
#pragma once

#include "fbbench/bench_common.hpp"

namespace framebroker::fbbench {

LatencyRun floor_latency(const LatencyParams& p);
LatencyRun copy_latency(const LatencyParams& p);
ThroughputRun floor_throughput(const ThroughputParams& p);
ThroughputRun copy_throughput(const ThroughputParams& p);

}  // namespace framebroker::fbbench
