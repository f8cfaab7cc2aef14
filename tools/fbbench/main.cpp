// fbbench: benchmarks of framebroker's tools, each run against a broker it starts itself.
#include <CLI/CLI.hpp>
#include <string>

#include "fbbench/save_bench.hpp"

using namespace framebroker::fbbench;

namespace {

CLI::App* add_save_command(CLI::App& app, SaveBenchOptions& o) {
  auto* save = app.add_subcommand(
      "save",
      "fbsave's sustained write speed (raw, zarr, zarr lz4) with the data on disk, next to\n"
      "dd oflag=direct and python3-zarr + numcodecs Blosc lz4 writing the same bytes to the same\n"
      "filesystem.\n\n"
      "Per size it starts its own framebrokerd (simulated Mono16 camera, `spots` pattern). Per\n"
      "format, a free run (FrameRate=0 for --free-seconds; the frames the saver cannot take are\n"
      "missed) gives the rate the saver reaches; paced runs of --frames frames then look for the\n"
      "fastest rate with no frame missed. Every time includes a final syncfs().\n\n"
      "Example:\n"
      "  fbbench save --dir /data --sizes 512,2048 --json");
  save->add_option("--dir", o.dir,
                   "directory to write in (a temporary subdirectory is removed at the end); "
                   "default /var/tmp, else the current directory, avoiding tmpfs");
  save->add_option("--sizes", o.sizes, "square frame sides, comma separated")
      ->delimiter(',')
      ->check(CLI::Range(64, 4096))
      ->capture_default_str();
  save->add_option("--frames", o.frames,
                   "frames per paced run (default: 2000 at 512x512, 200 at 2048x2048)")
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 32));
  save->add_option("--chunk-frames", o.chunk_frames, "zarr: K frames per chunk (fbsave and python)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  save->add_option("--slots", o.slots,
                   "slots in the camera's ring; the saver may fall behind by slots - 4 frames")
      ->check(CLI::Range(8, 65536))
      ->capture_default_str();
  save->add_option("--free-seconds", o.free_seconds, "length of the FrameRate=0 run")
      ->check(CLI::Range(0.2, 600.0))
      ->capture_default_str();
  save->add_option("--paced-tries", o.paced_tries, "at most this many paced runs per format")
      ->check(CLI::Range(1, 10))
      ->capture_default_str();
  save->add_option("--baseline-runs", o.baseline_runs,
                   "run each baseline this many times and keep the fastest")
      ->check(CLI::Range(1, 10))
      ->capture_default_str();
  save->add_option("--broker", o.broker, "framebrokerd binary (default: ../daemon/framebrokerd)");
  save->add_option("--fbsave", o.fbsave, "fbsave binary (default: next to fbbench)");
  save->add_option("--python", o.python, "python3 with zarr and numcodecs")->capture_default_str();
  save->add_flag("--json", o.json, "print the results as JSON");
  return save;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fbbench: benchmarks of framebroker's tools.\n\nExit codes: 0 done, 1 error, 2 usage.",
      "fbbench"};
  app.require_subcommand(1);
  SaveBenchOptions save_options;
  auto* save = add_save_command(app, save_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (save->parsed()) return run_save_bench(save_options);
  return 2;
}
