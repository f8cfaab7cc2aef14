// fbctl watch STREAM: a subscriber for people and scripts.
#include "fbctl/context.hpp"
#include "fbctl/watch.hpp"

namespace framebroker::fbctl {

void add_watch_command(CLI::App& app, Context& ctx) {
  static WatchOptions w;
  static std::string mode = "every";
  auto* cmd = add_command(
      app, ctx, "watch",
      "subscribe and print fps, delivered and dropped once a second\n"
      "  e.g. fbctl watch sim0 --duration 10\n"
      "       fbctl watch sim0 --mode latest --hold 1     (a viewer that never lets go)",
      true, [](Context& c) {
        w.mode = mode == "latest" ? Mode::Latest : Mode::Every;
        w.json = c.json;
        auto client = c.connect();
        return run_watch(client, w);
      });
  cmd->add_option("stream", w.stream, "stream to watch")->required();
  cmd->add_option("--mode", mode, "every (lossless) or latest (newest only)")
      ->check(CLI::IsMember({"every", "latest"}))
      ->capture_default_str();
  cmd->add_option("--frames", w.frames, "stop after N frames");
  cmd->add_option("--duration", w.duration_s, "stop after S seconds")->check(CLI::PositiveNumber);
  cmd->add_option("--hold", w.hold, "keep the first N frames unreleased until exit");
  cmd->add_option("--max-hold", w.max_hold, "every: frames held+queued at most (0 = slots-4)");
  cmd->add_option("--window", w.window, "latest: frames in flight at most (0 = 1)");
  cmd->add_flag("--from-latest", w.from_latest, "start with the cached newest frame");
  cmd->add_flag("--verify-counter", w.verify_counter,
                "check every pixel of the sim camera's counter pattern; exit 1 on any error");
  cmd->get_option("--json")->description("print one JSON summary at the end");
}

}  // namespace framebroker::fbctl
