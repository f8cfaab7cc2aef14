#include "fbproc/ops.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace framebroker::fbproc {
namespace {

// How a pixel is stored: `samples` values of one element type.
enum class Element { U8, U16, F32 };
struct Layout {
  Element element;
  uint32_t samples;
  uint32_t element_bytes() const {
    return element == Element::U8 ? 1 : element == Element::U16 ? 2 : 4;
  }
  uint32_t pixel_bytes() const { return samples * element_bytes(); }
};

Layout layout_of(PixelType t) {
  switch (t) {
    case PixelType::Mono8:
      return {Element::U8, 1};
    case PixelType::Mono10:
    case PixelType::Mono12:
    case PixelType::Mono14:
    case PixelType::Mono16:
      return {Element::U16, 1};
    case PixelType::Mono32F:
      return {Element::F32, 1};
    case PixelType::RGB8:
      return {Element::U8, 3};
    case PixelType::BGRA8:
      return {Element::U8, 4};
    case PixelType::RGB16:
      return {Element::U16, 3};
  }
  throw std::invalid_argument("unknown pixel type");
}

// Calls f(T{}) with T the element type of `e`.
template <typename F>
void with_element(Element e, F&& f) {
  switch (e) {
    case Element::U8:
      return f(uint8_t{});
    case Element::U16:
      return f(uint16_t{});
    case Element::F32:
      return f(float{});
  }
}

template <typename T>
const T* row_of(std::span<const std::byte> in, uint32_t stride, uint32_t y) {
  return reinterpret_cast<const T*>(in.data() + size_t(y) * stride);
}
template <typename T>
T* row_of(std::span<std::byte> out, uint32_t stride, uint32_t y) {
  return reinterpret_cast<T*>(out.data() + size_t(y) * stride);
}

uint32_t parse_number(std::string_view text, const std::string& spec, const char* what) {
  uint32_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size())
    throw std::invalid_argument("--op " + spec + ": " + what + " must be a whole number, not '" +
                                std::string(text) + "'");
  return v;
}

