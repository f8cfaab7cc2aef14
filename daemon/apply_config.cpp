#include "apply_config.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "camera_factory.hpp"

namespace framebroker::daemon {
namespace {

const CameraConfig* find_camera(const BrokerConfig& c, const std::string& name) {
  for (const auto& cam : c.cameras)
    if (cam.stream.name == name) return &cam;
  return nullptr;
}

std::string property_value(const CameraConfig& cam, const std::string& key) {
  for (const auto& [k, v] : cam.properties)
    if (k == key) return v;
  return {};
}

bool same_stream_settings(const CameraConfig& a, const CameraConfig& b) {
  return a.driver == b.driver && a.stream.slots == b.stream.slots &&
         a.stream.ring_mb == b.stream.ring_mb && a.stream.ring_ms == b.stream.ring_ms &&
         a.stream.overflow == b.stream.overflow && a.start == b.start;
}

void warn_left(const std::string& what, const std::string& why) {
  spdlog::warn("reload: {} left as it is ({})", what, why);
}

// Sets the properties that differ on an idle camera; returns the camera's config as applied.
CameraConfig update_camera(Broker& broker, const CameraConfig& old, const CameraConfig& next) {
  CameraConfig applied = next;
  if (!same_stream_settings(old, next)) {
    warn_left(
        "camera " + next.stream.name + "'s driver, slots, ring_mb, ring_ms, overflow and start",
        "they change at the next restart, or remove the camera, reload, add it, reload");
    applied.driver = old.driver;
    applied.stream = old.stream;
    applied.start = old.start;
  }
  std::vector<std::pair<std::string, std::string>> changed;
  for (const auto& [k, v] : next.properties)
    if (property_value(old, k) != v) changed.emplace_back(k, v);
  for (const auto& [k, v] : old.properties)
    if (std::none_of(next.properties.begin(), next.properties.end(),
                     [&key = k](const auto& p) { return p.first == key; }))
      warn_left("camera " + next.stream.name + " property " + k + "=" + v,
                "removed from the file; a camera keeps its current value");
  if (changed.empty()) return applied;
  Stream* s = broker.find_stream(next.stream.name);
  if (s->camera().running()) {
    std::string names;
    for (const auto& [k, v] : changed) names += (names.empty() ? "" : ", ") + k + "=" + v;
    warn_left("camera " + next.stream.name + ": " + names,
              "it is running; stop it (fbctl stop) and reload again");
    applied.properties = old.properties;
    return applied;
  }
  for (const auto& [k, v] : changed) {
    try {
      s->camera().set(k, v);
      spdlog::info("reload: camera {}: {} = {}", next.stream.name, k, v);
    } catch (const std::exception& e) {
      spdlog::error("reload: camera {}: cannot set {} = {}: {}", next.stream.name, k, v, e.what());
      auto& props = applied.properties;
      std::erase_if(props, [&key = k](const auto& p) { return p.first == key; });
      if (auto was = property_value(old, k); !was.empty()) props.emplace_back(k, was);
    }
  }
  return applied;
}

}  // namespace

void add_camera(Broker& broker, const CameraConfig& cam) {
  PropertyList properties = cam.properties;
  std::unique_ptr<cameras::Camera> camera;
  try {
    camera = make_camera(cam.driver, cam.stream.name, properties);
  } catch (const cameras::CameraError& e) {
    throw ConfigError(e.what());
  }
  for (const auto& [k, v] : properties) {
    try {
      camera->set(k, v);
    } catch (const std::exception& e) {
      throw ConfigError("camera " + cam.stream.name + ": " + e.what());
    }
  }
  auto& stream = broker.add_stream(cam.stream, std::move(camera));
  if (cam.start) stream.start(std::nullopt);
  const auto f = stream.camera().format();
  spdlog::info("camera {} ({}): {}x{} {}, {}", cam.stream.name, cam.driver, f.width, f.height,
               cameras::to_string(f.pixel_type), cam.start ? "started" : "idle");
}

BrokerConfig apply_reload(Broker& broker, const BrokerConfig& running, const BrokerConfig& next) {
  BrokerConfig now = running;
  now.cameras.clear();
  auto left_if_changed = [](const char* what, const std::string& a, const std::string& b) {
    if (a != b)
      warn_left(std::string(what) + " '" + a + "' (file says '" + b + "')",
                "it changes at the next restart");
  };
  left_if_changed("instance", running.instance, next.instance);
  left_if_changed("runtime_dir", running.runtime_dir, next.runtime_dir);
  left_if_changed("socket", running.socket_path, next.socket_path);
  left_if_changed("group", running.group, next.group);
  left_if_changed("lock_memory", running.lock_memory ? "true" : "false",
                  next.lock_memory ? "true" : "false");
  left_if_changed("realtime_priority", std::to_string(running.realtime_priority),
                  std::to_string(next.realtime_priority));
  if (next.log_level != running.log_level) {
    spdlog::set_level(spdlog::level::from_str(next.log_level));
    spdlog::info("reload: log_level = {}", next.log_level);
    now.log_level = next.log_level;
  }

  for (const auto& old : running.cameras) {
    if (find_camera(next, old.stream.name)) continue;
    broker.remove_stream(old.stream.name);
    spdlog::info("reload: camera {} removed", old.stream.name);
  }
  for (const auto& cam : next.cameras) {
    if (const CameraConfig* old = find_camera(running, cam.stream.name)) {
      now.cameras.push_back(update_camera(broker, *old, cam));
      continue;
    }
    CameraConfig added = cam;
    added.stream.lock_memory = running.lock_memory;  // as the running broker does it
    added.stream.realtime_priority = running.realtime_priority;
    added.stream.group = running.group_id;
    try {
      add_camera(broker, added);
      spdlog::info("reload: camera {} added", cam.stream.name);
      now.cameras.push_back(std::move(added));
    } catch (const std::exception& e) {
      broker.remove_stream(cam.stream.name);
      spdlog::error("reload: camera {} not added: {}", cam.stream.name, e.what());
    }
  }
  return now;
}

}  // namespace framebroker::daemon
