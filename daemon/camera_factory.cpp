#include "camera_factory.hpp"

#include "cameras/aravis/aravis_camera.hpp"
#include "cameras/sim/sim_camera.hpp"
#include "config.hpp"

namespace framebroker::daemon {
namespace {

// Removes and returns the value of `key` (or its capitalised spelling).
std::optional<std::string> take(PropertyList& props, const std::string& key,
                                const std::string& capitalised) {
  for (auto it = props.begin(); it != props.end(); ++it) {
    if (it->first != key && it->first != capitalised) continue;
    std::string v = it->second;
    props.erase(it);
    return v;
  }
  return std::nullopt;
}

}  // namespace

std::unique_ptr<cameras::Camera> make_camera(const std::string& driver, const std::string& name,
                                             PropertyList& properties) {
  if (driver == "sim") return std::make_unique<cameras::SimCamera>(name);
  if (driver == "aravis") {
    const auto device = take(properties, "device", "Device");
    if (!device || device->empty())
      throw ConfigError("camera " + name +
                        ": the aravis driver needs device = an Aravis id, serial number, user "
                        "id or IP address (fbctl cameras --discover lists them)");
    return std::make_unique<cameras::AravisCamera>(name, *device);
  }
  throw ConfigError("unknown camera driver '" + driver + "' (known: sim, aravis)");
}

}  // namespace framebroker::daemon
