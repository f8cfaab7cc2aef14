#include "camera_factory.hpp"

#include "cameras/sim/sim_camera.hpp"
#include "config.hpp"

namespace framebroker::daemon {

std::unique_ptr<cameras::Camera> make_camera(const std::string& driver, const std::string& name) {
  if (driver == "sim") return std::make_unique<cameras::SimCamera>(name);
  throw ConfigError("unknown camera driver '" + driver + "' (known: sim)");
}

}  // namespace framebroker::daemon
