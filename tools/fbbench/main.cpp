// fbbench: benchmarks of framebroker, each run against a broker it starts itself.
#include <CLI/CLI.hpp>
#include <string>

#include "fbbench/bench_commands.hpp"
#include "fbbench/bridge_bench.hpp"
#include "fbbench/flood_bench.hpp"
#include "fbbench/restart_bench.hpp"
#include "fbbench/save_bench.hpp"
#include "fbbench/storm_bench.hpp"

using namespace framebroker::fbbench;

namespace {

const char* const kPinHelp =
    "CPU placement: none (the scheduler decides), same (every process on CPU 0), split (the "
    "broker or sender on CPU 0, the subscribers on CPU 1)";
const char* const kBrokerHelp = "framebrokerd binary (default: ../daemon/framebrokerd)";

CLI::App* add_save_command(CLI::App& app, SaveBenchOptions& o) {
  auto* save = app.add_subcommand(
      "save",
      "fbsave's sustained write speed (raw; zarr and zarr3, uncompressed and Blosc lz4) with\n"
      "the data on disk, next to dd oflag=direct and python3-zarr + numcodecs (none, Blosc lz4)\n"
      "writing the same bytes to the same filesystem, and the files each zarr creates per second\n"
      "at 1 kHz.\n\n"
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
                   "slots in the camera's ring; the saver may fall behind by slots - 4 frames "
                   "(default: a 256 MiB ring, at least 64 slots)")
      ->check(CLI::Range(8, 65536));
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
  save->add_option("--broker", o.broker, kBrokerHelp);
  save->add_option("--fbsave", o.fbsave, "fbsave binary (default: next to fbbench)");
  save->add_option("--python", o.python, "python3 with zarr and numcodecs")->capture_default_str();
  save->add_flag("--json", o.json, "print the results as JSON");
  return save;
}

CLI::App* add_soak_command(CLI::App& app, SaveBenchOptions& o, SoakOptions& so) {
  auto* soak = app.add_subcommand(
      "soak",
      "One long fbsave run at a fixed camera rate: does the saver keep every frame for minutes?\n"
      "Starts its own framebrokerd (simulated Mono16 camera, the broker's default ring: 1 s of\n"
      "frames), runs fbsave --frames (rate x seconds) --start, and reports frames written and\n"
      "missed. --hogs N runs N CPU-bound processes (nice 0) beside it. Pick a rate and size the\n"
      "disk can hold: the output (up to rate x seconds x frame bytes) is removed at the end.\n"
      "--mix adds 7 subscriber threads (3 every, 1 slow every, 3 latest) and checks the broker's\n"
      "RSS, the slot invariant every second, and published = delivered + missed + conflated for\n"
      "each subscriber (exit 1 when an invariant or an account fails).\n\n"
      "Examples:\n"
      "  fbbench soak --seconds 600 --rate 150 --size 512 --format zarr-lz4\n"
      "  fbbench soak --hogs 2 --seconds 60 --rate 1000 --size 256 --pattern counter --json\n"
      "  fbbench soak --mix --seconds 600 --rate 1000 --size 512 --pattern counter");
  soak->add_option("--seconds", so.seconds, "length of the run")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  soak->add_option("--rate", so.rate_fps, "camera frames per second")
      ->check(CLI::Range(1.0, 100000.0))
      ->capture_default_str();
  soak->add_option("--size", so.side, "square frame side")
      ->check(CLI::Range(64, 4096))
      ->capture_default_str();
  soak->add_option("--format", so.format, "fbsave format")
      ->check(CLI::IsMember(save_format_names()))
      ->capture_default_str();
  soak->add_option("--pattern", so.pattern,
                   "the simulated camera's pattern (counter compresses to almost nothing)")
      ->check(CLI::IsMember({"spots", "counter", "gradient", "noise", "empty"}))
      ->capture_default_str();
  soak->add_option("--hogs", so.hogs, "CPU-bound processes (nice 0) running beside the soak")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  soak->add_flag("--mix", so.mix,
                 "8 subscribers: fbsave, 3 every, 1 slow every (max_hold 16), 3 latest; checks "
                 "RSS, the slot invariant and every subscriber's accounting");
  soak->add_option("--slow-ms", so.slow_ms, "--mix: the slow subscriber's time per frame")
      ->check(CLI::Range(0.0, 10000.0))
      ->capture_default_str();
  soak->add_option("--dir", o.dir, "directory to write in (default as for `fbbench save`)");
  soak->add_option("--slots", o.slots,
                   "slots in the camera's ring (default: the broker's, ring_ms = 1 s of frames)")
      ->check(CLI::Range(8, 65536));
  soak->add_option("--broker", o.broker, kBrokerHelp);
  soak->add_option("--fbsave", o.fbsave, "fbsave binary (default: next to fbbench)");
  soak->add_flag("--json", o.json, "print the result as JSON");
  return soak;
}

// --pin, --broker and --json.
void add_run_options(CLI::App* cmd, std::string& pin, std::string& broker, bool& json) {
  cmd->add_option("--pin", pin, kPinHelp)
      ->check(CLI::IsMember({"none", "same", "split"}))
      ->capture_default_str();
  cmd->add_option("--broker", broker, kBrokerHelp);
  cmd->add_flag("--json", json, "print the results as JSON");
}

// The options `latency` and `throughput` share (BenchOptions): the rows, the camera's rate, then
// --pin, --broker and --json. What differs is the sizes flag's name and what a rate may be.
void add_bench_options(CLI::App* cmd, BenchOptions& o, const std::string& sizes_flag,
                       const std::string& rate_help, double min_rate) {
  cmd->add_option(sizes_flag, o.sizes,
                  "frame sizes, comma separated: bytes (K, M = 1024, 1024^2) for a nearly square "
                  "Mono16 frame, or WxH pixels (e.g. 64x64)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--subscribers", o.subscribers, "subscriber counts, comma separated")
      ->delimiter(',')
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--rate", o.rate, rate_help)
      ->check(CLI::Range(min_rate, 1'000'000.0))
      ->capture_default_str();
  add_run_options(cmd, o.pin, o.broker, o.json);
}

CLI::App* add_latency_command(CLI::App& app, LatencyOptions& o) {
  auto* cmd = app.add_subcommand(
      "latency",
      "Per frame: how long from the camera's commit until each subscriber has the frame\n"
      "(FrameMeta.mono_ns, CLOCK_MONOTONIC), and until every subscriber released it.\n\n"
      "Per size and subscriber count it starts its own framebrokerd (simulated Mono16 camera,\n"
      "pattern `empty`, at --rate), subscribes `every` from threads of its own, and then runs,\n"
      "with the same frames and subscribers, the baselines: the floor (a bare shared-memory\n"
      "segment, a 32-byte slot index over a Unix socket and a 32-byte ack back), copy-over-socket\n"
      "(the frame itself through the socket) and Eclipse iceoryx (RouDi started and stopped by\n"
      "fbbench) where it is installed; with --spin also iceoryx with busy-polling subscribers.\n"
      "Also reported: the broker's wake-ups (voluntary context switches) per frame, per thread,\n"
      "and its CPU time per frame per subscriber.\n\n"
      "Examples:\n"
      "  fbbench latency --sizes 64K,8M --subscribers 2 --pin same --json\n"
      "  fbbench latency --sizes 8M --subscribers 2 --spin 200");
  add_bench_options(cmd, o, "--sizes", "the camera's frames per second", 1.0);
  cmd->add_option("--frames", o.frames, "measured frames per run")
      ->check(CLI::Range(uint64_t(10), uint64_t(10'000'000)))
      ->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "frames sent first and not measured")
      ->check(CLI::Range(uint64_t(1), uint64_t(1'000'000)))
      ->capture_default_str();
  cmd->add_option("--spin", o.spin_us,
                  "subscribers busy-poll up to US microseconds for the next frame before sleeping "
                  "(SubscribeOptions::spin); iceoryx also runs busy-polling, for comparison")
      ->option_text("US")
      ->check(CLI::Range(int64_t(0), int64_t(1'000'000)));
  cmd->add_flag("!--no-iceoryx", o.iceoryx, "skip the iceoryx baselines");
  return cmd;
}

