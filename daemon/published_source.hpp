// PublishedSource: the "camera" behind a stream a client publishes. It has no device and no
// thread: frames come in over the producer's socket (Broker::on_commit), and this object only
// answers what a Stream asks of its camera (name, format, read-only properties, running).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <string>

#include "cameras/camera.hpp"

namespace framebroker::daemon {

class PublishedSource : public cameras::Camera {
 public:
  PublishedSource(std::string name, const cameras::FrameFormat& format);

  // A new producer advertised the name again (possibly with another format).
  void rearm(const cameras::FrameFormat& format);
  void count_commit() { committed_.fetch_add(1); }

  const std::string& name() const override { return name_; }
  std::string driver() const override { return "client"; }
  cameras::PropertySet& properties() override { return props_; }
  void set(const std::string& prop, const std::string& value) override;
  cameras::FrameFormat format() const override { return format_; }
  void start(cameras::FrameSink& sink, std::optional<uint64_t> frames) override;
  void stop() override { running_ = false; }
  void snap(cameras::FrameSink& sink) override;
  bool running() const override { return running_; }
  uint64_t frames_committed() const override { return committed_.load(); }

 private:
  void describe();

  std::string name_;
  cameras::FrameFormat format_;
  cameras::PropertySet props_;
  bool running_ = false;
  std::atomic<uint64_t> committed_{0};
};

}  // namespace framebroker::daemon
