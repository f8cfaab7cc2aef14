// framebroker::CameraControl: drive one of the broker's cameras.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framebroker/sequence.hpp"

namespace framebroker {

namespace detail {
class Core;
}

struct PropertyInfo {
  std::string name;
  std::string type;  // "int", "float", "string", "enum"
  std::string value;
  std::string unit;
  std::optional<double> min, max;
  std::vector<std::string> allowed;
  bool read_only = false;
};

// A GenICam camera (GigE Vision, USB3 Vision) the broker could open: Client::discover_cameras().
struct DeviceInfo {
  std::string id;           // what an aravis camera's device= takes, e.g. "Basler-21234567"
  std::string physical_id;  // MAC address, USB bus id
  std::string vendor, model, serial;
  std::string protocol;  // "GigEVision", "USB3Vision", "Fake"
  std::string address;   // IP address for GigE
};

class CameraControl {
 public:
  CameraControl(std::shared_ptr<detail::Core> core, std::string name)
      : core_(std::move(core)), name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  // frames: nullopt = run until stop().
  void start(std::optional<uint64_t> frames = std::nullopt);
  // Runs spec.frames() frames as a sequence: subscribers get SequenceStarted first, and every
  // frame its index. Throws Error(InvalidArgument) with the reason for a bad spec.
  void start(const SequenceSpec& spec);
  void stop();
  // Acquires one frame from an idle camera; subscribers receive it as usual.
  void snap();
  std::string get(const std::string& prop);
  void set(const std::string& prop, const std::string& value);
  std::vector<PropertyInfo> properties();

 private:
  std::shared_ptr<detail::Core> core_;
  std::string name_;
};

}  // namespace framebroker
