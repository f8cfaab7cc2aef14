// fbproc: a processor between two streams. It subscribes to one in `every` mode and publishes
// the result with `block`, so a chain of fbprocs and an fbsave at its end loses nothing.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "common/run_tool.hpp"
#include "fbproc/processor.hpp"
#include "framebroker/error.hpp"

using namespace framebroker;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fbproc: process one stream of framebrokerd into a new stream that every tool sees like a\n"
      "camera's. It takes every frame of the source and blocks while its own subscribers are\n"
      "behind, so nothing is lost between them; each output frame names the source frame it\n"
      "came from (source_stream, source_seq), so a loss upstream shows as a gap downstream.\n\n"
      "Ops:\n"
      "  copy             the frame as it is\n"
      "  bin=N[,sum]      N x N binning: the mean (rounded down), or the sum (saturated)\n"
      "  roi=x,y,w,h      a region of interest\n"
      "  max-project=K    one frame per K: the maximum of each pixel (a live MIP of a z-stack)\n"
      "  mean=K           one frame per K: the mean of each pixel (rounded down)\n"
      "  max-project=z    along an axis of a sequence (t, p, c or z): one frame per volume, the\n"
      "                   maximum over its z planes by their z index; the output has no z axis\n"
      "  mean=t:K         the mean over each K consecutive time points (per c, z); t keeps T/K\n"
      "                   (rounded up: a last partial block is the mean of what it has).\n"
      "                   Also max-project=AXIS:K and mean=AXIS (the whole axis)\n"
      "  none             metadata only, pixels not written (to measure a hop: fbbench chain)\n\n"
      "A sequence in gives a sequence out: the axis ops publish the reduced sequence (each frame\n"
      "with its index in it), copy, bin, roi and none pass it on as it is. Planes lost upstream\n"
      "do not contribute; an output is made when its last index came, when a later frame\n"
      "shows it will not, or when the sequence finishes.\n\n"
      "Examples:\n"
      "  fbproc --from sim0 --to sim0.bin2 --op bin=2\n"
      "  fbproc --from sim0.bin2 --to sim0.mip --op max-project=10 &  fbsave sim0.mip -o "
      "mip.ome.zarr\n"
      "  fbproc --from sim0 --to sim0.mip --op max-project=z &  fbctl start sim0 --frames 600 "
      "--axes t=10,c=2,z=30\n\n"
      "It ends when the source stream ends, or on Ctrl-C; its own stream ends after its last "
      "frame.\n"
      "Exit codes: 0 done, 1 error (the message says which), 2 usage, 3 broker not running or "
      "lost.",
      "fbproc"};
  fbproc::ProcOptions o;
  bool quiet = false;
  app.add_option("--from", o.from, "the stream to read (every frame)")->required();
  app.add_option("--to", o.to, "the name of the stream to publish")->required();
  app.add_option("--op", o.op, "the operation (see above)")->required();
  app.add_option("--slots", o.slots, "slots in the output ring (default: the broker's)");
  app.add_flag("-q,--quiet", quiet, "print no summary at the end");
  app.add_option("--socket", o.connect.socket_path,
                 "broker socket (default: $FRAMEBROKER_SOCKET or the instance's)");
  app.add_option("--instance", o.connect.instance, "broker instance")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.connect.client_name = "fbproc " + o.to;
  o.connect.role = "processor";
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return tools::run_tool("fbproc", [&] {
    const auto s = fbproc::run_processor(o, g_stop);
    if (!quiet) {
      std::fprintf(stderr, "fbproc: %s -> %s (%s): %llu frames in, %llu out%s\n", o.from.c_str(),
                   o.to.c_str(), o.op.c_str(), (unsigned long long)s.frames_in,
                   (unsigned long long)s.frames_out, s.source_ended ? ", the source ended" : "");
      if (s.left_over > 0)
        std::fprintf(stderr,
                     "fbproc: the last %llu input frames did not make a whole output frame\n",
                     (unsigned long long)s.left_over);
      if (s.late > 0)
        std::fprintf(stderr,
                     "fbproc: %llu input frames came after their output was made, and were left "
                     "out\n",
                     (unsigned long long)s.late);
    }
    return 0;
  });
}
