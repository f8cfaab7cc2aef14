// Makes a camera adapter from a driver name.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cameras/camera.hpp"

namespace framebroker::daemon {

using PropertyList = std::vector<std::pair<std::string, std::string>>;

// Opens the camera. Keys the driver takes at open (aravis: `device`) are removed from
// `properties`; the rest are for Camera::set(). Throws ConfigError for an unknown driver or a
// missing key, cameras::CameraError when the device cannot be opened.
std::unique_ptr<cameras::Camera> make_camera(const std::string& driver, const std::string& name,
                                             PropertyList& properties);

}  // namespace framebroker::daemon
