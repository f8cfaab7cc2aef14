// The sim camera's `counter` pattern, checked from the reader's side: pixel k
// of the frame with camera frame id f holds (f + k) mod 2^(8 * bytes per pixel).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace framebroker::tools {

// Counts the pixels that differ from the pattern (0 means the frame is exact).
template <typename Pixel>
uint64_t counter_errors(std::span<const std::byte> bytes, uint64_t frame_id, size_t pixels) {
  if (bytes.size() < pixels * sizeof(Pixel)) return pixels;
  uint64_t errors = 0;
  Pixel expect = Pixel(frame_id);
  for (size_t k = 0; k < pixels; ++k, ++expect) {
    Pixel got;
    std::memcpy(&got, bytes.data() + k * sizeof(Pixel), sizeof got);
    errors += got != expect;
  }
  return errors;
}

inline uint64_t counter_errors(std::span<const std::byte> bytes, uint64_t frame_id, size_t pixels,
                               size_t bytes_per_pixel) {
  switch (bytes_per_pixel) {
    case 1:
      return counter_errors<uint8_t>(bytes, frame_id, pixels);
    case 2:
      return counter_errors<uint16_t>(bytes, frame_id, pixels);
    case 4:
      return counter_errors<uint32_t>(bytes, frame_id, pixels);
    default:
      return pixels;
  }
}

}  // namespace framebroker::tools
