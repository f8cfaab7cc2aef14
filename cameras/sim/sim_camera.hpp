// A simulated camera: no hardware, deterministic test patterns.
//
// Patterns (property `Pattern`):
//   spots    ~20 Gaussian beads drifting over a dim, lightly noisy background
//   gradient a diagonal ramp that moves with the frame id
//   noise    uniform noise from `Seed` and the frame id
//   empty    all zero
//   counter  pixel k of frame f holds (f + k) mod 2^bits, so a reader can prove
//            that no frame was lost, duplicated or torn
//
// Frames are rendered straight into the sink's loan. `FrameRate` paces them on an
// absolute schedule (frame k is due at t0 + k / FrameRate); 0 means as fast as possible.
// Control calls (set, start, stop, snap) are expected from one thread; change
// properties through set(), not properties().set(), so the running thread sees them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cameras/camera.hpp"

namespace framebroker::cameras {

class SimCamera : public Camera {
 public:
  explicit SimCamera(std::string name);
  ~SimCamera() override;

  const std::string& name() const override { return name_; }
  std::string driver() const override { return "sim"; }

  PropertySet& properties() override { return props_; }
  void set(const std::string& prop, const std::string& value) override;
  FrameFormat format() const override;

  void start(FrameSink& sink, std::optional<uint64_t> frames) override;
  void stop() override;
  void snap(FrameSink& sink) override;
  bool running() const override { return running_; }
  uint64_t frames_committed() const override { return committed_; }

  enum class Pattern { Spots, Gradient, Noise, Empty, Counter };

 private:
  // The properties the acquisition thread reads while running; copied under mutex_.
  struct Live {
    Pattern pattern = Pattern::Spots;
    uint32_t seed = 1;
    double exposure_ms = 1;
    double frame_rate = 100;
  };

  class Renderer;   // draws the patterns; defined in sim_camera.cpp
  struct Schedule;  // FrameRate pacing

  Live read_live() const;
  void run(FrameSink& sink, FrameFormat fmt, std::optional<uint64_t> frames);
  // Sleeps until frame `id` is due and copies the live settings; false if stop() was asked.
  bool await_frame(uint64_t id, Schedule& schedule, Live& live);
  // Waits d unless stopped; false when stopped.
  bool idle_for(std::chrono::steady_clock::duration d);
  // Renders and commits one frame; false if the sink had no room for it.
  bool produce(FrameSink& sink, Renderer& renderer, const FrameFormat& fmt, const Live& live,
               uint64_t id);

  std::string name_;
  PropertySet props_;

  std::mutex mutex_;  // guards live_, version_ and stop_requested_
  std::condition_variable wake_;
  Live live_;
  uint64_t version_ = 0;  // bumped by every set(), so a sleeping thread re-reads FrameRate
  bool stop_requested_ = false;

  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<uint64_t> committed_{0};
};

}  // namespace framebroker::cameras
