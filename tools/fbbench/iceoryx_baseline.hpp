// The third latency baseline: Eclipse iceoryx (Debian's 2.0.3), zero-copy shared memory with
// its own daemon (RouDi), publishing the same payload to the same number of subscribers, each
// waiting on a WaitSet, or (for `fbbench latency --spin`) busy-polling take() without sleeping.
// fbbench starts iox-roudi with a config sized for the payload and stops it at the end of every
// call.
#pragma once

#include <optional>
#include <string>

#include "fbbench/bench_common.hpp"

namespace framebroker::fbbench {

// True when fbbench was built with the iceoryx libraries (iox-roudi is looked for at run time).
bool iceoryx_built_in();

// How the iceoryx subscribers wait for the next frame.
enum class IceoryxWait { WaitSet, BusyPoll };

// Runs the publisher and the subscribers; std::nullopt with `why_not` set when iceoryx cannot
// run here (not built in, iox-roudi missing or failing).
std::optional<LatencyRun> iceoryx_latency(const LatencyParams& p, IceoryxWait wait,
                                          std::string& why_not);

}  // namespace framebroker::fbbench
