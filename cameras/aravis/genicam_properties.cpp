#include "cameras/aravis/genicam_properties.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cameras/pixel_format.hpp"

namespace framebroker::cameras::genicam {
namespace {

constexpr const char* kPrefix = "genicam.";

// Our pixel types and their GenICam names; Mono10/12 come unpacked in 16-bit words.
const std::vector<std::pair<PixelType, const char*>> kPixelFormats = {
    {PixelType::Mono8, "Mono8"},   {PixelType::Mono10, "Mono10"}, {PixelType::Mono12, "Mono12"},
    {PixelType::Mono16, "Mono16"}, {PixelType::RGB8, "RGB8"},
};

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// A value as it may be quoted in a message: control characters escaped, so a refused value
// cannot break a log line.
std::string shown(const std::string& v) {
  std::string out;
  for (const unsigned char ch : v) {
    if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += char(ch);
    }
  }
  return out;
}

bool is_identifier(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
  });
}

// What Aravis' feature strings split on or quote with (and control characters).
bool has_separator(const std::string& v) {
  return std::any_of(v.begin(), v.end(), [](char c) {
    const auto ch = static_cast<unsigned char>(c);
    return ch <= 0x20 || ch == 0x7f || ch == '=' || ch == '"' || ch == '\'';
  });
}

// "genicam.<Feature>" -> "<Feature>", refusing anything but an identifier.
std::string feature_of(const std::string& prop) {
  std::string feature = prop.substr(std::strlen(kPrefix));
  if (!is_identifier(feature))
    throw PropertyError(PropertyError::Kind::Invalid,
                        "'" + shown(prop) +
                            "' is not a GenICam feature name: after 'genicam.' only letters, "
                            "digits and '_' (e.g. genicam.ExposureAuto)");
  return feature;
}

std::optional<int64_t> parse_int(const std::string& s) {
  if (s.empty()) return std::nullopt;
  const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  char* end = nullptr;
  errno = 0;
  const gint64 v = g_ascii_strtoll(s.c_str(), &end, hex ? 16 : 10);
  if (errno != 0 || end != s.c_str() + s.size()) return std::nullopt;
  return int64_t(v);
}

std::optional<double> parse_float(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double v = g_ascii_strtod(s.c_str(), &end);  // '.' whatever the locale
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

ArvGcFeatureNode* find_node(ArvDevice* d, const std::string& camera, const std::string& feature) {
  ArvGcNode* node = arv_device_get_feature(d, feature.c_str());
  if (!node || !ARV_IS_GC_FEATURE_NODE(node))
    throw PropertyError(PropertyError::Kind::Unknown,
                        "camera '" + camera + "' has no GenICam feature '" + feature + "'");
  return ARV_GC_FEATURE_NODE(node);
}

// A feature node as one of our properties: its type, value and limits from the node map.
// Enumerations also implement the integer interface, so they are told apart first.
Property describe(ArvGcFeatureNode* node, const std::string& feature) {
  GError* err = nullptr;
  Property p;
  p.name = kPrefix + feature;
  const char* v = arv_gc_feature_node_get_value_as_string(node, &err);
  p.value = v ? v : "";
  g_clear_error(&err);
  p.read_only = arv_gc_feature_node_is_locked(node, &err) ||
                arv_gc_feature_node_get_actual_access_mode(node) == ARV_GC_ACCESS_MODE_RO;
  g_clear_error(&err);
  p.type = PropertyType::String;
  auto limit = [&](double x) -> std::optional<double> {
    if (!err) return x;
    g_clear_error(&err);
    return std::nullopt;
  };
  if (ARV_IS_GC_ENUMERATION(node)) {
    p.type = PropertyType::Enum;
    guint n = 0;
    const char** values =
        arv_gc_enumeration_dup_available_string_values(ARV_GC_ENUMERATION(node), &n, &err);
    for (guint i = 0; values && i < n; ++i) p.allowed.emplace_back(values[i]);
    g_free(values);
  } else if (ARV_IS_GC_BOOLEAN(node)) {
    p.type = PropertyType::Enum;
    p.allowed = {"false", "true"};
  } else if (ARV_IS_GC_INTEGER(node)) {
    p.type = PropertyType::Int;
    p.min = limit(double(arv_gc_integer_get_min(ARV_GC_INTEGER(node), &err)));
    p.max = limit(double(arv_gc_integer_get_max(ARV_GC_INTEGER(node), &err)));
  } else if (ARV_IS_GC_FLOAT(node)) {
    p.type = PropertyType::Float;
    p.min = limit(arv_gc_float_get_min(ARV_GC_FLOAT(node), &err));
    p.max = limit(arv_gc_float_get_max(ARV_GC_FLOAT(node), &err));
  }
  g_clear_error(&err);
  return p;
}

}  // namespace

