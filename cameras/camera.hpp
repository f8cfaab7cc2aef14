// The whole contract between framebrokerd and a camera adapter.
//
// An adapter owns a device, exposes typed properties, and, while it runs,
// pushes frames into a FrameSink that the broker implements:
//   loan(bytes) -> a writable span inside a shared-memory slot (or nothing: the
//                  ring is full and the frame must be dropped),
//   commit(loan, info) -> the frame is published,
//   abort(loan)        -> the loan is given back unpublished,
//   drop(reason)       -> a frame the hardware lost (it still costs a seq).
// Adapters that can write straight into the span must do so. An adapter knows
// nothing of sockets or clients, and must never block on anything but its
// device and the sink.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cameras/pixel_format.hpp"
#include "cameras/properties.hpp"

namespace framebroker::cameras {

// Geometry of the frames a camera produces with its current settings.
struct FrameFormat {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t stride = 0;  // bytes per row
  PixelType pixel_type = PixelType::Mono16;
  uint8_t bit_depth = 16;
  uint32_t roi_x = 0, roi_y = 0, roi_w = 0, roi_h = 0;
  uint8_t binning_x = 1, binning_y = 1;

  size_t frame_bytes() const { return size_t(stride) * height; }
  bool operator==(const FrameFormat&) const = default;
};

// What the adapter knows about one frame, handed over with commit().
struct FrameInfo {
  uint64_t camera_frame_id = 0;  // the device's counter widened to 64 bits (sim: 0 at start())
  std::optional<uint64_t> hw_timestamp_ns;
  FrameFormat format;
  double exposure_us = 0;
  std::vector<std::pair<std::string, std::string>> tags;
  // Provenance, set only for frames a client derived from another stream's frame. The view
  // must outlive the commit() call only.
  std::string_view source_stream;
  int64_t source_seq = -1;
  // A publisher's explicit index in the running sequence (empty: from the frame's position).
  std::span<const uint32_t> sequence_index;
};

// A writable piece of a slot, lent to the adapter between loan() and commit().
struct Loan {
  std::span<std::byte> data;
  uint32_t slot = 0;
  uint32_t gen = 0;
};

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Never sleeps unless the stream's overflow policy is `block` (then boundedly).
  virtual std::optional<Loan> loan(size_t bytes) = 0;
  virtual void commit(const Loan& loan, const FrameInfo& info) = 0;
  virtual void abort(const Loan& loan) = 0;
  virtual void drop(std::string_view reason) = 0;

  // For adapters that queue slots with the device before frames exist (zero-copy DMA
  // targets): a failed loan_ahead() is no lost frame; if the device then loses one for want
  // of a buffer, the adapter reports it with drop_ring_full(). Never sleeps.
  virtual std::optional<Loan> loan_ahead(size_t bytes) { return loan(bytes); }
  virtual void drop_ring_full() { drop("no free slot"); }
};

class Camera {
 public:
  virtual ~Camera() = default;

  virtual const std::string& name() const = 0;
  virtual std::string driver() const = 0;

  // Typed properties. set() throws PropertyError on an unknown name, a value
  // out of range, or (for format properties) while running.
  virtual PropertySet& properties() = 0;
  virtual std::string get(const std::string& prop) const {
    return const_cast<Camera*>(this)->properties().get(prop);
  }
  virtual void set(const std::string& prop, const std::string& value) = 0;

  // The format the next frames will have.
  virtual FrameFormat format() const = 0;

  // Starts acquisition into sink. frames: nullopt = continuous. Returns at
  // once; frames arrive on the adapter's own thread. Throws CameraError.
  virtual void start(FrameSink& sink, std::optional<uint64_t> frames) = 0;
  // Stops and joins; no sink call happens after stop() returns.
  virtual void stop() = 0;
  // Acquires exactly one frame into sink (the camera must be idle).
  virtual void snap(FrameSink& sink) = 0;
  virtual bool running() const = 0;
  // Frames committed since the camera was created.
  virtual uint64_t frames_committed() const = 0;
  // Why the device last failed (empty when it is healthy).
  virtual std::string last_error() const { return {}; }
};

struct CameraError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace framebroker::cameras
