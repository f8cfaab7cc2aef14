// fbbench storm: subscribers killed at random points beside a lossless fbsave. A crash must free
// the victim's slots at once, and the saver must not lose a frame.
#pragma once

#include <cstdint>
#include <string>

namespace framebroker::fbbench {

struct StormOptions {
  uint64_t kills = 1000;
  int victims = 8;      // alive at once
  double rate = 200;    // the camera's frames per second
  uint32_t side = 256;  // square Mono16 frames
  uint32_t slots = 512;
  uint64_t seed = 0;        // 0: from the clock
  double stop_share = 0.1;  // of the kills, the share first SIGSTOPped for a while and resumed
  std::string dir;          // where fbsave writes (removed at the end)
  std::string broker, fbsave;
  bool json = false;
};

// A victim (the hidden `storm-victim` command): connects, subscribes in `mode`, takes, holds and
// releases frames, unsubscribes and reconnects, in random order, until it is killed.
struct StormVictimOptions {
  std::string socket, stream, mode;
  uint64_t seed = 1;
};

int run_storm(const StormOptions& o);
int run_storm_victim(const StormVictimOptions& o);

}  // namespace framebroker::fbbench
