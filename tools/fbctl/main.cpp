// fbctl: inspect and control a running framebrokerd.
#include <CLI/CLI.hpp>
#include <iostream>

#include "fbctl/exit_codes.hpp"
#include "fbctl/status_view.hpp"
#include "fbctl/watch.hpp"
#include "framebroker/client.hpp"

using namespace framebroker;
using namespace framebroker::fbctl;

namespace {

struct Common {
  std::string socket;
  std::string instance = "default";
  bool json = false;
};

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("--socket", c.socket,
                  "broker socket (default: $FRAMEBROKER_SOCKET or "
                  "<runtime_dir>/<instance>.sock)");
  cmd->add_option("--instance", c.instance, "broker instance")->capture_default_str();
}

Client connect(const Common& c) {
  ConnectOptions o;
  o.socket_path = c.socket;
  o.instance = c.instance;
  o.client_name = "fbctl";
  o.role = "control";
  return Client::connect(o);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fbctl: inspect and control a running framebrokerd.\n\n"
      "Examples:\n  fbctl status\n  fbctl watch sim0 --duration 10\n"
      "  fbctl set sim0 FrameRate 200\n  fbctl start sim0 --frames 1000",
      "fbctl"};
  app.require_subcommand(1);
  Common common;

  auto* status =
      app.add_subcommand("status", "broker, streams and subscribers (e.g. fbctl status --json)");
  add_common(status, common);
  status->add_flag("--json", common.json, "print JSON (stable keys)");

  WatchOptions w;
  std::string mode = "every";
  std::optional<uint64_t> frames;
  std::optional<double> duration;
  auto* watch = app.add_subcommand(
      "watch", "subscribe and print fps, delivered and gaps (e.g. fbctl watch sim0 --duration 10)");
  add_common(watch, common);
  watch->add_option("stream", w.stream, "stream to watch")->required();
  watch->add_option("--mode", mode, "every (lossless) or latest (newest only)")
      ->check(CLI::IsMember({"every", "latest"}))
      ->capture_default_str();
  watch->add_option("--frames", frames, "stop after N frames");
  watch->add_option("--duration", duration, "stop after S seconds")->check(CLI::PositiveNumber);
  watch->add_option("--hold", w.hold, "keep the first N frames unreleased until exit");
  watch->add_option("--max-hold", w.max_hold, "every: frames held+queued at most (0 = slots-4)");
  watch->add_option("--window", w.window, "latest: frames in flight at most (0 = 1)");
  watch->add_flag("--from-latest", w.from_latest, "start with the cached newest frame");
  watch->add_flag("--verify-counter", w.verify_counter,
                  "check every pixel of the sim camera's counter pattern; exit 1 on any error");
  watch->add_flag("--json", w.json, "print one JSON summary at the end");

  std::string cam, prop, value;
  std::optional<uint64_t> start_frames;
  auto* start = app.add_subcommand("start", "start a camera (e.g. fbctl start sim0 --frames 100)");
  add_common(start, common);
  start->add_option("camera", cam, "camera name")->required();
  start->add_option("--frames", start_frames, "acquire N frames, then stop (default: run on)");

  auto* stop = app.add_subcommand("stop", "stop a camera (e.g. fbctl stop sim0)");
  add_common(stop, common);
  stop->add_option("camera", cam, "camera name")->required();

  auto* get = app.add_subcommand("get", "read a camera property (e.g. fbctl get sim0 FrameRate)");
  add_common(get, common);
  get->add_option("camera", cam, "camera name")->required();
  get->add_option("property", prop, "property name")->required();

  auto* set =
      app.add_subcommand("set", "set a camera property (e.g. fbctl set sim0 Pattern counter)");
  add_common(set, common);
  set->add_option("camera", cam, "camera name")->required();
  set->add_option("property", prop, "property name")->required();
  set->add_option("value", value, "new value")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }

  return guarded([&]() -> int {
    auto client = connect(common);
    if (*status) {
      auto s = client.status();
      if (common.json)
        std::cout << to_json(s) << "\n";
      else
        print_status(std::cout, s);
      return kOk;
    }
    if (*watch) {
      w.mode = mode == "latest" ? Mode::Latest : Mode::Every;
      w.frames = frames;
      w.duration_s = duration;
      return run_watch(client, w);
    }
    auto camera = client.camera(cam);
    if (*start) camera.start(start_frames);
    if (*stop) camera.stop();
    if (*get) std::cout << camera.get(prop) << "\n";
    if (*set) camera.set(prop, value);
    return kOk;
  });
}
