#include "config.hpp"

#include <grp.h>
#include <toml++/toml.h>
#include <charconv>
#include <set>

#include "framebroker/runtime.hpp"

namespace framebroker::daemon {

namespace {

uint32_t parse_u32(std::string_view key, std::string_view value, uint32_t min, uint32_t max) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || v < min || v > max)
    throw ConfigError(std::string(key) + " must be an integer in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "], got '" + std::string(value) + "'");
  return v;
}

// A camera of the configuration: its ring holds ring_ms of frames unless it says slots or ring_mb.
CameraConfig new_camera() {
  CameraConfig cam;
  cam.stream.ring_ms = StreamConfig::kDefaultRingMs;
  return cam;
}

// What a camera's keys said about its ring: an explicit slots= or ring_mb= wins over ring_ms.
struct RingKeys {
  bool sized = false;
  void apply(CameraConfig& cam) const {
    if (sized) cam.stream.ring_ms = 0;
  }
};

// Applies one key of a camera spec or [[camera]] table; false if it is not a
// stream key (then it is a property).
bool apply_stream_key(CameraConfig& cam, std::string_view key, std::string_view value,
                      RingKeys& ring) {
  if (key == "name") {
    cam.stream.name = value;
  } else if (key == "slots") {
    cam.stream.slots = parse_u32(key, value, 2, 65536);
    ring.sized = true;
  } else if (key == "ring_mb") {
    cam.stream.ring_mb = parse_u32(key, value, 1, 1 << 20);
    ring.sized = true;
  } else if (key == "ring_ms") {
    cam.stream.ring_ms = parse_u32(key, value, 1, 600'000);
  } else if (key == "overflow") {
    if (value == "drop")
      cam.stream.overflow = Overflow::Drop;
    else if (value == "block")
      cam.stream.overflow = Overflow::Block;
    else
      throw ConfigError("overflow must be 'drop' or 'block', got '" + std::string(value) + "'");
  } else if (key == "start") {
    if (value != "true" && value != "false")
      throw ConfigError("start must be true or false, got '" + std::string(value) + "'");
    cam.start = value == "true";
  } else {
    return false;
  }
  return true;
}

std::string toml_value_text(const toml::node& node, const std::string& key) {
  if (auto s = node.value<std::string>()) return *s;
  if (node.is_integer()) return std::to_string(*node.value<int64_t>());
  if (node.is_floating_point()) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, *node.value<double>());  // shortest exact form
    return std::string(buf, r.ptr);
  }
  if (auto b = node.value<bool>()) return *b ? "true" : "false";
  throw ConfigError("camera key '" + key + "' must be a string, number or boolean");
}

}  // namespace

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 48) return false;
  for (char ch : name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-')) return false;
  return true;
}

CameraConfig parse_camera_spec(std::string_view spec) {
  CameraConfig cam = new_camera();
  RingKeys ring;
  const auto colon = spec.find(':');
  cam.driver = std::string(spec.substr(0, colon));
  if (cam.driver.empty())
    throw ConfigError("camera spec '" + std::string(spec) + "' names no driver");
  std::string_view rest = colon == std::string_view::npos ? "" : spec.substr(colon + 1);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      throw ConfigError("camera spec item '" + std::string(item) + "' is not KEY=VALUE");
    const auto key = item.substr(0, eq), value = item.substr(eq + 1);
    if (!apply_stream_key(cam, key, value, ring)) cam.properties.emplace_back(key, value);
  }
  ring.apply(cam);
  return cam;
}

