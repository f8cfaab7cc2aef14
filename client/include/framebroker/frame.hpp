// framebroker::Frame: one frame held in shared memory. Move-only; the hold is
// released when the Frame is destroyed or release() is called.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "framebroker/frame_meta_generated.h"
#include "framebroker/sequence.hpp"

namespace framebroker {

namespace detail {
class Core;
struct FrameHandle;
}  // namespace detail

using PixelType = meta::PixelType;
const char* to_string(PixelType t);
// Bytes of one pixel of `t` (Mono10..Mono16 are stored in 2); 0 for a value outside the enum,
// as a peer's message may carry.
size_t bytes_per_pixel(PixelType t);

class Frame {
 public:
  Frame() = default;
  explicit Frame(std::unique_ptr<detail::FrameHandle> h);
  Frame(Frame&&) noexcept;
  Frame& operator=(Frame&&) noexcept;
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;
  ~Frame();

  explicit operator bool() const { return h_ != nullptr; }

  uint64_t seq() const;
  uint64_t camera_frame_id() const;
  uint32_t width() const;
  uint32_t height() const;
  uint32_t stride() const;
  PixelType pixel_type() const;
  uint32_t gen() const;
  uint32_t slot() const;
  const std::string& stream() const;
  // The pixels, read-only, straight from the shared-memory slot.
  std::span<const std::byte> pixels() const;
  // All metadata (timestamps, ROI, binning, exposure, tags).
  const meta::FrameMeta& meta() const;

  // The acquisition sequence the frame belongs to (nullptr: none, or not announced to this
  // subscriber), and its index on an axis of it ('t', 'p', 'c', 'z'; nullopt: not an axis of it).
  std::shared_ptr<const Sequence> sequence() const;
  std::optional<uint32_t> index(char axis) const;
  int64_t sequence_position() const;  // -1 outside a sequence

  // The first frame after the library reconnected to a restarted broker
  // (ConnectOptions::reconnect; Subscription::restart() says more).
  bool after_restart() const;

  // Gives the slot back to the broker (batched with other releases). For a frame of a broker
  // that has since been lost: nothing to give back (its pixels stayed readable).
  void release();

 private:
  std::unique_ptr<detail::FrameHandle> h_;
};

}  // namespace framebroker