std::string take_error(GError*& e, const char* fallback) {
  std::string s = e ? e->message : fallback;
  g_clear_error(&e);
  return s;
}

void read_named(ArvCamera* c, PropertySet& props) {
  GError* err = nullptr;
  gint x = 0, y = 0, w = 0, h = 0, wmax = 0, hmax = 0;
  arv_camera_get_region(c, &x, &y, &w, &h, &err);
  g_clear_error(&err);
  arv_camera_get_width_bounds(c, nullptr, &wmax, &err);
  g_clear_error(&err);
  arv_camera_get_height_bounds(c, nullptr, &hmax, &err);
  g_clear_error(&err);
  auto put = [&](Property p) {
    if (props.has(p.name)) {
      props.force(p.name, p.value);
    } else {
      props.add(std::move(p));
    }
  };
  put({"Width", PropertyType::Int, std::to_string(w), "px", 1, double(wmax), {}, false, true});
  put({"Height", PropertyType::Int, std::to_string(h), "px", 1, double(hmax), {}, false, true});
  put({"OffsetX", PropertyType::Int, std::to_string(x), "px", 0, double(wmax), {}, false, true});
  put({"OffsetY", PropertyType::Int, std::to_string(y), "px", 0, double(hmax), {}, false, true});

  std::vector<std::string> types;
  guint n = 0;
  const char** available = arv_camera_dup_available_pixel_formats_as_strings(c, &n, &err);
  g_clear_error(&err);
  for (const auto& [t, gname] : kPixelFormats)
    for (guint i = 0; available && i < n; ++i)
      if (std::string(available[i]) == gname) types.emplace_back(to_string(t));
  g_free(available);
  const char* current = arv_camera_get_pixel_format_as_string(c, &err);
  g_clear_error(&err);
  std::string type = current ? current : "";
  if (std::find(types.begin(), types.end(), type) == types.end()) types.push_back(type);
  put({"PixelType", PropertyType::Enum, type, "", {}, {}, types, false, true});

  double lo = 0, hi = 0;
  const double exposure = arv_camera_get_exposure_time(c, &err);
  g_clear_error(&err);
  arv_camera_get_exposure_time_bounds(c, &lo, &hi, &err);
  g_clear_error(&err);
  put({"Exposure",
       PropertyType::Float,
       number(exposure / 1000),
       "ms",
       lo / 1000,
       hi / 1000,
       {},
       false,
       false});
  // A float the camera may lack, through ArvCamera's getters for it.
  auto put_float = [&](const char* name, const char* unit, auto available, auto get, auto bounds) {
    const bool has = available(c, &err);
    g_clear_error(&err);
    if (!has) return;
    const double v = get(c, &err);
    g_clear_error(&err);
    bounds(c, &lo, &hi, &err);
    g_clear_error(&err);
    put({name, PropertyType::Float, number(v), unit, lo, hi, {}, false, false});
  };
  put_float("FrameRate", "fps", arv_camera_is_frame_rate_available, arv_camera_get_frame_rate,
            arv_camera_get_frame_rate_bounds);
  if (arv_camera_is_binning_available(c, &err)) {
    gint bx = 1, by = 1;
    arv_camera_get_binning(c, &bx, &by, &err);
    put({"Binning", PropertyType::Int, std::to_string(bx), "", 1, 8, {}, false, true});
  }
  g_clear_error(&err);
  put_float("Gain", "dB", arv_camera_is_gain_available, arv_camera_get_gain,
            arv_camera_get_gain_bounds);
}

