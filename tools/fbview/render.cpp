#include "fbview/render.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace framebroker::fbview {
namespace {

// One sample (or the luma of one colour pixel) at column x of a row.
template <Sample S>
float sample_at(const std::byte* row, uint32_t x) {
  if constexpr (S == Sample::U8) {
    return float(std::to_integer<uint8_t>(row[x]));
  } else if constexpr (S == Sample::U16) {
    uint16_t v;
    std::memcpy(&v, row + 2 * size_t(x), 2);
    return float(v);
  } else if constexpr (S == Sample::F32) {
    float v;
    std::memcpy(&v, row + 4 * size_t(x), 4);
    return v;
  } else if constexpr (S == Sample::Rgb16) {
    uint16_t c[3];
    std::memcpy(c, row + 6 * size_t(x), 6);
    return 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
  } else {
    const auto* p = reinterpret_cast<const uint8_t*>(row) + (S == Sample::Rgb8 ? 3 : 4) * size_t(x);
    const uint8_t r = S == Sample::Rgb8 ? p[0] : p[2], b = S == Sample::Rgb8 ? p[2] : p[0];
    return 0.299f * r + 0.587f * p[1] + 0.114f * b;
  }
}

template <Sample S>
void shrink_as(const std::byte* base, size_t stride, Region r, uint32_t scale, Scaled& out) {
  const float inv = 1.0f / float(scale * scale);
  std::vector<float> acc(out.width);
  float lo = sample_at<S>(base + size_t(r.y) * stride, r.x), hi = lo;
  for (uint32_t oy = 0; oy < out.height; ++oy) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (uint32_t dy = 0; dy < scale; ++dy) {
      const std::byte* row = base + (size_t(r.y) + size_t(oy) * scale + dy) * stride;
      for (uint32_t ox = 0; ox < out.width; ++ox) {
        const uint32_t x0 = r.x + ox * scale;
        float s = 0;
        for (uint32_t dx = 0; dx < scale; ++dx) {
          const float v = sample_at<S>(row, x0 + dx);
          lo = std::min(lo, v);
          hi = std::max(hi, v);
          s += v;
        }
        acc[ox] += s;
      }
    }
    float* dst = out.values.data() + size_t(oy) * out.width;
    for (uint32_t ox = 0; ox < out.width; ++ox) dst[ox] = acc[ox] * inv;
  }
  out.raw_min = lo;
  out.raw_max = hi;
}

}  // namespace

Sample sample_of(const std::string& t) {
  if (t == "Mono8") return Sample::U8;
  if (t == "Mono32F") return Sample::F32;
  if (t == "RGB8") return Sample::Rgb8;
  if (t == "RGB16") return Sample::Rgb16;
  if (t == "BGRA8") return Sample::Bgra8;
  return Sample::U16;  // Mono10/12/14/16
}

uint32_t bit_depth_of(const std::string& t) {
  if (t == "Mono8" || t == "RGB8" || t == "BGRA8") return 8;
  if (t == "Mono10") return 10;
  if (t == "Mono12") return 12;
  if (t == "Mono14") return 14;
  return 16;  // Mono16, RGB16; Mono32F has no fixed range
}

Region clamp_region(Region r, uint32_t width, uint32_t height) {
  if (r.w == 0 || r.h == 0 || r.x >= width || r.y >= height) return {0, 0, width, height};
  r.w = std::min(r.w, width - r.x);
  r.h = std::min(r.h, height - r.y);
  return r;
}

