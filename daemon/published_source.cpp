#include "published_source.hpp"

namespace framebroker::daemon {

PublishedSource::PublishedSource(std::string name, const cameras::FrameFormat& format)
    : name_(std::move(name)), format_(format) {
  using cameras::Property;
  using cameras::PropertyType;
  for (const char* p : {"Width", "Height", "Stride"})
    props_.add(Property{.name = p, .type = PropertyType::Int, .read_only = true});
  props_.add(Property{.name = "PixelType", .type = PropertyType::String, .read_only = true});
  describe();
}

void PublishedSource::describe() {
  props_.force("Width", std::to_string(format_.width));
  props_.force("Height", std::to_string(format_.height));
  props_.force("Stride", std::to_string(format_.stride));
  props_.force("PixelType", std::string(cameras::to_string(format_.pixel_type)));
}

void PublishedSource::rearm(const cameras::FrameFormat& format) {
  format_ = format;
  describe();
}

void PublishedSource::set(const std::string& prop, const std::string&) {
  throw cameras::PropertyError(cameras::PropertyError::Kind::ReadOnly,
                               "stream " + name_ + " is published by a client: its " + prop +
                                   " is set by the producer's Advertise, not by fbctl");
}

void PublishedSource::start(cameras::FrameSink&, std::optional<uint64_t>) {
  running_ = true;
}

void PublishedSource::snap(cameras::FrameSink&) {
  throw cameras::CameraError("stream " + name_ +
                             " is published by a client; there is no camera to snap");
}

}  // namespace framebroker::daemon