CLI::App* add_throughput_command(CLI::App& app, ThroughputOptions& o) {
  auto* cmd = app.add_subcommand(
      "throughput",
      "How many frames per second reach the subscribers, and what each costs the broker.\n\n"
      "Per size and subscriber count it starts its own framebrokerd (simulated Mono16 camera,\n"
      "pattern `empty`, free-running unless --rate; a 256 MiB ring of 32 to 4096 slots), with\n"
      "subscriber 1 `every`, subscriber 2 `latest`, then alternating. Reported per run: frames\n"
      "the camera published per second, deliveries per subscriber per second (mean and min over\n"
      "the subscribers) next to the floor's in the same run and their ratio, frames dropped (the\n"
      "camera found no free slot), frames each subscriber missed, GB/s delivered (summed over\n"
      "subscribers), the broker's CPU time per frame and its wake-ups per frame\n"
      "(/proc/<pid>/task/*), and its RSS at start and end. The floor and copy-over-socket\n"
      "baselines run beside it with the same subscribers, each of which gets every frame.\n\n"
      "Examples:\n"
      "  fbbench throughput --size 64x64 --rate 100000\n"
      "  fbbench throughput --size 8M --read all\n"
      "  fbbench throughput --size 8K --rate 50000 --duration 10");
  add_bench_options(cmd, o, "--size,--sizes", "the camera's frames per second; 0 free-runs", 0.0);
  cmd->add_option("--duration", o.seconds, "seconds measured per run (the baselines: at most 10)")
      ->check(CLI::Range(0.2, 86400.0))
      ->capture_default_str();
  cmd->add_option("--read", o.read,
                  "none: subscribers only take and release frames; all: each sums every pixel "
                  "of every frame it gets")
      ->check(CLI::IsMember({"none", "all"}))
      ->capture_default_str();
  return cmd;
}