std::vector<uint32_t> parse_list(std::string_view text, const std::string& spec, const char* what) {
  std::vector<uint32_t> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    out.push_back(parse_number(text.substr(start, comma - start), spec, what));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

class Base : public Op {
 public:
  Base(const Format& in, Format out) : in_(in), out_(out), layout_(layout_of(in.pixel_type)) {
    out_.stride = out_.width * layout_.pixel_bytes();
  }
  Format output() const override { return out_; }

 protected:
  Format in_, out_;
  Layout layout_;
};

// roi=x,y,w,h and copy (the whole frame): rows copied, packed.
class Crop final : public Base {
 public:
  Crop(const Format& in, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
      : Base(in, Format{w, h, 0, in.pixel_type, in.bit_depth}), x_(x), y_(y) {}
  void apply(std::span<const std::byte> in, uint32_t, std::span<std::byte> out) override {
    const size_t offset = size_t(x_) * layout_.pixel_bytes();
    for (uint32_t row = 0; row < out_.height; ++row)
      std::memcpy(out.data() + size_t(row) * out_.stride,
                  in.data() + size_t(y_ + row) * in_.stride + offset, out_.stride);
  }

 private:
  uint32_t x_, y_;
};

// none: the frame's metadata goes on, its pixels are not written (the slot keeps what it held).
// What one hop costs besides the op's own work, for `fbbench chain --op none`.
class Nothing final : public Base {
 public:
  explicit Nothing(const Format& in)
      : Base(in, Format{in.width, in.height, 0, in.pixel_type, in.bit_depth}) {}
  void apply(std::span<const std::byte>, uint32_t, std::span<std::byte>) override {}
};

// bin=N: each output pixel is the mean (rounded down) or the sum (saturated) of N x N input
// pixels, sample by sample. Rows and columns past the last whole block are left out.
class Bin final : public Base {
 public:
  Bin(const Format& in, uint32_t n, bool sum) : Base(in, binned(in, n, sum)), n_(n), sum_(sum) {}
  void apply(std::span<const std::byte> in, uint32_t, std::span<std::byte> out) override {
    with_element(layout_.element, [&](auto zero) { run<decltype(zero)>(in, out); });
  }

 private:
  static Format binned(const Format& in, uint32_t n, bool sum) {
    Format f{in.width / n, in.height / n, 0, in.pixel_type, in.bit_depth};
    // A sum of Mono10..14 values outgrows their depth; it is a 16-bit image then.
    const Layout l = layout_of(in.pixel_type);
    if (sum && l.element == Element::U16 && l.samples == 1) {
      f.pixel_type = PixelType::Mono16;
      f.bit_depth = 16;
    }
    return f;
  }

  template <typename T>
  void run(std::span<const std::byte> in, std::span<std::byte> out) {
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
    const uint32_t s = layout_.samples;
    const double count = double(n_) * n_;
    for (uint32_t oy = 0; oy < out_.height; ++oy) {
      T* dst = row_of<T>(out, out_.stride, oy);
      for (uint32_t ox = 0; ox < out_.width; ++ox)
        for (uint32_t c = 0; c < s; ++c) {
          Acc acc = 0;
          for (uint32_t dy = 0; dy < n_; ++dy) {
            const T* src = row_of<T>(in, in_.stride, oy * n_ + dy) + size_t(ox) * n_ * s + c;
            for (uint32_t dx = 0; dx < n_; ++dx) acc += src[size_t(dx) * s];
          }
          dst[size_t(ox) * s + c] = finish<T, Acc>(acc, count);
        }
    }
  }

  template <typename T, typename Acc>
  T finish(Acc acc, double count) const {
    if constexpr (std::is_floating_point_v<T>) {
      return T(sum_ ? acc : acc / count);
    } else {
      if (!sum_) return T(acc / Acc(count));
      return T(std::min<Acc>(acc, std::numeric_limits<T>::max()));
    }
  }

  uint32_t n_;
  bool sum_;
};

// max-project=K and mean=K: one output frame of K input frames.
class Projection final : public Base {
 public:
  Projection(const Format& in, uint32_t k, bool mean)
      : Base(in, Format{in.width, in.height, 0, in.pixel_type, in.bit_depth}),
        k_(k),
        reduction_(in, mean) {}
  uint32_t frames_per_output() const override { return k_; }
  void apply(std::span<const std::byte> in, uint32_t index, std::span<std::byte> out) override {
    if (index == 0) reduction_.reset();
    reduction_.add(in, in_.stride);
    if (index + 1 == k_) reduction_.finish(out);
  }

 private:
  uint32_t k_;
  Reduction reduction_;
};

}  // namespace

size_t Reduction::bytes(const Format& in, bool mean) {
  const Layout l = layout_of(in.pixel_type);
  return size_t(in.width) * in.height * (mean ? l.samples * sizeof(double) : l.pixel_bytes());
}

Reduction::Reduction(const Format& in, bool mean) : in_(in), mean_(mean) {
  const Layout l = layout_of(in.pixel_type);
  if (mean)
    sum_.resize(size_t(in.width) * in.height * l.samples);
  else
    max_.resize(size_t(in.width) * in.height * l.pixel_bytes());
}

void Reduction::add(std::span<const std::byte> in, uint32_t stride) {
  const Layout l = layout_of(in_.pixel_type);
  const size_t n = size_t(in_.width) * l.samples;  // samples per row
  const bool first = count_++ == 0;
  with_element(l.element, [&](auto zero) {
    using T = decltype(zero);
    for (uint32_t y = 0; y < in_.height; ++y) {
      const T* src = row_of<T>(in, stride, y);
      if (mean_) {
        double* acc = sum_.data() + y * n;
        for (size_t i = 0; i < n; ++i) acc[i] = (first ? 0.0 : acc[i]) + double(src[i]);
        continue;
      }
      T* acc = reinterpret_cast<T*>(max_.data()) + y * n;
      if (first)
        std::memcpy(acc, src, n * sizeof(T));
      else
        for (size_t i = 0; i < n; ++i) acc[i] = std::max(acc[i], src[i]);
    }
  });
}

void Reduction::finish(std::span<std::byte> out) {
  const Layout l = layout_of(in_.pixel_type);
  if (!mean_) {
    std::memcpy(out.data(), max_.data(), max_.size());
  } else {
    with_element(l.element, [&](auto zero) {
      using T = decltype(zero);
      T* dst = reinterpret_cast<T*>(out.data());
      for (size_t i = 0; i < sum_.size(); ++i) {
        const double m = sum_[i] / count_;
        dst[i] = std::is_floating_point_v<T> ? T(m) : T(uint64_t(m));
      }
    });
  }
  count_ = 0;
}

std::unique_ptr<Op> make_op(const std::string& spec, const Format& in) {
  const Layout l = layout_of(in.pixel_type);
  if (size_t(in.width) * l.pixel_bytes() > in.stride)
    throw std::invalid_argument("input rows are wider than their stride");
  const size_t eq = spec.find('=');
  const std::string name = spec.substr(0, eq);
  const std::string_view arg =
      eq == std::string::npos ? std::string_view{} : std::string_view(spec).substr(eq + 1);
  const auto need_arg = [&](const char* form) {
    if (arg.empty()) throw std::invalid_argument("--op " + spec + ": write it as " + form);
  };

  if (name == "copy") {
    if (!arg.empty()) throw std::invalid_argument("--op copy takes no value");
    return std::make_unique<Crop>(in, 0, 0, in.width, in.height);
  }
  if (name == "none") {
    if (!arg.empty()) throw std::invalid_argument("--op none takes no value");
    return std::make_unique<Nothing>(in);
  }
  if (name == "roi") {
    need_arg("roi=x,y,w,h");
    const auto v = parse_list(arg, spec, "x, y, w and h");
    if (v.size() != 4) throw std::invalid_argument("--op " + spec + ": write it as roi=x,y,w,h");
    if (v[2] == 0 || v[3] == 0 || uint64_t(v[0]) + v[2] > in.width ||
        uint64_t(v[1]) + v[3] > in.height)
      throw std::invalid_argument("--op " + spec + ": the ROI must be non-empty and inside the " +
                                  std::to_string(in.width) + "x" + std::to_string(in.height) +
                                  " input");
    return std::make_unique<Crop>(in, v[0], v[1], v[2], v[3]);
  }
  if (name == "bin") {
    need_arg("bin=N or bin=N,sum");
    const size_t comma = arg.find(',');
    const std::string_view how = comma == std::string_view::npos ? "mean" : arg.substr(comma + 1);
    if (how != "mean" && how != "sum")
      throw std::invalid_argument("--op " + spec + ": bin=N,mean or bin=N,sum");
    const uint32_t n = parse_number(arg.substr(0, comma), spec, "N");
    if (n < 1 || n > in.width || n > in.height)
      throw std::invalid_argument("--op " + spec + ": N must be 1 to " +
                                  std::to_string(std::min(in.width, in.height)));
    return std::make_unique<Bin>(in, n, how == "sum");
  }
  if (name == "max-project" || name == "mean") {
    need_arg(name == "mean" ? "mean=K" : "max-project=K");
    const uint32_t k = parse_number(arg, spec, "K");
    if (k < 1 || k > 65536) throw std::invalid_argument("--op " + spec + ": K must be 1 to 65536");
    return std::make_unique<Projection>(in, k, name == "mean");
  }
  throw std::invalid_argument(
      "unknown --op '" + spec +
      "' (copy, bin=N[,sum], roi=x,y,w,h, max-project=K, mean=K, max-project=z, "
      "mean=t:K, none)");
}

}  // namespace framebroker::fbproc
