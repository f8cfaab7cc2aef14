// fbctl props | get | set | start | stop: drive a camera.
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/table.hpp"
#include "fbctl/context.hpp"

namespace framebroker::fbctl {

using tools::fixed;
using tools::Table;

namespace {

struct CameraArgs {
  std::string camera, property, value;
  std::optional<uint64_t> frames;
};

std::string limits_of(const PropertyInfo& p) {
  if (!p.allowed.empty()) {
    std::string s;
    for (const auto& a : p.allowed) s += (s.empty() ? "" : "|") + a;
    return s;
  }
  if (p.min || p.max) {
    auto num = [](double v) {
      std::string s = fixed(v, 3);
      while (s.back() == '0') s.pop_back();
      if (s.back() == '.') s.pop_back();
      return s;
    };
    return "[" + (p.min ? num(*p.min) : "") + ", " + (p.max ? num(*p.max) : "") + "]";
  }
  return "";
}

int print_props(Context& c, const std::string& camera) {
  auto props = c.connect().camera(camera).properties();
  if (c.json) {
    auto arr = nlohmann::json::array();
    for (const auto& p : props) {
      nlohmann::json j = {{"name", p.name},
                          {"type", p.type},
                          {"value", p.value},
                          {"unit", p.unit},
                          {"read_only", p.read_only}};
      if (p.min) j["min"] = *p.min;
      if (p.max) j["max"] = *p.max;
      if (!p.allowed.empty()) j["allowed"] = p.allowed;
      arr.push_back(j);
    }
    std::cout << nlohmann::json{{"camera", camera}, {"properties", arr}}.dump(2) << "\n";
    return kOk;
  }
  Table t({"PROPERTY", "TYPE", "VALUE", "UNIT", "LIMITS / ALLOWED", "ACCESS"});
  for (const auto& p : props)
    t.row({p.name, p.type, p.value, p.unit, limits_of(p), p.read_only ? "read-only" : "rw"});
  t.print(std::cout);
  return kOk;
}

}  // namespace

void add_camera_commands(CLI::App& app, Context& ctx) {
  static CameraArgs a;
  auto* props = add_command(app, ctx, "props",
                            "every property of a camera: type, value, unit, limits or allowed "
                            "values, read-only\n  e.g. fbctl props sim0",
                            true, [](Context& c) { return print_props(c, a.camera); });
  props->add_option("camera", a.camera, "camera name")->required();

  auto* get = add_command(
      app, ctx, "get", "print one property\n  e.g. fbctl get sim0 FrameRate", true, [](Context& c) {
        const auto v = c.connect().camera(a.camera).get(a.property);
        if (c.json)
          std::cout
              << nlohmann::json{{"camera", a.camera}, {"property", a.property}, {"value", v}}.dump()
              << "\n";
        else
          std::cout << v << "\n";
        return int(kOk);
      });
  get->add_option("camera", a.camera, "camera name")->required();
  get->add_option("property", a.property, "property name")->required();

  auto* set = add_command(app, ctx, "set",
                          "set one property (format properties only while stopped)\n  e.g. fbctl "
                          "set sim0 Pattern counter",
                          false, [](Context& c) {
                            c.connect().camera(a.camera).set(a.property, a.value);
                            return int(kOk);
                          });
  set->add_option("camera", a.camera, "camera name")->required();
  set->add_option("property", a.property, "property name")->required();
  set->add_option("value", a.value, "new value")->required();

  auto* start = add_command(app, ctx, "start",
                            "start a camera, continuously or for N frames\n"
                            "  e.g. fbctl start sim0 --frames 1000",
                            false, [](Context& c) {
                              c.connect().camera(a.camera).start(a.frames);
                              return int(kOk);
                            });
  start->add_option("camera", a.camera, "camera name")->required();
  start->add_option("--frames", a.frames, "acquire N frames, then stop");

  auto* stop =
      add_command(app, ctx, "stop", "stop a camera\n  e.g. fbctl stop sim0", false, [](Context& c) {
        c.connect().camera(a.camera).stop();
        return int(kOk);
      });
  stop->add_option("camera", a.camera, "camera name")->required();
}

}  // namespace framebroker::fbctl