CLI::App* add_chain_command(CLI::App& app, ChainOptions& o) {
  auto* cmd = app.add_subcommand(
      "chain",
      "What a processing hop and a published stream cost, measured in one run.\n\n"
      "Latency, per size: a framebrokerd of its own (simulated Mono16 camera, pattern `empty`,\n"
      "at --rate) with one `every` subscriber (direct); then another with `fbproc --from bench\n"
      "--to bench.copy --op OP` (a process of its own) and a subscriber on bench.copy (chain),\n"
      "whose latency runs from the camera's commit of the source frame (found by source_seq).\n"
      "Reported: chain p50 / direct p50 (target <= 1.5 at 8M).\n\n"
      "Throughput, per --throughput-sizes: a publishing process committing as fast as it is\n"
      "lent slots without touching the pixels, subscribers that do not read them (notify only),\n"
      "next to copy-over-socket with the same subscribers (target >= 50x its fps).\n\n"
      "Example:\n"
      "  fbbench chain --sizes 64K,8M --rate 100 --json");
  cmd->add_option("--sizes", o.sizes, "latency frame sizes (K, M = 1024, 1024^2), comma separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--throughput-sizes", o.throughput_sizes,
                  "published-stream throughput frame sizes; none: skip")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--rate", o.rate, "the camera's frames per second (latency)")
      ->check(CLI::Range(1.0, 100000.0))
      ->capture_default_str();
  cmd->add_option("--frames", o.frames, "measured frames per latency run")
      ->check(CLI::Range(uint64_t(10), uint64_t(10'000'000)))
      ->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "frames sent first and not measured")
      ->check(CLI::Range(uint64_t(1), uint64_t(1'000'000)))
      ->capture_default_str();
  cmd->add_option("--duration", o.seconds, "seconds measured per throughput run")
      ->check(CLI::Range(0.2, 3600.0))
      ->capture_default_str();
  cmd->add_option("--subscribers", o.subscribers,
                  "throughput subscribers (every, latest, every, ...)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--op", o.op, "fbproc's operation for the hop")->capture_default_str();
  cmd->add_option("--fbproc", o.fbproc, "fbproc binary (default: beside fbbench, else in PATH)");
  add_run_options(cmd, o.pin, o.broker, o.json);
  return cmd;
}

// The publishing process `fbbench chain` starts (from /proc/self/exe); not for users.
CLI::App* add_chain_publisher_command(CLI::App& app, ChainPublisherOptions& o) {
  auto* cmd = app.add_subcommand("chain-publisher", "");
  cmd->group("");  // hidden from --help
  cmd->add_option("--socket", o.socket)->required();
  cmd->add_option("--stream", o.stream)->required();
  cmd->add_option("--width", o.width)->required();
  cmd->add_option("--height", o.height)->required();
  cmd->add_option("--slots", o.slots)->required();
  cmd->add_option("--seconds", o.seconds);
  return cmd;
}

