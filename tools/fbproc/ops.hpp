// fbproc's operations: what turns input frames of one format into output frames of another.
//
// An op sees the K input frames of one output frame (K = frames_per_output(): 1 for copy, bin
// and roi; K for max-project and mean) one at a time, in order, and writes the output slot.
// It allocates only when it is made (mean's accumulator), never per frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "framebroker/frame.hpp"

namespace framebroker::fbproc {

struct Format {
  uint32_t width = 0, height = 0;
  uint32_t stride = 0;  // bytes per row
  PixelType pixel_type = PixelType::Mono16;
  uint8_t bit_depth = 0;
};

class Op {
 public:
  virtual ~Op() = default;
  // Output frames are packed (stride = width x pixel size).
  virtual Format output() const = 0;
  virtual uint32_t frames_per_output() const { return 1; }
  // Input frame `index` (0 .. frames_per_output() - 1) of the output frame in `out`. `out`
  // keeps its contents between the calls of one output frame.
  virtual void apply(std::span<const std::byte> in, uint32_t index, std::span<std::byte> out) = 0;
};

// The maximum, or the mean (rounded down for integer types), of any number of frames of one
// format, sample by sample, added one at a time: the work of max-project and mean, over K frames
// or along a sequence axis. It allocates its accumulator when made, never per frame.
class Reduction {
 public:
  Reduction(const Format& in, bool mean);
  // Adds a frame of the format, rows `stride` bytes apart. The first add after finish() (or
  // reset()) starts a new result.
  void add(std::span<const std::byte> in, uint32_t stride);
  // Writes the result of the frames added (packed rows, at least one frame added) and resets.
  void finish(std::span<std::byte> out);
  void reset() { count_ = 0; }
  uint32_t count() const { return count_; }
  // What the accumulator of one takes.
  static size_t bytes(const Format& in, bool mean);

 private:
  Format in_;
  bool mean_;
  uint32_t count_ = 0;
  std::vector<std::byte> max_;  // max: the running maximum, packed
  std::vector<double> sum_;     // mean: exact for integer sums below 2^53
};

// Parses `spec` (copy, bin=N, bin=N,sum, roi=x,y,w,h, max-project=K, mean=K, none; the axis
// ops are in reduce.hpp) for input frames of `in`. Throws std::invalid_argument with a sentence
// saying what is wrong.
std::unique_ptr<Op> make_op(const std::string& spec, const Format& in);

}  // namespace framebroker::fbproc
