// Makes a camera adapter from a driver name.
#pragma once

#include <memory>
#include <string>

#include "cameras/camera.hpp"

namespace framebroker::daemon {

// Throws ConfigError for an unknown driver, listing the known ones.
std::unique_ptr<cameras::Camera> make_camera(const std::string& driver, const std::string& name);

}  // namespace framebroker::daemon
