// fbctl status | streams | subscribers | cameras
#include <iostream>
#include <nlohmann/json.hpp>

#include "fbctl/context.hpp"
#include "fbctl/status_view.hpp"

namespace framebroker::fbctl {

namespace {

// Prints one section of the status JSON, so every view shares its keys.
int print_json_section(const Status& s, const char* key) {
  std::cout << nlohmann::json::parse(to_json(s))[key].dump(2) << "\n";
  return kOk;
}

using View = void (*)(std::ostream&, const Status&);

void add_view(CLI::App& app, Context& ctx, const char* name, const char* what, const char* key,
              View view) {
  add_command(app, ctx, name, what, true, [key, view](Context& c) {
    auto s = c.connect().status();
    if (c.json) return key ? print_json_section(s, key) : (std::cout << to_json(s) << "\n", kOk);
    view(std::cout, s);
    return int(kOk);
  });
}

}  // namespace

void add_status_commands(CLI::App& app, Context& ctx) {
  add_view(app, ctx, "status",
           "broker, streams and subscribers at a glance\n  e.g. fbctl status --json", nullptr,
           print_status);
  add_view(app, ctx, "streams",
           "per stream: camera, generation, slots, free/writing/ready, fps, MB/s, published,\n"
           "dropped (ring full / camera-reported), latest seq, format\n  e.g. fbctl streams",
           "streams", print_streams);
  add_view(app, ctx, "subscribers",
           "per subscriber: client, pid, uid, stream, mode, window or max_hold, held, queued,\n"
           "delivered, missed, conflated, lag, connected since\n  e.g. fbctl subscribers --json",
           "subscribers", print_subscribers);
  add_view(app, ctx, "cameras",
           "per camera: driver, state (idle, running, error), frames, fps\n"
           "  e.g. fbctl cameras",
           "cameras", print_cameras);
}

}  // namespace framebroker::fbctl
