// fbview's image path: a frame (or a region of it) shrunk to the display size by averaging,
// its histogram, the display window (auto min-max, auto percentiles, or manual), and the
// mapping to 8-bit with a gamma. Pure functions on buffers, so they are unit-tested without a
// broker.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace framebroker::fbview {

enum class Sample { U8, U16, F32, Rgb8, Rgb16, Bgra8 };

// What the pixels of a frame are: sample layout and the value range of the camera.
struct SourceFormat {
  uint32_t width = 0, height = 0, stride = 0;
  Sample sample = Sample::U16;
  uint32_t bit_depth = 16;  // Mono10 -> 10, ...; full scale is 2^bit_depth - 1
};
Sample sample_of(const std::string& pixel_type);
uint32_t bit_depth_of(const std::string& pixel_type);

struct Region {
  uint32_t x = 0, y = 0, w = 0, h = 0;
};
// The region clamped to the frame; an empty one means the whole frame.
Region clamp_region(Region r, uint32_t width, uint32_t height);

// The region averaged over scale x scale blocks, with scale the smallest integer that fits it
// into max_w x max_h. Colour frames become their luma.
struct Scaled {
  uint32_t width = 0, height = 0, scale = 1;
  Region region;
  std::vector<float> values;  // raw units, row-major
  // Of the source pixels before averaging, so a saturated pixel shows even when shrunk.
  float raw_min = 0, raw_max = 0;
};
void shrink(std::span<const std::byte> pixels, const SourceFormat& f, Region region, uint32_t max_w,
            uint32_t max_h, Scaled& out);

enum class AutoContrast { Off, MinMax, Percentile };
AutoContrast auto_contrast_of(const std::string& s);  // "minmax", "percentile", else Off

struct Levels {
  double black = 0, white = 1;
};

struct Histogram {
  double min = 0, max = 0;           // of the values
  std::array<uint32_t, 256> bins{};  // over [min, max]
  Levels percentile_levels;          // 0.1 % and 99.9 %
};
Histogram histogram_of(const std::vector<float>& values);

Levels choose_levels(AutoContrast mode, const Histogram& h, Levels manual);

// out[i] = 255 * clamp((v - black) / (white - black))^gamma, gamma > 1 darkens mid-tones.
void map_to_8bit(const std::vector<float>& values, Levels levels, double gamma,
                 std::vector<uint8_t>& out);

}  // namespace framebroker::fbview
