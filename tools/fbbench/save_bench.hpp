// fbbench save: how fast fbsave writes (raw, zarr and zarr3, each also with Blosc lz4) with the
// data on disk, side by side in one run with `dd oflag=direct` writing the same bytes to the same
// directory and with python3-zarr + numcodecs writing comparable frames with the same chunks.
//
// For each frame size it starts its own framebrokerd with one simulated camera (Mono16, `spots`)
// and, per format, runs fbsave twice or more:
//   free:  FrameRate=0 for a few seconds: the most the saver writes while the camera outruns it
//          (the frames it could not take are counted as missed);
//   paced: N frames at a fixed rate, starting just below the free run's rate and stepping up or
//          down (at most --paced-tries runs): the fastest rate at which every frame was written.
// Every time runs from starting the writer to the end of a syncfs() of the output's filesystem.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace framebroker::fbbench {

// fbbench soak: one long paced run, to show that a saver keeps up for minutes, not seconds.
// The camera's ring is the broker's default (ring_ms: 1 s of frames) unless --slots.
struct SoakOptions {
  double seconds = 600;
  double rate_fps = 150;
  uint32_t side = 512;
  std::string format = "zarr-lz4";  // raw, zarr, zarr-lz4, zarr3 or zarr3-lz4
  std::string pattern = "spots";    // the simulated camera's Pattern (spots, counter, ...)
  int hogs = 0;                     // CPU-bound processes (nice 0) running beside it
  // The mix: besides fbsave, 7 subscriber threads (3 `every`, 1 slow `every`, 3 `latest`); the
  // broker's RSS, the slot invariant every second and each subscriber's accounting are checked.
  bool mix = false;
  double slow_ms = 20;  // the slow subscriber's time per frame
};

struct SaveBenchOptions {
  std::string dir;  // empty: /var/tmp, else the current directory (avoiding tmpfs)
  std::vector<uint32_t> sizes{512, 2048};
  std::optional<uint64_t> frames;  // per run; default 2000 at 512x512, 200 at 2048x2048
  uint32_t chunk_frames = 16;
  uint32_t slots = 0;  // the camera's ring (fbsave may queue slots - 4 frames); 0: slots_for()
  double free_seconds = 2;
  int paced_tries = 5;
  int baseline_runs = 2;  // each baseline runs this many times; the fastest counts
  std::string broker;     // default: ../daemon/framebrokerd next to fbbench
  std::string fbsave;     // default: fbsave next to fbbench
  std::string python = "/usr/bin/python3";
  bool json = false;
  std::optional<SoakOptions> soak;  // set: run the soak instead of the size sweep
};

// The formats the benchmark knows: raw, zarr, zarr-lz4, zarr3, zarr3-lz4.
std::vector<std::string> save_format_names();

// The default ring: 256 MiB (what a saver's stream would be given), at least 64 slots.
uint32_t default_slots(uint32_t side);

// Frames per run when --frames is not given: about 1.7 GB at 2048x2048 (200 frames), at most 2000.
uint64_t default_frames(uint32_t side);

// Runs the benchmark, prints progress on stderr and the table (or JSON) on stdout.
// Returns the exit code: 0 done, 1 error, 130 interrupted.
int run_save_bench(const SaveBenchOptions& options);

}  // namespace framebroker::fbbench