CLI::App* add_restart_command(CLI::App& app, RestartOptions& o) {
  auto* cmd = app.add_subcommand(
      "restart",
      "How long a broker restart interrupts its subscribers (ConnectOptions::reconnect).\n"
      "Starts its own framebrokerd (simulated Mono16 camera, started with it) and --clients\n"
      "reconnecting subscriber processes (every, latest, alternating), then per cycle: kill -9\n"
      "the broker, start it again, check that the killed broker's /dev/shm segments are gone,\n"
      "and time the restart until every subscriber has a frame of the new broker (the baseline:\n"
      "until the new broker accepts connections). Exit 1 when a stale segment is left.\n\n"
      "Example:\n"
      "  fbbench restart --cycles 20 --clients 4 --json");
  cmd->add_option("--cycles", o.cycles, "kill -9 and restart this many times")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--clients", o.clients, "reconnecting subscriber processes")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--rate", o.rate, "the camera's frames per second")
      ->check(CLI::Range(1.0, 100000.0))
      ->capture_default_str();
  cmd->add_option("--size", o.side, "square frame side (Mono16)")
      ->check(CLI::Range(16, 4096))
      ->capture_default_str();
  cmd->add_option("--broker", o.broker, kBrokerHelp);
  cmd->add_flag("--json", o.json, "print the results as JSON");
  return cmd;
}

// The subscriber processes `fbbench restart` starts; not for users.
CLI::App* add_restart_client_command(CLI::App& app, RestartClientOptions& o) {
  auto* cmd = app.add_subcommand("restart-client", "");
  cmd->group("");  // hidden from --help
  cmd->add_option("--socket", o.socket)->required();
  cmd->add_option("--stream", o.stream)->required();
  cmd->add_option("--board", o.board)->required();
  cmd->add_option("--index", o.index)->required();
  cmd->add_flag("--latest", o.latest);
  return cmd;
}

CLI::App* add_storm_command(CLI::App& app, StormOptions& o) {
  auto* cmd = app.add_subcommand(
      "storm",
      "Subscribers killed at random points next to a lossless fbsave: does a crash give its\n"
      "slots back at once, and does the saver lose nothing? Starts its own framebrokerd (a\n"
      "Mono16 counter camera), an fbsave (raw, removed at the end) and --victims subscriber\n"
      "processes in random modes that connect, subscribe, hold, release and reconnect in random\n"
      "order. Each is SIGKILLed at a random moment (some as they connect, some first SIGSTOPped\n"
      "for up to 200 ms and resumed) and replaced. Every 100 kills the slot invariant is checked\n"
      "and no subscriber of a dead process may be listed. At the end: leaked slots and the\n"
      "saver's missed frames (both must be 0; exit 1 otherwise).\n\n"
      "Example:\n"
      "  fbbench storm --kills 1000 --json");
  cmd->add_option("--kills", o.kills, "subscriber processes to kill")
      ->check(CLI::Range(uint64_t(1), uint64_t(10'000'000)))
      ->capture_default_str();
  cmd->add_option("--victims", o.victims, "victim processes alive at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--rate", o.rate, "the camera's frames per second")
      ->check(CLI::Range(1.0, 10000.0))
      ->capture_default_str();
  cmd->add_option("--size", o.side, "square frame side (Mono16)")
      ->check(CLI::Range(16, 4096))
      ->capture_default_str();
  cmd->add_option("--slots", o.slots, "slots in the camera's ring")
      ->check(CLI::Range(16, 65536))
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "random seed (0: from the clock; the report prints it)");
  cmd->add_option("--dir", o.dir, "directory fbsave writes in (default as for `fbbench save`)");
  cmd->add_option("--fbsave", o.fbsave, "fbsave binary (default: next to fbbench)");
  cmd->add_option("--broker", o.broker, kBrokerHelp);
  cmd->add_flag("--json", o.json, "print the result as JSON");
  return cmd;
}

