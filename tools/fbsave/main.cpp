// fbsave: records a stream to OME-Zarr, OME-TIFF or raw files, losing nothing
// silently: every frame it could not write is named in the output's metadata.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "../../cameras/thread_priority.hpp"  // header-only
#include "common/run_tool.hpp"
#include "fbsave/saver.hpp"
#include "framebroker/client.hpp"

using namespace framebroker;
using namespace framebroker::fbsave;

namespace {

double mb_per_s(const SaveSummary& s) {
  return s.elapsed_s > 0 ? double(s.bytes) / s.elapsed_s / 1e6 : 0;
}

nlohmann::json error_json(const SaveSummary& s) {
  return s.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.error);
}

// One stream's summary object (the whole --json output when there is one stream).
nlohmann::json stream_json(const SaveSummary& s) {
  const double mbps = mb_per_s(s);
  return nlohmann::json{{"path", s.path},
                        {"format", s.format},
                        {"stream", s.stream},
                        {"frames_written", s.written},
                        {"frames_missed", s.missed},
                        {"bytes", s.bytes},
                        {"mb_per_s", mbps},
                        {"elapsed_s", s.elapsed_s},
                        {"first_seq", s.first_seq ? nlohmann::json(*s.first_seq) : nullptr},
                        {"last_seq", s.last_seq ? nlohmann::json(*s.last_seq) : nullptr},
                        {"sequences", s.sequences},
                        {"frames_outside_sequences", s.outside_sequences},
                        {"broker_restarts", s.restarts},
                        {"error", error_json(s)}};
}

