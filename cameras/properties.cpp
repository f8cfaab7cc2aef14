#include "cameras/properties.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace framebroker::cameras {

namespace {

using Kind = PropertyError::Kind;

std::optional<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// Shortest text that reads back as the same double; plain decimals unless they get long
// (so 100000 stays "100000" rather than "1e+05").
std::string format_double(double v) {
  if (v == 0) v = 0;  // no "-0"
  char buf[64];
  auto fixed = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (fixed.ec == std::errc() && fixed.ptr - buf <= 16) return std::string(buf, fixed.ptr);
  auto shortest = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, shortest.ptr);
}

std::string format_limit(const Property& p, double v) {
  return p.type == PropertyType::Int ? std::to_string(int64_t(v)) : format_double(v);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

// "an integer in [8, 4096]", "a number >= 0", "an integer", ...
std::string describe_range(const Property& p) {
  std::string what = p.type == PropertyType::Int ? "an integer" : "a number";
  if (p.min && p.max)
    return what + " in [" + format_limit(p, *p.min) + ", " + format_limit(p, *p.max) + "]";
  if (p.min) return what + " >= " + format_limit(p, *p.min);
  if (p.max) return what + " <= " + format_limit(p, *p.max);
  return what;
}

PropertyError invalid(const Property& p, const std::string& expected, const std::string& got) {
  return PropertyError(Kind::Invalid, p.name + " must be " + expected + ", got '" + got + "'");
}

bool in_limits(const Property& p, double v) {
  return !(p.min && v < *p.min) && !(p.max && v > *p.max);
}

bool is_allowed(const Property& p, const std::string& canonical) {
  return std::find(p.allowed.begin(), p.allowed.end(), canonical) != p.allowed.end();
}

// Parses and checks `text` against p; returns the canonical text to store.
std::string canonical_value(const Property& p, const std::string& text) {
  switch (p.type) {
    case PropertyType::Int: {
      auto v = parse_int(text);
      if (!v || !in_limits(p, double(*v))) throw invalid(p, describe_range(p), text);
      std::string out = std::to_string(*v);
      // An Int may also list allowed values (e.g. Binning 1, 2, 4).
      if (!p.allowed.empty() && !is_allowed(p, out))
        throw invalid(p, "one of " + join(p.allowed), text);
      return out;
    }
    case PropertyType::Float: {
      auto v = parse_double(text);
      if (!v || !in_limits(p, *v)) throw invalid(p, describe_range(p), text);
      return format_double(*v);
    }
    case PropertyType::Enum:
      if (!is_allowed(p, text)) throw invalid(p, "one of " + join(p.allowed), text);
      return text;
    case PropertyType::String:
      return text;
  }
  return text;
}

}  // namespace

const char* to_string(PropertyType t) {
  switch (t) {
    case PropertyType::Int:
      return "int";
    case PropertyType::Float:
      return "float";
    case PropertyType::String:
      return "string";
    case PropertyType::Enum:
      return "enum";
  }
  return "unknown";
}

void PropertySet::add(Property p) {
  if (has(p.name)) throw std::invalid_argument("property '" + p.name + "' added twice");
  order_.push_back(p.name);
  std::string name = p.name;
  props_.emplace(std::move(name), std::move(p));
}

bool PropertySet::has(const std::string& name) const {
  return props_.count(name) != 0;
}

const Property& PropertySet::info(const std::string& name) const {
  auto it = props_.find(name);
  if (it == props_.end())
    throw PropertyError(Kind::Unknown, "unknown property '" + name + "'; known: " + name_list());
  return it->second;
}

std::string PropertySet::get(const std::string& name) const {
  return info(name).value;
}

int64_t PropertySet::get_int(const std::string& name) const {
  const Property& p = info(name);
  auto v = parse_int(p.value);
  if (!v) throw PropertyError(Kind::Invalid, name + " is not an integer: '" + p.value + "'");
  return *v;
}

double PropertySet::get_float(const std::string& name) const {
  const Property& p = info(name);
  auto v = parse_double(p.value);
  if (!v) throw PropertyError(Kind::Invalid, name + " is not a number: '" + p.value + "'");
  return *v;
}

void PropertySet::set(const std::string& name, const std::string& value, bool running) {
  const Property& p = info(name);
  if (p.read_only) throw PropertyError(Kind::ReadOnly, name + " is read-only");
  if (p.affects_format && running)
    throw PropertyError(Kind::Busy, "stop the camera before changing " + name);
  std::string canonical = canonical_value(p, value);
  props_.at(name).value = std::move(canonical);
}

std::vector<Property> PropertySet::all() const {
  std::vector<Property> out;
  out.reserve(order_.size());
  for (const auto& name : order_) out.push_back(props_.at(name));
  return out;
}

std::string PropertySet::name_list() const {
  return join(order_);
}

void PropertySet::force(const std::string& name, const std::string& value) {
  info(name);  // throws Unknown
  props_.at(name).value = value;
}

}  // namespace framebroker::cameras