CLI::App* add_flood_command(CLI::App& app, FloodOptions& o) {
  auto* cmd = app.add_subcommand(
      "flood",
      "Connections opened and dropped and malformed messages thrown at a broker while a lossless\n"
      "subscriber runs: does it miss a frame, and does `status` keep answering? Starts its own\n"
      "framebrokerd (a Mono16 counter camera), times `status` for 1 s (the baseline), then\n"
      "during the flood. Exit 1 if the subscriber missed a frame or a status request failed.\n\n"
      "Example:\n"
      "  fbbench flood --connections 1000 --malformed 10000 --json");
  cmd->add_option("--connections", o.connections, "connections opened and dropped")
      ->check(CLI::Range(uint64_t(0), uint64_t(10'000'000)))
      ->capture_default_str();
  cmd->add_option("--malformed", o.malformed, "malformed messages, each on its own connection")
      ->check(CLI::Range(uint64_t(0), uint64_t(10'000'000)))
      ->capture_default_str();
  cmd->add_option("--rate", o.rate, "the camera's frames per second")
      ->check(CLI::Range(1.0, 10000.0))
      ->capture_default_str();
  cmd->add_option("--broker", o.broker, kBrokerHelp);
  cmd->add_flag("--json", o.json, "print the result as JSON");
  return cmd;
}

// A victim of `fbbench storm`; not for users.
CLI::App* add_storm_victim_command(CLI::App& app, StormVictimOptions& o) {
  auto* cmd = app.add_subcommand("storm-victim", "");
  cmd->group("");  // hidden from --help
  cmd->add_option("--socket", o.socket)->required();
  cmd->add_option("--stream", o.stream)->required();
  cmd->add_option("--mode", o.mode)->required();
  cmd->add_option("--seed", o.seed);
  return cmd;
}

CLI::App* add_bridge_command(CLI::App& app, BridgeOptions& o) {
  auto* cmd = app.add_subcommand(
      "bridge",
      "fbbridge across two network namespaces joined by a veth pair, next to iperf3's\n"
      "single-stream TCP throughput over the same pair in the same run. Needs root: it makes\n"
      "the namespaces and the pair and removes them at the end (also on failure or Ctrl-C).\n\n"
      "Per size and mode a broker on each side (the exporter's with a simulated Mono16 camera,\n"
      "pattern `empty`, free-running: it commits without writing a pixel), `fbbridge export` in\n"
      "the first namespace, `fbbridge import --prefix P.` in the second, and an `every`\n"
      "subscriber on the importer's broker: frames/s and GB/s it receives, camera frames it\n"
      "missed, the exporter's CPU seconds per GB next to a memcpy of the same bytes. Per size\n"
      "also the latency from the exporter-side commit to the remote subscriber at --latency-rate.\n"
      "Goal: 8M every >= 0.80 of iperf3.\n\n"
      "Example:\n"
      "  sudo fbbench bridge --sizes 8M,512x512 --duration 3 --json");
  cmd->add_option("--sizes,--size", o.sizes,
                  "frame sizes, comma separated: bytes (K, M) for a nearly square Mono16 frame, "
                  "or WxH pixels")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--modes", o.modes, "fbbridge modes, comma separated")
      ->delimiter(',')
      ->check(CLI::IsMember({"every", "latest"}))
      ->capture_default_str();
  cmd->add_option("--duration", o.seconds, "seconds measured per throughput run")
      ->check(CLI::Range(0.2, 3600.0))
      ->capture_default_str();
  cmd->add_option("--latency-rate", o.latency_rate, "the camera's frames per second, latency run")
      ->check(CLI::Range(1.0, 10000.0))
      ->capture_default_str();
  cmd->add_option("--latency-frames", o.latency_frames, "frames measured in the latency run")
      ->check(CLI::Range(uint64_t(1), uint64_t(1'000'000)))
      ->capture_default_str();
  cmd->add_option("--iperf-seconds", o.iperf_seconds, "length of the iperf3 baseline")
      ->check(CLI::Range(1.0, 600.0))
      ->capture_default_str();
  cmd->add_option("--fbbridge", o.fbbridge, "fbbridge binary (default: beside fbbench)");
  cmd->add_option("--iperf3", o.iperf3, "iperf3 binary (default: iperf3 in PATH)");
  cmd->add_option("--broker", o.broker, kBrokerHelp);
  cmd->add_flag("--json", o.json, "print the results as JSON");
  return cmd;
}

// fbbench python, for the help: main() hands its arguments to python3 before parsing.
CLI::App* add_python_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "python",
      "The Python client's throughput next to a multiprocessing.shared_memory ring, measured in\n"
      "one run: runs /usr/bin/python3 -m framebroker.bench with the arguments that follow\n"
      "(`fbbench python --help` shows them).\n\n"
      "Example:\n"
      "  fbbench python --sizes 512,2048 --seconds 3 --json");
  cmd->prefix_command();
  return cmd;
}

