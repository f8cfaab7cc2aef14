// fbctl status | streams | subscribers | cameras
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/table.hpp"
#include "fbctl/context.hpp"
#include "fbctl/status_view.hpp"

namespace framebroker::fbctl {

using tools::Table;

namespace {

// Prints one section of the status JSON, so every view shares its keys.
int print_json_section(const Status& s, const char* key) {
  std::cout << nlohmann::json::parse(to_json(s))[key].dump(2) << "\n";
  return kOk;
}

using View = void (*)(std::ostream&, const Status&);

bool discover_ = false, include_fake_ = false;  // fbctl cameras --discover [--include-fake]

// The broker scans: it owns the cameras, and under the system service only its user may have the
// devices.
int print_devices(Context& c) {
  std::vector<DeviceInfo> devices;
  try {
    devices = c.connect().discover_cameras(include_fake_);
  } catch (const Error& e) {
    if (e.code() != Errc::BrokerNotRunning) throw;
    throw Error(e.code(), std::string("cameras --discover asks the broker for the devices it can "
                                      "open, and ") +
                              e.what());
  }
  if (c.json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& d : devices)
      a.push_back({{"id", d.id},
                   {"vendor", d.vendor},
                   {"model", d.model},
                   {"serial", d.serial},
                   {"protocol", d.protocol},
                   {"address", d.address},
                   {"physical_id", d.physical_id}});
    std::cout << a.dump(2) << "\n";
    return kOk;
  }
  Table t({"DEVICE", "VENDOR", "MODEL", "SERIAL", "PROTOCOL", "ADDRESS"});
  for (const auto& d : devices) t.row({d.id, d.vendor, d.model, d.serial, d.protocol, d.address});
  t.print(std::cout);
  if (t.empty())
    std::cout << "(no devices: check cables, power, udev rules for USB3, the network for GigE)\n";
  return kOk;
}

CLI::App* add_view(CLI::App& app, Context& ctx, const char* name, const char* what, const char* key,
                   View view) {
  return add_command(app, ctx, name, what, true, [key, view](Context& c) {
    if (view == print_cameras && discover_) return print_devices(c);
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
           "per subscriber: client, role, pid, uid, stream, mode, window or max_hold, held,\n"
           "queued, delivered, missed, conflated, lag, connected since\n"
           "  e.g. fbctl subscribers --json",
           "subscribers", print_subscribers);
  add_view(app, ctx, "bridges",
           "per fbbridge (clients with a bridge role that report their counters): role, client,\n"
           "pid, exported streams or imported peer, link state, MB/s, frames, gaps, lag, frames\n"
           "in flight; --json: every client's reported stats\n  e.g. fbctl bridges --json",
           "clients", print_bridges);
  auto* cameras = add_view(app, ctx, "cameras",
                           "per camera: driver, state (idle, running, error), frames, fps, error;\n"
                           "with --discover, the GenICam devices the broker can open\n"
                           "  e.g. fbctl cameras\n       fbctl cameras --discover",
                           "cameras", print_cameras);
  cameras->add_flag("--discover", discover_,
                    "list the devices the broker's Aravis can open (GigE Vision, USB3 Vision)\n"
                    "instead");
  cameras->add_flag("--include-fake", include_fake_,
                    "with --discover: also Aravis' simulated camera Fake_1 (no hardware needed)");
}

}  // namespace framebroker::fbctl
