// fbview's image path: shrinking, histogram, display window and 8-bit mapping.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "fbview/render.hpp"

using namespace framebroker::fbview;

namespace {

// A Mono16 frame whose pixel (x, y) is x + 100 * y, rows padded to `stride` bytes.
std::vector<std::byte> ramp16(uint32_t w, uint32_t h, uint32_t stride) {
  std::vector<std::byte> buf(size_t(stride) * h, std::byte{0xEE});
  for (uint32_t y = 0; y < h; ++y)
    for (uint32_t x = 0; x < w; ++x) {
      const uint16_t v = uint16_t(x + 100 * y);
      std::memcpy(buf.data() + size_t(y) * stride + 2 * x, &v, 2);
    }
  return buf;
}

}  // namespace

TEST(FbviewRender, ShrinksByTheSmallestIntegerFactorThatFitsAndAverages) {
  const auto px = ramp16(8, 6, 8 * 2 + 6);  // padded rows must not leak in
  const SourceFormat f{8, 6, 8 * 2 + 6, Sample::U16, 16};
  Scaled s;
  shrink(px, f, {}, 4, 4, s);  // 8x6 into 4x4: factor 2
  EXPECT_EQ(s.scale, 2u);
  EXPECT_EQ(s.width, 4u);
  EXPECT_EQ(s.height, 3u);
  // Block (0,0): pixels 0, 1, 100, 101.
  EXPECT_FLOAT_EQ(s.values[0], (0 + 1 + 100 + 101) / 4.0f);
  // Block (3, 2): x 6..7, y 4..5.
  EXPECT_FLOAT_EQ(s.values[2 * 4 + 3], (406 + 407 + 506 + 507) / 4.0f);
  EXPECT_EQ(s.raw_min, 0.0f);  // of the pixels, not of the averages
  EXPECT_EQ(s.raw_max, 507.0f);

  shrink(px, f, {}, 100, 100, s);  // fits: 1:1
  EXPECT_EQ(s.scale, 1u);
  EXPECT_EQ(s.width, 8u);
  EXPECT_FLOAT_EQ(s.values[5 * 8 + 7], 507.0f);
}

TEST(FbviewRender, ARegionIsClampedToTheFrame) {
  const auto px = ramp16(8, 6, 16);
  const SourceFormat f{8, 6, 16, Sample::U16, 16};
  Scaled s;
  shrink(px, f, {6, 4, 10, 10}, 100, 100, s);  // only 2x2 of it exists
  EXPECT_EQ(s.region.w, 2u);
  EXPECT_EQ(s.region.h, 2u);
  ASSERT_EQ(s.values.size(), 4u);
  EXPECT_FLOAT_EQ(s.values[0], 406.0f);
  EXPECT_FLOAT_EQ(s.values[3], 507.0f);
  shrink(px, f, {50, 50, 4, 4}, 100, 100, s);  // outside: the whole frame
  EXPECT_EQ(s.region.w, 8u);
  EXPECT_EQ(s.region.h, 6u);
}

TEST(FbviewRender, ColourFramesBecomeLuma) {
  std::vector<std::byte> px(6);
  const uint8_t rgb[6] = {255, 0, 0, 0, 0, 255};
  std::memcpy(px.data(), rgb, 6);
  Scaled s;
  shrink(px, {2, 1, 6, Sample::Rgb8, 8}, {}, 10, 10, s);
  EXPECT_NEAR(s.values[0], 0.299 * 255, 0.01);
  EXPECT_NEAR(s.values[1], 0.114 * 255, 0.01);
}

TEST(FbviewRender, HistogramPercentilesAndLevels) {
  std::vector<float> v(10000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i % 1000);  // flat over 0..999
  v[0] = 60000;                                                  // one hot pixel
  const Histogram h = histogram_of(v);
  EXPECT_EQ(h.min, 0);
  EXPECT_EQ(h.max, 60000);
  uint64_t total = 0;
  for (uint32_t b : h.bins) total += b;
  EXPECT_EQ(total, v.size());
  // Min-max follows the hot pixel; the percentiles ignore it.
  const Levels mm = choose_levels(AutoContrast::MinMax, h, {});
  EXPECT_EQ(mm.white, 60000);
  const Levels p = choose_levels(AutoContrast::Percentile, h, {});
  EXPECT_LT(p.white, 1100);
  EXPECT_GT(p.white, 900);
  EXPECT_LT(p.black, 100);
  const Levels manual = choose_levels(AutoContrast::Off, h, {100, 200});
  EXPECT_EQ(manual.black, 100);
  EXPECT_EQ(manual.white, 200);
  // A flat frame still has a window.
  const Levels flat = choose_levels(AutoContrast::MinMax, histogram_of({7, 7, 7}), {});
  EXPECT_GT(flat.white, flat.black);
}

TEST(FbviewRender, MapsTheWindowTo8BitWithGamma) {
  std::vector<uint8_t> out;
  map_to_8bit({0, 100, 150, 200, 300, NAN}, {100, 200}, 1.0, out);
  EXPECT_EQ(out, (std::vector<uint8_t>{0, 0, 128, 255, 255, 0}));
  map_to_8bit({150}, {100, 200}, 2.0, out);  // gamma 2 darkens mid-tones: 0.5^2
  EXPECT_NEAR(out[0], 64, 1);
  map_to_8bit({150}, {100, 200}, 0.5, out);  // and 0.5 brightens them: sqrt(0.5)
  EXPECT_NEAR(out[0], 180, 1);
}
