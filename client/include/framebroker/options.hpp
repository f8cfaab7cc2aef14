// Options for connecting and subscribing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace framebroker {

struct ConnectOptions {
  // Empty: $FRAMEBROKER_SOCKET, else <runtime_dir>/<instance>.sock.
  std::string socket_path;
  std::string instance = "default";
  std::string client_name;  // shown by fbctl; empty: the program's name
  std::string role = "client";

  // Survive a broker restart (off: next() throws Error(BrokerLost) once the broker is gone).
  // On: after the connection ends, next() connects again with back-off (reconnect_backoff_min,
  // doubling up to reconnect_backoff_max, only while some thread waits in next()), says Hello
  // again and subscribes again every Subscription with the options it was made with; the first
  // frame from the new broker has Frame::after_restart() set and Subscription::restart() says
  // what happened (the new broker's seqs start again). Frames held from the old broker stay
  // readable; releasing them does nothing. A Publisher does not reconnect (see publisher.hpp).
  bool reconnect = false;
  std::chrono::milliseconds reconnect_backoff_min{20};
  std::chrono::milliseconds reconnect_backoff_max{500};
  // After the broker has been away this long, next() throws Error(BrokerLost); 0: never.
  std::chrono::milliseconds reconnect_give_up{0};
};

enum class Mode {
  Every,   // lossless while you keep up; ordered by seq
  Latest,  // at most `window` frames in flight, always the newest
};

struct SubscribeOptions {
  Mode mode = Mode::Every;
  uint32_t max_hold = 0;     // Every: frames held + queued at most; 0 = slots - 4
  uint32_t window = 0;       // Latest: frames in flight at most; 0 = 1
  bool from_latest = false;  // deliver the cached newest frame first
  // next() busy-polls the ring's publish counter for up to this long before it sleeps on the
  // socket: lower latency for a subscriber that has a core to itself (a closed-loop
  // controller), at the price of that core. 0: never spin.
  std::chrono::microseconds spin{0};
};

}  // namespace framebroker
