// fbreplay: a dataset fbsave wrote (OME-Zarr, OME-TIFF or raw), published again as a live
// stream that every tool sees like a camera's.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/run_tool.hpp"
#include "fbreplay/replayer.hpp"
#include "framebroker/error.hpp"

using namespace framebroker;

namespace {

void print_summary(const fbreplay::ReplaySummary& s, bool json) {
  if (json) {
    std::cout
        << nlohmann::json{{"dataset", s.dataset},     {"format", s.format},
                          {"stream", s.as},           {"frames_in_dataset", s.frames_in_dataset},
                          {"published", s.published}, {"passes", s.passes},
                          {"elapsed_s", s.elapsed_s}, {"interrupted", s.interrupted}}
               .dump()
        << "\n";
    return;
  }
  std::fprintf(stderr, "%s (%s): %llu frames published as %s, %llu whole passes, %.1f s%s\n",
               s.dataset.c_str(), s.format.c_str(), (unsigned long long)s.published, s.as.c_str(),
               (unsigned long long)s.passes, s.elapsed_s, s.interrupted ? ", interrupted" : "");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fbreplay: publish a dataset fbsave wrote (OME-Zarr, OME-TIFF or raw) as a live stream of\n"
      "framebrokerd, which every tool (fbview, fbsave, fbproc, your own clients) sees like a\n"
      "camera's. Nothing is lost: it publishes with `block`, so it waits for its slowest `every`\n"
      "subscriber. Each frame keeps its saved metadata: camera_frame_id, the hardware timestamp,\n"
      "the camera's exposure, and as its source the recorded stream and seq (source_stream,\n"
      "source_seq).\n\n"
      "Pace: --fps F publishes F frames a second; --as-recorded keeps the intervals the frames\n"
      "were recorded at; with neither, frames go as fast as the subscribers take them.\n\n"
      "Examples:\n"
      "  fbreplay run1.ome.zarr --as replay0 --fps 30 --loop\n"
      "  fbreplay run1.ome.tif --as replay0 --as-recorded\n"
      "  fbreplay run1/ --as replay0 --wait-subscribers 1 &  fbsave replay0 -o copy.ome.zarr\n\n"
      "It ends after the last frame (never with --loop; Ctrl-C stops it), and its stream ends "
      "with\n"
      "it: subscribers see the end of the stream.\n"
      "Exit codes: 0 done (also after Ctrl-C), 1 error (the message names the dataset), 2 usage,\n"
      "3 broker not running or lost.",
      "fbreplay"};
  fbreplay::ReplayOptions o;
  bool quiet = false, json = false;
  app.add_option("dataset", o.dataset,
                 "the dataset: a .zarr directory, an .ome.tif file, or a raw directory")
      ->required();
  app.add_option("--as", o.as, "the name of the stream to publish")->required();
  auto* fps =
      app.add_option("--fps", o.fps, "publish F frames a second")->check(CLI::PositiveNumber);
  app.add_flag("--as-recorded", o.as_recorded,
               "keep the intervals between the frames' saved timestamps")
      ->excludes(fps);
  app.add_flag("--loop", o.loop, "start again after the last frame, until stopped");
  app.add_option("--wait-subscribers", o.wait_subscribers,
                 "wait until N clients subscribe to the stream before the first frame");
  app.add_option("--slots", o.slots, "slots in the stream's ring (default: the library's, 16)");
  app.add_flag("--json", json, "print the summary as JSON on stdout");
  app.add_flag("-q,--quiet", quiet, "print no summary at the end");
  app.add_option("--socket", o.socket,
                 "broker socket (default: $FRAMEBROKER_SOCKET or the instance's)");
  app.add_option("--instance", o.instance, "broker instance")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return tools::run_tool("fbreplay", [&] {
    const auto summary = fbreplay::run_replay(o);
    if (!quiet || json) print_summary(summary, json);
    return 0;
  });
}
