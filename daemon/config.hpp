// The broker's configuration: command-line flags, an optional TOML file, and
// `--camera` specs such as
//   sim:name=cam0,Width=1024,Height=1024,PixelType=Mono16,FrameRate=200,slots=32,overflow=drop
// Keys a stream understands (name, slots, ring_mb, ring_ms, overflow, start) configure
// the stream; every other key is a camera property.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stream.hpp"

namespace framebroker::daemon {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CameraConfig {
  std::string driver = "sim";
  StreamConfig stream;  // stream.name is the camera's name too
  std::vector<std::pair<std::string, std::string>> properties;
  bool start = true;
};

struct BrokerConfig {
  std::string instance = "default";
  std::string runtime_dir;  // empty: the default (see runtime.hpp)
  std::string socket_path;  // empty: <runtime_dir>/<instance>.sock
  std::string log_level = "info";
  bool default_camera = true;
  bool lock_memory = false;
  // SCHED_FIFO priority (1-99) of the camera threads; 0: normal scheduling. Where it is not
  // permitted, nice -10 (logged once).
  int realtime_priority = 0;
  std::string group;  // owner group of the socket and segments (empty: the broker's own)
  int group_id = -1;  // resolved by finalize()
  // Only members (and root, and the broker's own user) may start, stop, snap or set a camera
  // (empty: anyone who can connect).
  std::string control_group;
  int control_group_id = -1;  // resolved by finalize()
  // Only members (and root, and the broker's own user) may publish a stream (empty: anyone who
  // can connect).
  std::string publish_group;
  int publish_group_id = -1;  // resolved by finalize()
  // The largest ring one publishing client may ask for, in MiB (0: a quarter of the RAM).
  uint64_t max_publish_mb = 0;
  // Per broker and per client: what one misbehaving program may take (refusals name the key).
  uint64_t max_clients = 256;
  uint64_t max_subscriptions = 64;  // per client
  uint64_t max_queued_mb = 16;      // a client that leaves more unread is disconnected
  std::vector<CameraConfig> cameras;
};

// Names of instances, streams and cameras: [A-Za-z0-9_-], 1 to 48 characters
// (they become parts of shared-memory names).
bool valid_name(std::string_view name);

CameraConfig parse_camera_spec(std::string_view spec);
// Reads a TOML file into `config` (values already set by flags win).
void load_toml_file(const std::string& path, BrokerConfig& config);
// The camera of a broker started with no configuration.
CameraConfig default_camera();
// Fills in defaults and checks the whole configuration.
void finalize(BrokerConfig& config);

}  // namespace framebroker::daemon
