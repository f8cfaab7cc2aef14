// Typed camera properties with limits and allowed values, got and set by name.
// Values cross the wire as text; each property parses and checks its own.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace framebroker::cameras {

enum class PropertyType { Int, Float, String, Enum };

struct PropertyError : std::runtime_error {
  enum class Kind { Unknown, Invalid, ReadOnly, Busy };
  PropertyError(Kind k, const std::string& what) : std::runtime_error(what), kind(k) {}
  Kind kind;
};

struct Property {
  std::string name;
  PropertyType type = PropertyType::Int;
  std::string value;  // canonical text form
  std::string unit;
  std::optional<double> min, max;    // Int and Float
  std::vector<std::string> allowed;  // Enum
  bool read_only = false;
  bool affects_format = false;  // cannot change while running
};

const char* to_string(PropertyType t);

class PropertySet {
 public:
  void add(Property p);
  bool has(const std::string& name) const;
  const Property& info(const std::string& name) const;  // throws Unknown
  std::string get(const std::string& name) const;       // throws Unknown
  int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  // Checks type, limits and allowed values, then stores the canonical text.
  // `running` refuses format-changing properties. Throws PropertyError.
  void set(const std::string& name, const std::string& value, bool running = false);
  // Names in the order they were added.
  const std::vector<std::string>& names() const { return order_; }
  std::vector<Property> all() const;
  // "Width, Height, ..." for error messages.
  std::string name_list() const;

  // Test/adaptor helpers: force a value without checks (e.g. read-only ones).
  void force(const std::string& name, const std::string& value);

 private:
  std::map<std::string, Property> props_;
  std::vector<std::string> order_;
};

}  // namespace framebroker::cameras
