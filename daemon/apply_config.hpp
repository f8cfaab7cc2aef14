// Turning a configuration into cameras, at start and again on SIGHUP.
#pragma once

#include "broker.hpp"
#include "config.hpp"

namespace framebroker::daemon {

// Opens the camera, sets its properties, adds its stream and starts it if asked.
// Throws ConfigError naming the camera.
void add_camera(Broker& broker, const CameraConfig& cam);

// Applies what can change live from `running` to `next`: cameras added or removed, changed
// properties of idle cameras, the log level. Everything else is logged as left as it is.
// Returns the configuration now in effect (`next`, minus what was left).
BrokerConfig apply_reload(Broker& broker, const BrokerConfig& running, const BrokerConfig& next);

}  // namespace framebroker::daemon