// fbctl's --socket and --instance, typed here by habit, get a reason instead of CLI11's "not
// expected". They stay out of the help (an option group without a name): there is nothing to
// choose.
void refuse_broker_selection(CLI::App& app) {
  auto* hidden = app.add_option_group("");
  for (const std::string name : {"--socket", "--instance"})
    hidden->add_option_function<std::string>(name, [name](const std::string&) {
      throw CLI::ValidationError(name,
                                 "fbbench measures brokers it starts itself, never a running one "
                                 "(--broker chooses the framebrokerd binary)");
    });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fbbench: benchmarks of framebroker, each against a broker it starts itself, with baselines\n"
      "measured in the same run.\n\n"
      "Examples:\n"
      "  fbbench latency --sizes 64K,8M --subscribers 2   receive latency next to the baselines\n"
      "  fbbench --json throughput --size 8M              --json goes before or after the command\n"
      "  fbbench save --dir /data                         fbsave's write speed on that disk\n\n"
      "Exit codes: 0 done, 1 error, 2 usage, 130 interrupted.",
      "fbbench"};
  // fbbench [--json] python ARGS...: every argument goes to `python3 -m framebroker.bench`,
  // --help included (the subcommand below only lists it in fbbench's help).
  if (int i = argc > 1 && std::string(argv[1]) == "--json" ? 2 : 1;
      i < argc && std::string(argv[i]) == "python")
    return run_python_bench({argv + i + 1, argv + argc}, i == 2);
  app.require_subcommand(1);
  bool json = false;  // --json before the command; each command has its own for after it
  app.add_flag("--json", json, "print the results as JSON");
  refuse_broker_selection(app);
  app.fallthrough();
  SaveBenchOptions save_options;
  auto* save = add_save_command(app, save_options);
  SaveBenchOptions soak_options;
  SoakOptions soak;
  auto* soak_cmd = add_soak_command(app, soak_options, soak);
  LatencyOptions latency_options;
  auto* latency = add_latency_command(app, latency_options);
  ThroughputOptions throughput_options;
  auto* throughput = add_throughput_command(app, throughput_options);
  ChainOptions chain_options;
  auto* chain = add_chain_command(app, chain_options);
  ChainPublisherOptions chain_publisher_options;
  auto* chain_publisher = add_chain_publisher_command(app, chain_publisher_options);
  auto* python = add_python_command(app);
  RestartOptions restart_options;
  auto* restart = add_restart_command(app, restart_options);
  RestartClientOptions restart_client_options;
  auto* restart_client = add_restart_client_command(app, restart_client_options);
  FloodOptions flood_options;
  auto* flood = add_flood_command(app, flood_options);
  StormOptions storm_options;
  auto* storm = add_storm_command(app, storm_options);
  StormVictimOptions storm_victim_options;
  auto* storm_victim = add_storm_victim_command(app, storm_victim_options);
  BridgeOptions bridge_options;
  auto* bridge = add_bridge_command(app, bridge_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (json) {
    save_options.json = soak_options.json = true;
    latency_options.json = throughput_options.json = chain_options.json = true;
  }
  if (python->parsed()) return run_python_bench(python->remaining(), json);
  if (chain->parsed()) return run_chain_bench(chain_options);
  if (restart->parsed()) {
    restart_options.json = restart_options.json || json;
    return run_restart_bench(restart_options);
  }
  if (restart_client->parsed()) return run_restart_client(restart_client_options);
  if (storm->parsed()) {
    storm_options.json = storm_options.json || json;
    return run_storm(storm_options);
  }
  if (flood->parsed()) {
    flood_options.json = flood_options.json || json;
    return run_flood(flood_options);
  }
  if (bridge->parsed()) {
    bridge_options.json = bridge_options.json || json;
    return run_bridge_bench(bridge_options);
  }
  if (storm_victim->parsed()) return run_storm_victim(storm_victim_options);
  if (chain_publisher->parsed()) return run_chain_publisher(chain_publisher_options);
  if (latency->parsed()) return run_latency_bench(latency_options);
  if (throughput->parsed()) return run_throughput_bench(throughput_options);
  if (save->parsed()) return run_save_bench(save_options);
  if (soak_cmd->parsed()) {
    soak_options.soak = soak;
    return run_save_bench(soak_options);
  }
  return 2;
}
