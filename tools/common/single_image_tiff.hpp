// Writes one image to a TIFF file with libtiff (readable by Fiji and tifffile): `fbctl snap`.
// fbsave writes its OME-TIFF stacks with its own writer (fbsave/tiff_writer.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace framebroker::tools {

struct ImageView {
  std::span<const std::byte> pixels;
  uint32_t width = 0, height = 0;
  uint32_t stride = 0;            // bytes per row
  uint16_t bits_per_sample = 16;  // 8, 16 or 32
  uint16_t samples = 1;           // 1 grey, 3 RGB
  bool floating = false;          // 32-bit float samples
};

// Throws std::runtime_error with the path and the reason.
void write_tiff(const std::string& path, const ImageView& image, const std::string& description);

}  // namespace framebroker::tools
