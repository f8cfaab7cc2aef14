// fbctl props | get | set | start | stop: drive a camera.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/table.hpp"
#include "fbctl/context.hpp"

namespace framebroker::fbctl {

using tools::fixed;
using tools::Table;

namespace {

struct CameraArgs {
  std::string camera, property, value;
  std::optional<uint64_t> frames;
  // fbctl start's sequence: --axes, --order, --channels, --z-step, --interval, --meta.
  std::string axes, order, meta;
  std::vector<std::string> channels;
  std::optional<double> z_step_um, interval_ms;
};

[[noreturn]] void usage(const std::string& message) {
  throw Error(Errc::InvalidArgument, message);
}

// The file's text, verbatim, once it is known to be a JSON object within the broker's limit.
std::string read_metadata(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) usage("--meta " + path + ": " + ec.message());
  if (size > SequenceSpec::kMaxMetadataBytes)
    usage("--meta " + path + " is " + std::to_string(size) + " bytes; the limit is " +
          std::to_string(SequenceSpec::kMaxMetadataBytes) + " (64 KiB)");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) usage("--meta " + path + ": cannot read it");
  const auto j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded()) usage("--meta " + path + " is not valid JSON");
  if (!j.is_object())
    usage("--meta " + path + " holds a JSON " + j.type_name() + "; it must be an object {...}");
  return text.str();
}

// The sequence fbctl start was asked for, or nullopt for a plain start. Throws
// Error(InvalidArgument) with a message for the user.
std::optional<SequenceSpec> sequence_of(const CameraArgs& a) {
  if (a.axes.empty()) {
    const char* needs_axes = !a.order.empty()      ? "--order"
                             : !a.meta.empty()     ? "--meta"
                             : !a.channels.empty() ? "--channels"
                             : a.z_step_um         ? "--z-step"
                             : a.interval_ms       ? "--interval"
                                                   : nullptr;
    if (needs_axes)
      usage(std::string(needs_axes) +
            " describes a sequence: give its axes too, e.g. --axes t=10,c=2,z=100");
    return std::nullopt;
  }
  SequenceSpec spec;
  try {
    spec = SequenceSpec::parse(a.axes, a.order);
  } catch (const std::invalid_argument& e) {
    usage(e.what());
  }
  spec.channels = a.channels;
  spec.z_step_um = a.z_step_um.value_or(0);
  spec.interval_ms = a.interval_ms.value_or(0);
  if (!a.meta.empty()) spec.metadata = read_metadata(a.meta);
  try {
    spec.check();
  } catch (const std::invalid_argument& e) {
    usage(e.what());
  }
  if (a.frames && *a.frames != spec.frames())
    usage("--frames " + std::to_string(*a.frames) + " does not match --axes " + spec.axes_text() +
          ", which make " + std::to_string(spec.frames()) +
          " frames (leave out --frames to take the product)");
  return spec;
}

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

  auto* start = add_command(
      app, ctx, "start",
      "start a camera, continuously, for N frames, or for a sequence with axes\n"
      "  e.g. fbctl start sim0 --frames 1000\n"
      "       fbctl start sim0 --frames 120 --axes t=3,c=2,z=20 --order tcz \\\n"
      "             --channels 488,561 --z-step 0.5 --meta mda.json",
      false, [](Context& c) {
        const auto spec = sequence_of(a);  // before connecting: a bad command line is exit 2
        auto camera = c.connect().camera(a.camera);
        if (spec)
          camera.start(*spec);
        else
          camera.start(a.frames);
        return int(kOk);
      });
  start->add_option("camera", a.camera, "camera name")->required();
  start->add_option("--frames", a.frames,
                    "acquire N frames, then stop (with --axes: must equal their product, which "
                    "is the default)");
  start->add_option("--axes", a.axes,
                    "run a sequence: axes and sizes, from t (time), p (position), c (channel), z;\n"
                    "e.g. t=10,c=2,z=100. Subscribers get the sequence first, then every frame\n"
                    "with its index on each axis");
  start->add_option("--order", a.order,
                    "acquisition order, outermost first, each axis once (default: as in --axes;\n"
                    "the last letter changes fastest), e.g. tcz");
  start->add_option("--channels", a.channels, "names of the c axis' channels, e.g. 488,561")
      ->delimiter(',');
  start->add_option("--z-step", a.z_step_um, "z step in micrometres")
      ->check(CLI::NonNegativeNumber);
  start->add_option("--interval", a.interval_ms, "time between time points in milliseconds")
      ->check(CLI::NonNegativeNumber);
  start->add_option("--meta", a.meta,
                    "a file holding a JSON object (at most 64 KiB), forwarded verbatim to\n"
                    "subscribers as the sequence's metadata (e.g. a useq MDASequence)");

  auto* stop =
      add_command(app, ctx, "stop", "stop a camera\n  e.g. fbctl stop sim0", false, [](Context& c) {
        c.connect().camera(a.camera).stop();
        return int(kOk);
      });
  stop->add_option("camera", a.camera, "camera name")->required();
}

}  // namespace framebroker::fbctl
