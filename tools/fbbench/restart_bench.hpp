// fbbench restart: how long a broker restart interrupts its subscribers. fbbench starts a
// framebrokerd of its own (one simulated camera that starts with it) and K subscriber processes
// that reconnect (ConnectOptions::reconnect; this binary's hidden `restart-client` command), then
// N times: kill -9 the broker, restart it, check that the killed instance's shared-memory
// segments are gone, and measure the time from the restart until every subscriber has a frame of
// the new broker.
#pragma once

#include <cstdint>
#include <string>

namespace framebroker::fbbench {

struct RestartOptions {
  int cycles = 10;
  int clients = 2;      // every, latest, every, ...
  double rate = 200;    // the camera's frames per second
  uint32_t side = 256;  // square Mono16 frames
  bool json = false;
  std::string broker;  // framebrokerd; default: the one beside fbbench
};

// A subscriber of `fbbench restart` (a process of its own): reconnects across restarts and
// writes what it received into slot `index` of the board file fbbench maps.
struct RestartClientOptions {
  std::string socket, stream, board;
  int index = 0;
  bool latest = false;
};

// 0 done, 1 error (or a stale segment left), 130 interrupted.
int run_restart_bench(const RestartOptions& o);
int run_restart_client(const RestartClientOptions& o);

}  // namespace framebroker::fbbench