void shrink(std::span<const std::byte> pixels, const SourceFormat& f, Region region, uint32_t max_w,
            uint32_t max_h, Scaled& out) {
  const Region r = clamp_region(region, f.width, f.height);
  max_w = std::max(1u, max_w);
  max_h = std::max(1u, max_h);
  const uint32_t scale = std::max({1u, (r.w + max_w - 1) / max_w, (r.h + max_h - 1) / max_h});
  out.region = r;
  out.scale = scale;
  out.width = std::max(1u, r.w / scale);
  out.height = std::max(1u, r.h / scale);
  out.values.resize(size_t(out.width) * out.height);
  const size_t need = size_t(f.stride) * f.height;
  if (pixels.size() < need || f.width == 0 || f.height == 0 || r.w < scale || r.h < scale) {
    std::fill(out.values.begin(), out.values.end(), 0.0f);
    out.raw_min = out.raw_max = 0;
    return;
  }
  const std::byte* base = pixels.data();
  switch (f.sample) {
    case Sample::U8:
      return shrink_as<Sample::U8>(base, f.stride, r, scale, out);
    case Sample::U16:
      return shrink_as<Sample::U16>(base, f.stride, r, scale, out);
    case Sample::F32:
      return shrink_as<Sample::F32>(base, f.stride, r, scale, out);
    case Sample::Rgb8:
      return shrink_as<Sample::Rgb8>(base, f.stride, r, scale, out);
    case Sample::Rgb16:
      return shrink_as<Sample::Rgb16>(base, f.stride, r, scale, out);
    case Sample::Bgra8:
      return shrink_as<Sample::Bgra8>(base, f.stride, r, scale, out);
  }
}

AutoContrast auto_contrast_of(const std::string& s) {
  if (s == "minmax") return AutoContrast::MinMax;
  if (s == "percentile") return AutoContrast::Percentile;
  return AutoContrast::Off;
}

Histogram histogram_of(const std::vector<float>& values) {
  Histogram h;
  if (values.empty()) return h;
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  h.min = *lo;
  h.max = *hi;
  // Percentiles from a finer histogram than the one displayed.
  constexpr size_t kFine = 4096;
  std::vector<uint32_t> fine(kFine, 0);
  const double span = h.max - h.min;
  const double k = span > 0 ? double(kFine) / span : 0;
  for (float v : values) {
    const double t = (v - h.min) * k;  // NaN lands in bin 0
    ++fine[t > 0 ? std::min(kFine - 1, size_t(t)) : 0];
  }
  for (size_t i = 0; i < kFine; ++i) h.bins[i * 256 / kFine] += fine[i];
  const double n = double(values.size());
  auto at = [&](double fraction) {
    double seen = 0;
    for (size_t i = 0; i < kFine; ++i) {
      seen += fine[i];
      if (seen >= fraction * n) return h.min + span * double(i) / kFine;
    }
    return h.max;
  };
  h.percentile_levels = {at(0.001), at(0.999) + span / kFine};
  return h;
}

Levels choose_levels(AutoContrast mode, const Histogram& h, Levels manual) {
  Levels l = manual;
  if (mode == AutoContrast::MinMax) l = {h.min, h.max};
  if (mode == AutoContrast::Percentile) l = h.percentile_levels;
  if (!(l.white > l.black)) l.white = l.black + 1;  // a flat frame still maps somewhere
  return l;
}

void map_to_8bit(const std::vector<float>& values, Levels levels, double gamma,
                 std::vector<uint8_t>& out) {
  // The curve through a table: pow() per pixel would cost more than the rest together.
  constexpr int kSteps = 4096;
  static thread_local std::array<uint8_t, kSteps + 1> curve;
  static thread_local double curve_gamma = -1;
  if (gamma != curve_gamma) {
    for (int i = 0; i <= kSteps; ++i)
      curve[size_t(i)] = uint8_t(std::lround(255.0 * std::pow(double(i) / kSteps, gamma)));
    curve_gamma = gamma;
  }
  out.resize(values.size());
  const double k = kSteps / (levels.white - levels.black);
  for (size_t i = 0; i < values.size(); ++i) {
    const double t = (double(values[i]) - levels.black) * k;  // NaN lands on 0
    out[i] = curve[t > 0 ? (t < kSteps ? size_t(t) : size_t(kSteps)) : 0];
  }
}

}  // namespace framebroker::fbview
