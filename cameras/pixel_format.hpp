// Pixel types shared by cameras, the broker and clients.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace framebroker::cameras {

// Same numbering as framebroker.meta.PixelType in schema/frame_meta.fbs (static_asserts in
// daemon/stream.cpp keep the two in step).
enum class PixelType : uint8_t {
  Mono8,
  Mono10,
  Mono12,
  Mono14,
  Mono16,
  Mono32F,
  RGB8,
  BGRA8,
  RGB16
};

constexpr size_t bytes_per_pixel(PixelType t) {
  switch (t) {
    case PixelType::Mono8:
      return 1;
    case PixelType::Mono10:
    case PixelType::Mono12:
    case PixelType::Mono14:
    case PixelType::Mono16:
      return 2;
    case PixelType::Mono32F:
      return 4;
    case PixelType::RGB8:
      return 3;
    case PixelType::BGRA8:
      return 4;
    case PixelType::RGB16:
      return 6;
  }
  return 0;
}

std::string_view to_string(PixelType t);
std::optional<PixelType> parse_pixel_type(std::string_view s);

}  // namespace framebroker::cameras