void print_summary(const SaveSummary& s, bool json) {
  if (json) {
    if (s.streams.empty()) {
      std::cout << stream_json(s).dump() << "\n";
      return;
    }
    nlohmann::json streams = nlohmann::json::array();
    for (const auto& one : s.streams) streams.push_back(stream_json(one));
    std::cout << nlohmann::json{{"path", s.path},
                                {"format", s.format},
                                {"as_channels", s.as_channels},
                                {"streams", streams},
                                {"frames_written", s.written},
                                {"frames_missed", s.missed},
                                {"bytes", s.bytes},
                                {"mb_per_s", mb_per_s(s)},
                                {"elapsed_s", s.elapsed_s},
                                {"broker_restarts", s.restarts},
                                {"error", error_json(s)}}
                     .dump()
              << "\n";
    return;
  }
  for (const auto& one : s.streams)
    std::fprintf(stderr, "  %s -> %s: %llu frames written, %llu missed, %.1f MB/s\n",
                 one.stream.c_str(), one.path.c_str(), (unsigned long long)one.written,
                 (unsigned long long)one.missed, mb_per_s(one));
  std::fprintf(stderr, "%s (%s%s): %llu frames written, %llu missed, %.1f MB/s, %.1f s\n",
               s.path.c_str(), s.format.c_str(), s.as_channels ? ", channels" : "",
               (unsigned long long)s.written, (unsigned long long)s.missed, mb_per_s(s),
               s.elapsed_s);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fbsave: record a stream of framebrokerd to OME-Zarr, OME-TIFF or raw files.\n\n"
      "It subscribes in `every` mode and writes on its own thread; frames it could not get are\n"
      "listed in the output's metadata (never silently absent). Memory stays bounded: the\n"
      "frames waiting to be written stay in the broker's shared memory (at most the ring's\n"
      "max_hold), and zarr adds per stream threads + 2 file buffers (a chunk or a zarr3 shard),\n"
      "each with a second for its compressed copy when compressing: (threads + 2) x file size\n"
      "(x 2 compressed), e.g. 3 x 8 MiB for 16 frames of 512x512 Mono16 with --threads 1.\n\n"
      "Examples:\n"
      "  fbsave sim0 -o run1.ome.zarr --duration 60 --compress lz4\n"
      "  fbsave sim0 -o run1.ome.tif --frames 1000 --start\n"
      "  fbsave sim0 -o run2.ome.zarr --realtime-priority 10   # keeps up beside busy CPUs\n"
      "  fbsave sim0 -o run3.ome.zarr --format zarr3 --frames 1000 --compress lz4   # NGFF 0.5\n"
      "  fbsave sim0 -o run1/ --format raw\n"
      "  fbsave sim0 -o stack.ome.zarr          # then: fbctl start sim0 --axes t=3,c=2,z=20\n"
      "  fbsave sim0 -o runs.zarr --sequences all\n"
      "  fbsave sim0 -o long.ome.zarr --reconnect   # survives a framebrokerd restart\n"
      "  fbsave cam0 cam1 -o run.ome.zarr --frames 1000 --start   # PATH/cam0, PATH/cam1\n"
      "  fbsave cam0 cam1 -o run.ome.zarr --frames 1000 --as-channels   # one image, c = 2\n\n"
      "A sequence (t, c, z) is saved with its dimensions: Zarr (t, c, z, y, x), OME-TIFF pages in\n"
      "acquisition order with SizeT/C/Z, raw with each frame's index; each frame goes where its\n"
      "index says, and the planes no frame came for are listed in the metadata. By default fbsave\n"
      "ends when the first sequence does.\n\n"
      "Exit codes: 0 saved (also after Ctrl-C), 1 error (the message says which), 2 usage,\n"
      "3 broker not running or lost.",
      "fbsave"};
  SaveOptions o;
  std::string format, compress = "none";
  app.add_option("streams", o.streams,
                 "stream(s) to save; several: one dataset each in the group PATH (PATH/<stream>; "
                 "TIFF: NAME.<stream>.ome.tif), each with its own subscription, writer and "
                 "accounting, all ending together")
      ->required();
  app.add_option("-o,--output", o.path,
                 "output: .zarr/.ome.zarr (OME-Zarr), .tif/.tiff/.ome.tif (OME-TIFF), else a raw "
                 "directory")
      ->required();
  app.add_option("--format", format,
                 "zarr (Zarr v2, OME-NGFF 0.4), zarr3 (Zarr v3, OME-NGFF 0.5), tiff or raw "
                 "(default: from the extension)")
      ->check(CLI::IsMember({"zarr", "zarr3", "tiff", "raw"}));
  int zarr_version = 2;
  app.add_option("--zarr-version", zarr_version,
                 "the Zarr of .zarr/.ome.zarr paths and --format zarr: 2 (OME-NGFF 0.4) or 3 "
                 "(OME-NGFF 0.5, as --format zarr3). 2 by default: Debian's python3-zarr (2.13) "
                 "reads only v2; v3 needs zarr-python 3, zarrita or another v3 reader")
      ->check(CLI::IsMember({2, 3}))
      ->capture_default_str();
  auto* frames =
      app.add_option("--frames", o.frames, "save N frames (seqs) of each stream, then stop");
  app.add_option("--duration", o.duration_s, "save for S seconds")
      ->check(CLI::PositiveNumber)
      ->excludes(frames);
  app.add_option("--compress", compress,
                 "zarr: none, lz4 or zstd (Blosc with shuffle; zarr3's zstd: the zstd codec)")
      ->check(CLI::IsMember({"none", "lz4", "zstd"}))
      ->capture_default_str();
  app.add_option("--clevel", o.clevel, "zarr: compression level 1-9")
      ->check(CLI::Range(1, 9))
      ->capture_default_str();
  std::optional<uint32_t> chunk_frames, shard_frames;
  app.add_option("--chunk-frames", chunk_frames,
                 "zarr: K frames per chunk (zarr3: per inner chunk of a shard); default 16, "
                 "zarr3 1")
      ->check(CLI::Range(1, 4096));
  app.add_option("--shard-frames", shard_frames,
                 "zarr3: N frames per shard, one file each (a multiple of --chunk-frames); 0: "
                 "unsharded, a file per chunk; default: the most whole chunks in 64 MiB")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--tile", o.tile,
                 "zarr3: inner chunks of N x N pixels of one frame (edges padded), in shards")
      ->check(CLI::Range(0, 1 << 16));
  o.threads = std::max(2u, std::thread::hardware_concurrency()) - 1;  // one core for the rest
  app.add_option("--threads", o.threads,
                 "zarr: N threads compressing files in parallel (one more writes them in order); "
                 "each adds a file buffer (see above); default: the CPUs minus one, at least 1")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_flag(
      "--start", o.start,
      "start the camera (each stream's; for N frames with --frames) and stop it at the end");
  std::string sequences = "first";
  app.add_option("--sequences", sequences,
                 "first: end with the first sequence; all: each sequence into PATH/seq-<id> "
                 "(TIFF: NAME.seq-<id>.ome.tif), frames outside sequences skipped")
      ->check(CLI::IsMember({"first", "all"}))
      ->capture_default_str();
  app.add_flag("--as-channels", o.as_channels,
               "several streams of one format (width, height, pixel type) as the channels of one "
               "OME-Zarr image (t, c, 1, y, x): frame n of stream i at t=n, c=i; needs --frames");
  app.add_flag("--overwrite", o.overwrite, "replace an existing output");
  app.add_flag("--json", o.json, "print the summary as JSON on stdout");
  int realtime_priority = 0;
  app.add_option("--realtime-priority", realtime_priority,
                 "run the saver's threads (socket reader, writer, compressors) at SCHED_FIFO "
                 "priority N (1-99), so CPU-bound processes cannot delay them; where that is not "
                 "permitted, at nice -10, else as they are (said once on stderr)")
      ->check(CLI::Range(0, 99));
  app.add_option("--socket", o.socket,
                 "broker socket (default: $FRAMEBROKER_SOCKET or the instance's)");
  app.add_option("--instance", o.instance, "broker instance")->capture_default_str();
  app.add_flag("--reconnect", o.reconnect,
               "survive a broker restart: reconnect (back-off 20 ms to 500 ms) and go on writing "
               "the same dataset, which lists each outage under \"discontinuities\" (the new "
               "broker's seqs start again)");
  app.add_option("--reconnect-timeout", o.reconnect_timeout_s,
                 "with --reconnect: give up (exit 3) after the broker was away S seconds; 0: "
                 "wait for it forever")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // Threads started later (the writer, Blosc's) inherit the main thread's policy and nice value.
  if (realtime_priority > 0)
    if (const auto r = cameras::raise_thread_priority(realtime_priority);
        r.kind != cameras::ThreadPriorityResult::Kind::Fifo)
      std::cerr << "fbsave: --realtime-priority: " << r.describe() << "\n";
  // "run1/" names the directory run1 (shells complete directories with the slash).
  while (o.path.size() > 1 && o.path.back() == '/') o.path.pop_back();
  o.all_sequences = sequences == "all";
  if (!format.empty())
    o.format = format == "zarr"    ? Format::Zarr
               : format == "zarr3" ? Format::Zarr3
               : format == "tiff"  ? Format::Tiff
                                   : Format::Raw;
  if (zarr_version == 3 && o.format.value_or(format_for_path(o.path)) == Format::Zarr)
    o.format = Format::Zarr3;
  const bool zarr3 = o.format.value_or(format_for_path(o.path)) == Format::Zarr3;
  if (!zarr3 && (shard_frames || o.tile > 0)) {
    std::cerr << "fbsave: --shard-frames and --tile are Zarr v3's: add --format zarr3 (or "
                 "--zarr-version 3 for a .zarr path)\n";
    return 2;
  }
  o.chunk_frames = chunk_frames.value_or(zarr3 ? 1 : 16);
  o.shard_frames = shard_frames;
  o.compression = compress == "lz4"    ? Compression::Lz4
                  : compress == "zstd" ? Compression::Zstd
                                       : Compression::None;
  return tools::run_tool("fbsave", [&] {
    const auto summary = run_save(o);
    print_summary(summary, o.json);
    if (!summary.error.empty()) {
      std::cerr << "fbsave: " << summary.error << "\n";
      return summary.error.find("lost the broker") != std::string::npos ? 3 : 1;
    }
    return 0;
  });
}