void load_toml_file(const std::string& path, BrokerConfig& config) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw ConfigError(path + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
                      ": " + std::string(e.description()));
  }
  static const std::set<std::string> known = {
      "instance",          "runtime_dir",    "socket",
      "log_level",         "camera",         "default_camera",
      "lock_memory",       "group",          "control_group",
      "publish_group",     "max_publish_mb", "max_clients",
      "max_subscriptions", "max_queued_mb",  "realtime_priority"};
  for (const auto& [k, v] : tbl) {
    if (!known.count(std::string(k.str())))
      throw ConfigError(path + ": unknown key '" + std::string(k.str()) +
                        "' (known: instance, runtime_dir, socket, log_level, default_camera, "
                        "lock_memory, group, control_group, publish_group, max_publish_mb, "
                        "max_clients, max_subscriptions, max_queued_mb, realtime_priority, "
                        "[[camera]])");
  }
  auto str_or = [&](const char* key, std::string& out) {
    if (auto v = tbl[key].value<std::string>(); v && out.empty()) out = *v;
  };
  if (auto v = tbl["instance"].value<std::string>(); v && config.instance == "default")
    config.instance = *v;
  str_or("runtime_dir", config.runtime_dir);
  str_or("socket", config.socket_path);
  str_or("group", config.group);
  str_or("control_group", config.control_group);
  str_or("publish_group", config.publish_group);
  if (tbl.contains("max_publish_mb")) {
    const auto v = tbl["max_publish_mb"].value<int64_t>();
    if (!v || *v < 0)
      throw ConfigError(path +
                        ": max_publish_mb must be a whole number of MiB (0: a quarter of "
                        "the RAM)");
    if (config.max_publish_mb == 0) config.max_publish_mb = uint64_t(*v);
  }
  // The file sets a limit the flags left at its default.
  auto limit = [&](const char* key, uint64_t& out, uint64_t fallback, const char* what) {
    if (!tbl.contains(key)) return;
    const auto v = tbl[key].value<int64_t>();
    if (!v || *v < 1 || *v > 1'000'000)
      throw ConfigError(path + ": " + key + " must be a whole number from 1 to 1000000 (" + what +
                        ")");
    if (out == fallback) out = uint64_t(*v);
  };
  const BrokerConfig defaults;
  limit("max_clients", config.max_clients, defaults.max_clients, "connected clients");
  limit("max_subscriptions", config.max_subscriptions, defaults.max_subscriptions,
        "subscriptions per client");
  limit("max_queued_mb", config.max_queued_mb, defaults.max_queued_mb,
        "MiB a client may leave unread before it is disconnected");
  if (auto v = tbl["log_level"].value<std::string>(); v && config.log_level == "info")
    config.log_level = *v;
  if (auto v = tbl["default_camera"].value<bool>()) config.default_camera = *v;
  if (auto v = tbl["lock_memory"].value<bool>()) config.lock_memory = config.lock_memory || *v;
  if (tbl.contains("realtime_priority")) {
    const auto v = tbl["realtime_priority"].value<int64_t>();
    if (!v || *v < 0 || *v > 99)
      throw ConfigError(path +
                        ": realtime_priority must be a whole number from 0 (off) to 99 "
                        "(SCHED_FIFO priority of the camera threads)");
    if (config.realtime_priority == 0) config.realtime_priority = int(*v);
  }

  const auto* cams = tbl["camera"].as_array();
  if (!cams) {
    if (tbl.contains("camera")) throw ConfigError(path + ": 'camera' must be [[camera]] tables");
    return;
  }
  for (const auto& node : *cams) {
    const auto* t = node.as_table();
    if (!t) throw ConfigError(path + ": each [[camera]] must be a table");
    CameraConfig cam = new_camera();
    RingKeys ring;
    for (const auto& [k, v] : *t) {
      const std::string key(k.str());
      if (key == "driver") {
        cam.driver = toml_value_text(v, key);
      } else if (key == "device") {  // which device the driver opens (aravis)
        cam.properties.emplace_back(key, toml_value_text(v, key));
      } else if (key == "properties") {
        const auto* props = v.as_table();
        if (!props) throw ConfigError(path + ": [camera.properties] must be a table");
        for (const auto& [pk, pv] : *props)
          cam.properties.emplace_back(std::string(pk.str()),
                                      toml_value_text(pv, std::string(pk.str())));
      } else if (!apply_stream_key(cam, key, toml_value_text(v, key), ring)) {
        throw ConfigError(path + ": unknown [[camera]] key '" + key +
                          "' (known: driver, device, name, slots, ring_mb, ring_ms, overflow, "
                          "start, [camera.properties])");
      }
    }
    ring.apply(cam);
    config.cameras.push_back(std::move(cam));
  }
}

CameraConfig default_camera() {
  CameraConfig cam = new_camera();
  cam.driver = "sim";
  cam.stream.name = "sim0";
  return cam;
}

namespace {

// -1 for no group; else the gid of `name`, or a ConfigError naming `key`.
int group_id(const std::string& name, const char* key, const char* remove_to) {
  if (name.empty()) return -1;
  const struct group* g = ::getgrnam(name.c_str());
  if (!g)
    throw ConfigError(std::string(key) + " '" + name +
                      "' does not exist (create it with groupadd, or remove " + key + " " +
                      remove_to + ")");
  return int(g->gr_gid);
}

}  // namespace

void finalize(BrokerConfig& config) {
  if (!valid_name(config.instance))
    throw ConfigError("instance name '" + config.instance +
                      "' must be 1-48 characters of letters, digits, '_' or '-'");
  if (config.runtime_dir.empty()) config.runtime_dir = default_runtime_dir();
  if (config.socket_path.empty())
    config.socket_path = socket_path_in(config.runtime_dir, config.instance);
  if (config.cameras.empty() && config.default_camera) config.cameras.push_back(default_camera());
  static const std::set<std::string> levels = {"trace", "debug",    "info", "warn",
                                               "error", "critical", "off"};
  if (!levels.count(config.log_level))
    throw ConfigError("log_level '" + config.log_level +
                      "' is not one of trace, debug, info, warn, error, critical, off");
  std::set<std::string> names;
  for (const auto& cam : config.cameras)
    if (!cam.stream.name.empty()) names.insert(cam.stream.name);
  for (auto& cam : config.cameras) {
    if (!cam.stream.name.empty()) continue;
    for (int n = 0; cam.stream.name.empty(); ++n)  // driver0, driver1, ... not taken yet
      if (!names.count(cam.driver + std::to_string(n)))
        cam.stream.name = cam.driver + std::to_string(n);
    names.insert(cam.stream.name);
  }
  names.clear();
  for (auto& cam : config.cameras) {
    if (!valid_name(cam.stream.name))
      throw ConfigError("camera name '" + cam.stream.name +
                        "' must be 1-48 characters of letters, digits, '_' or '-'");
    if (!names.insert(cam.stream.name).second)
      throw ConfigError("two cameras are named '" + cam.stream.name + "'");
    cam.stream.lock_memory = config.lock_memory;
    cam.stream.realtime_priority = config.realtime_priority;
  }
  config.group_id = -1;
  config.group_id = group_id(config.group, "group", "to leave the files the broker's group");
  for (auto& cam : config.cameras) cam.stream.group = config.group_id;
  config.control_group_id =
      group_id(config.control_group, "control_group", "to let every client control the cameras");
  config.publish_group_id =
      group_id(config.publish_group, "publish_group", "to let every client publish");
}

}  // namespace framebroker::daemon