void set_named(ArvCamera* c, PropertySet& props, const std::string& prop, const std::string& value,
               bool running) {
  props.set(prop, value, running);  // checks type, limits and running
  GError* err = nullptr;
  bool ok = true;
  if (prop == "Width" || prop == "Height" || prop == "OffsetX" || prop == "OffsetY") {
    arv_camera_set_region(c, int(props.get_int("OffsetX")), int(props.get_int("OffsetY")),
                          int(props.get_int("Width")), int(props.get_int("Height")), &err);
  } else if (prop == "PixelType") {
    arv_camera_set_pixel_format_from_string(c, value.c_str(), &err);
  } else if (prop == "Exposure") {
    arv_camera_set_exposure_time(c, props.get_float("Exposure") * 1000, &err);
  } else if (prop == "FrameRate") {
    arv_camera_set_frame_rate(c, props.get_float("FrameRate"), &err);
  } else if (prop == "Binning") {
    const int b = int(props.get_int("Binning"));
    arv_camera_set_binning(c, b, b, &err);
  } else if (prop == "Gain") {
    arv_camera_set_gain(c, props.get_float("Gain"), &err);
  } else {
    ok = false;
  }
  std::string failure = err ? take_error(err) : "";
  read_named(c, props);  // what the device really took
  if (!ok) throw PropertyError(PropertyError::Kind::ReadOnly, prop + " cannot be set");
  if (!failure.empty())
    throw PropertyError(PropertyError::Kind::Invalid,
                        "cannot set " + prop + " to '" + value + "': " + failure);
}

bool is_feature(const std::string& prop) {
  return prop.rfind(kPrefix, 0) == 0;
}

std::string get_feature(ArvDevice* d, PropertySet& props, const std::string& camera,
                        const std::string& prop) {
  const std::string feature = feature_of(prop);
  const Property p = describe(find_node(d, camera, feature), feature);
  if (props.has(p.name)) {
    props.force(p.name, p.value);
  } else {
    props.add(p);
  }
  return p.value;
}

void set_feature(ArvDevice* d, const std::string& camera, const std::string& prop,
                 const std::string& value, bool running) {
  const std::string feature = feature_of(prop);
  auto invalid = [&](const std::string& why) {
    return PropertyError(PropertyError::Kind::Invalid,
                         "cannot set " + prop + " to '" + shown(value) + "': " + why);
  };
  if (has_separator(value))
    throw invalid("a GenICam value is one word: no spaces, control characters, '=' or quotes");
  ArvGcFeatureNode* node = find_node(d, camera, feature);
  if (ARV_IS_GC_COMMAND(node))
    throw PropertyError(PropertyError::Kind::ReadOnly,
                        prop + " is a command, not a value; properties do not run commands");
  const Property p = describe(node, feature);
  if (p.read_only) throw PropertyError(PropertyError::Kind::ReadOnly, prop + " is read-only");
  if (running && (feature == "Width" || feature == "Height" || feature == "PixelFormat"))
    throw PropertyError(PropertyError::Kind::Busy, prop + " changes the format: stop first");
  auto check_range = [&](double v) {
    if (p.min && v < *p.min) throw invalid("below the minimum " + number(*p.min));
    if (p.max && v > *p.max) throw invalid("above the maximum " + number(*p.max));
  };
  GError* err = nullptr;
  if (ARV_IS_GC_ENUMERATION(node)) {
    if (std::find(p.allowed.begin(), p.allowed.end(), value) == p.allowed.end())
      throw invalid("allowed: " + joined(p.allowed));
    arv_gc_enumeration_set_string_value(ARV_GC_ENUMERATION(node), value.c_str(), &err);
  } else if (ARV_IS_GC_BOOLEAN(node)) {
    const bool on = value == "true" || value == "1";
    if (!on && value != "false" && value != "0") throw invalid("allowed: true, false (or 1, 0)");
    arv_gc_boolean_set_value(ARV_GC_BOOLEAN(node), on, &err);
  } else if (ARV_IS_GC_INTEGER(node)) {
    const auto v = parse_int(value);
    if (!v) throw invalid("not an integer");
    check_range(double(*v));
    arv_gc_integer_set_value(ARV_GC_INTEGER(node), *v, &err);
  } else if (ARV_IS_GC_FLOAT(node)) {
    const auto v = parse_float(value);
    if (!v) throw invalid("not a number");
    check_range(*v);
    arv_gc_float_set_value(ARV_GC_FLOAT(node), *v, &err);
  } else if (ARV_IS_GC_STRING(node)) {
    arv_gc_string_set_value(ARV_GC_STRING(node), value.c_str(), &err);
  } else {
    throw PropertyError(PropertyError::Kind::ReadOnly,
                        prop + " is a " + G_OBJECT_TYPE_NAME(node) +
                            " node; only integer, float, enumeration, boolean and string "
                            "features can be set");
  }
  if (err) throw invalid(take_error(err));
}

}  // namespace framebroker::cameras::genicam
