#include "cameras/sim/sim_camera.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

namespace framebroker::cameras {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::array<std::pair<SimCamera::Pattern, const char*>, 5> kPatterns{{
    {SimCamera::Pattern::Spots, "spots"},
    {SimCamera::Pattern::Gradient, "gradient"},
    {SimCamera::Pattern::Noise, "noise"},
    {SimCamera::Pattern::Empty, "empty"},
    {SimCamera::Pattern::Counter, "counter"},
}};

SimCamera::Pattern parse_pattern(const std::string& s) {
  for (const auto& [pattern, name] : kPatterns)
    if (s == name) return pattern;
  return SimCamera::Pattern::Spots;  // unreachable: the Enum property only allows the names
}

std::vector<std::string> pattern_names() {
  std::vector<std::string> out;
  for (const auto& [pattern, name] : kPatterns) out.emplace_back(name);
  return out;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

// A non-zero xorshift state that differs for every (seed, frame id).
uint64_t rng_state(uint32_t seed, uint64_t id) {
  uint64_t s = (uint64_t(seed) << 32) ^ id;
  return splitmix64(s) | 1;
}

uint64_t xorshift64(uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

double uniform(uint64_t& state) {
  return double(splitmix64(state) >> 11) * 0x1.0p-53;
}

template <class T>
void fill_counter(T* px, size_t n, uint64_t id) {
  T v = T(id);
  for (size_t i = 0; i < n; ++i) px[i] = v++;  // wraps mod 2^bits by design
}

template <class T>
void fill_gradient(T* px, uint32_t w, uint32_t h, uint64_t id) {
  constexpr uint32_t kLevels = uint32_t(std::numeric_limits<T>::max()) + 1;
  const uint32_t step = std::max<uint32_t>(1, kLevels / (w + h));
  for (uint32_t y = 0; y < h; ++y) {
    uint32_t v = uint32_t(y + 2 * id) * step;
    T* row = px + size_t(y) * w;
    for (uint32_t x = 0; x < w; ++x, v += step) row[x] = T(v);
  }
}

void fill_noise(std::span<std::byte> out, uint32_t seed, uint64_t id) {
  uint64_t rng = rng_state(seed, id);
  size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    uint64_t r = xorshift64(rng);
    std::memcpy(out.data() + i, &r, 8);
  }
  uint64_t r = xorshift64(rng);
  std::memcpy(out.data() + i, &r, out.size() - i);
}

// v in every T-sized lane of a 64-bit word.
template <class T>
constexpr uint64_t replicate(T v) {
  uint64_t w = 0;
  for (size_t j = 0; j < 8 / sizeof(T); ++j) w |= uint64_t(v) << (8 * sizeof(T) * j);
  return w;
}

// ~5% of full scale plus a little uniform noise (about 1.5% of full scale peak to peak).
// A whole word of pixels per random number: base + noise never carries into the next lane.
template <class T>
void fill_background(T* px, size_t n, uint64_t& rng) {
  constexpr T kFull = std::numeric_limits<T>::max();
  constexpr T kMask = kFull >> 6;
  constexpr T kBase = kFull / 20 - kMask / 2;
  constexpr size_t kPerWord = 8 / sizeof(T);
  constexpr uint64_t kMaskWord = replicate(kMask), kBaseWord = replicate(kBase);
  size_t i = 0;
  for (; i + kPerWord <= n; i += kPerWord) {
    const uint64_t w = kBaseWord + (xorshift64(rng) & kMaskWord);
    std::memcpy(px + i, &w, sizeof w);
  }
  for (uint64_t r = xorshift64(rng); i < n; ++i, r >>= 8 * sizeof(T))
    px[i] = T(kBase + (T(r) & kMask));
}

}  // namespace

// Draws one pattern into a frame. Built once per start(), so the spots' sprite and
// bead paths are computed once and each frame only stamps them.
class SimCamera::Renderer {
 public:
  explicit Renderer(const FrameFormat& fmt) : fmt_(fmt) {}

  void render(Pattern pattern, uint32_t seed, uint64_t id, std::span<std::byte> out) {
    if (fmt_.pixel_type == PixelType::Mono8)
      render_as<uint8_t>(pattern, seed, id, out);
    else
      render_as<uint16_t>(pattern, seed, id, out);
  }

 private:
  static constexpr int kSprite = 15;  // sprite side; covers +-3 sigma
  static constexpr int kBeads = 20;

  struct Bead {
    double cx, cy;  // centre of the path
    double ax, ay;  // amplitude of the path
    double wx, wy;  // angular speed, radians per frame
    double px, py;  // phase
    float brightness;
  };

  template <class T>
  void render_as(Pattern pattern, uint32_t seed, uint64_t id, std::span<std::byte> out) {
    // Slots start on a page boundary, so the span is aligned for any pixel type.
    T* px = reinterpret_cast<T*>(out.data());
    const size_t n = size_t(fmt_.width) * fmt_.height;
    switch (pattern) {
      case Pattern::Counter:
        return fill_counter(px, n, id);
      case Pattern::Gradient:
        return fill_gradient(px, fmt_.width, fmt_.height, id);
      case Pattern::Noise:
        return fill_noise(out.first(n * sizeof(T)), seed, id);
      case Pattern::Empty:  // pixels untouched: benchmarks measure the broker, not the render
        return;
      case Pattern::Spots:
        return render_spots(px, n, seed, id);
    }
  }

  template <class T>
  void render_spots(T* px, size_t n, uint32_t seed, uint64_t id) {
    if (spots_seed_ != seed) prepare_spots(seed, std::numeric_limits<T>::max());
    uint64_t rng = rng_state(seed, id);
    fill_background(px, n, rng);
    for (const Bead& b : beads_) {
      int x0 = int(std::lround(b.cx + b.ax * std::sin(b.wx * double(id) + b.px))) - kSprite / 2;
      int y0 = int(std::lround(b.cy + b.ay * std::sin(b.wy * double(id) + b.py))) - kSprite / 2;
      stamp(px, x0, y0, b.brightness);
    }
  }

  // Adds the sprite with its top-left corner at (x0, y0), clipped and saturating.
  template <class T>
  void stamp(T* px, int x0, int y0, float brightness) const {
    constexpr uint32_t kFull = std::numeric_limits<T>::max();
    const int w = int(fmt_.width), h = int(fmt_.height);
    for (int sy = std::max(0, -y0); sy < kSprite && y0 + sy < h; ++sy) {
      T* row = px + size_t(y0 + sy) * w;
      for (int sx = std::max(0, -x0); sx < kSprite && x0 + sx < w; ++sx) {
        uint32_t v = row[x0 + sx] + uint32_t(sprite_[sy * kSprite + sx] * brightness);
        row[x0 + sx] = T(std::min(v, kFull));
      }
    }
  }

  void prepare_spots(uint32_t seed, uint32_t full) {
    const double sigma = 2.2;
    const double peak = 0.75 * full - 0.05 * full;  // on top of the ~5% background
    for (int y = 0; y < kSprite; ++y)
      for (int x = 0; x < kSprite; ++x) {
        double dx = x - kSprite / 2, dy = y - kSprite / 2;
        sprite_[y * kSprite + x] =
            float(peak * std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)));
      }

    uint64_t state = seed;
    const double w = fmt_.width, h = fmt_.height;
    beads_.clear();
    for (int i = 0; i < kBeads; ++i) {
      Bead b;
      b.cx = uniform(state) * w;
      b.cy = uniform(state) * h;
      b.ax = (0.05 + 0.15 * uniform(state)) * w;
      b.ay = (0.05 + 0.15 * uniform(state)) * h;
      // Periods between about 200 and 1000 frames: slow, smooth drift.
      b.wx = 2 * std::numbers::pi / (200 + 800 * uniform(state));
      b.wy = 2 * std::numbers::pi / (200 + 800 * uniform(state));
      b.px = 2 * std::numbers::pi * uniform(state);
      b.py = 2 * std::numbers::pi * uniform(state);
      b.brightness = float(0.85 + 0.15 * uniform(state));
      beads_.push_back(b);
    }
    spots_seed_ = seed;
  }

  FrameFormat fmt_;
  std::optional<uint32_t> spots_seed_;
  std::array<float, kSprite * kSprite> sprite_{};
  std::vector<Bead> beads_;
};

// Frame k is due at base + (k - base_id) / rate; the schedule is re-anchored to "now"
// when the rate changes, and never skips frames to catch up.
struct SimCamera::Schedule {
  double rate = 0;
  Clock::time_point base;
  uint64_t base_id = 0;

  Clock::time_point due(uint64_t id, double new_rate) {
    if (new_rate != rate) {
      rate = new_rate;
      base = Clock::now();
      base_id = id;
    }
    if (rate <= 0) return Clock::time_point::min();
    auto offset = std::chrono::duration<double>(double(id - base_id) / rate);
    return base + std::chrono::duration_cast<Clock::duration>(offset);
  }
};

SimCamera::SimCamera(std::string name) : name_(std::move(name)) {
  auto size = [](const char* n) {
    return Property{n, PropertyType::Int, "512", "px", 8, 4096, {}, false, true};
  };
  props_.add(size("Width"));
  props_.add(size("Height"));
  props_.add(
      {"PixelType", PropertyType::Enum, "Mono16", "", {}, {}, {"Mono8", "Mono16"}, false, true});
  props_.add({"BitDepth", PropertyType::Int, "16", "bit", 8, 16, {}, true, false});
  props_.add({"Exposure", PropertyType::Float, "1", "ms", 0.001, 10000, {}, false, false});
  props_.add({"FrameRate", PropertyType::Float, "100", "fps", 0, 100000, {}, false, false});
  props_.add({"Binning", PropertyType::Int, "1", "", 1, 4, {"1", "2", "4"}, false, true});
  props_.add({"Pattern", PropertyType::Enum, "spots", "", {}, {}, pattern_names(), false, false});
  props_.add({"Seed", PropertyType::Int, "1", "", 0, 2147483647.0, {}, false, false});
  live_ = read_live();
}

SimCamera::~SimCamera() {
  stop();
}

void SimCamera::set(const std::string& prop, const std::string& value) {
  props_.set(prop, value, running());
  if (prop == "PixelType") props_.force("BitDepth", props_.get(prop) == "Mono8" ? "8" : "16");
  {
    std::lock_guard lock(mutex_);
    live_ = read_live();
    ++version_;
  }
  wake_.notify_all();
}

SimCamera::Live SimCamera::read_live() const {
  return Live{parse_pattern(props_.get("Pattern")), uint32_t(props_.get_int("Seed")),
              props_.get_float("Exposure"), props_.get_float("FrameRate")};
}

FrameFormat SimCamera::format() const {
  const auto binning = uint32_t(props_.get_int("Binning"));
  FrameFormat f;
  f.pixel_type = parse_pixel_type(props_.get("PixelType")).value_or(PixelType::Mono16);
  f.bit_depth = uint8_t(props_.get_int("BitDepth"));
  f.width = uint32_t(props_.get_int("Width")) / binning;
  f.height = uint32_t(props_.get_int("Height")) / binning;
  f.stride = f.width * uint32_t(bytes_per_pixel(f.pixel_type));
  f.roi_w = f.width;
  f.roi_h = f.height;
  f.binning_x = f.binning_y = uint8_t(binning);
  return f;
}

void SimCamera::start(FrameSink& sink, std::optional<uint64_t> frames) {
  if (running_) throw CameraError("camera '" + name_ + "' is already running; stop it first");
  if (thread_.joinable()) thread_.join();  // a finished run (frames reached)
  const FrameFormat fmt = format();
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = false;
  }
  running_ = true;
  try {
    thread_ = std::thread([this, &sink, fmt, frames] { run(sink, fmt, frames); });
  } catch (...) {
    running_ = false;
    throw;
  }
}

void SimCamera::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  // From a sink callback on our own thread we cannot join; the loop ends after this frame.
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void SimCamera::snap(FrameSink& sink) {
  if (running_) throw CameraError("camera '" + name_ + "' is running; stop it before snap");
  if (thread_.joinable()) thread_.join();
  const FrameFormat fmt = format();
  Renderer renderer(fmt);
  Live live;
  {
    std::lock_guard lock(mutex_);
    live = live_;
  }
  if (!produce(sink, renderer, fmt, live, 0))
    throw CameraError("snap on '" + name_ + "' got no free slot; the frame was dropped");
}

// The shortest frame time of a free-running sim whose ring is full.
constexpr std::chrono::microseconds kMinFrameTime{50};
// Nor does a dropped frame come faster than a 40 GB/s sensor could read it out: polling a full
// ring any faster only takes CPU from the readers that would free it.
constexpr double kMaxSensorBytesPerSecond = 40e9;

void SimCamera::run(FrameSink& sink, FrameFormat fmt, std::optional<uint64_t> frames) {
  Renderer renderer(fmt);
  Schedule schedule;
  Live live;
  Clock::duration frame_time{};  // what rendering the last frame took
  for (uint64_t id = 0; !frames || id < *frames; ++id) {
    if (!await_frame(id, schedule, live)) break;
    const auto t0 = Clock::now();
    if (produce(sink, renderer, fmt, live, id)) {
      frame_time = Clock::now() - t0;
    } else if (live.frame_rate == 0 &&
               !idle_for(std::max(
                   {frame_time, Clock::duration(kMinFrameTime),
                    std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                        double(fmt.frame_bytes()) / kMaxSensorBytesPerSecond))}))) {
      break;  // a full ring drops this id; free-running, a real sensor would
              // still spend a frame's time on it, so do not spin
    }
  }
  running_ = false;
}

bool SimCamera::idle_for(Clock::duration d) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, d, [&] { return stop_requested_; });
  return !stop_requested_;
}

bool SimCamera::await_frame(uint64_t id, Schedule& schedule, Live& live) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (stop_requested_) return false;
    live = live_;
    const Clock::time_point due = schedule.due(id, live.frame_rate);
    if (Clock::now() >= due) return true;
    // Wakes early on stop() and on set(), so a new FrameRate applies at once.
    const uint64_t version = version_;
    wake_.wait_until(lock, due, [&] { return stop_requested_ || version_ != version; });
  }
}

bool SimCamera::produce(FrameSink& sink, Renderer& renderer, const FrameFormat& fmt,
                        const Live& live, uint64_t id) {
  const size_t bytes = fmt.frame_bytes();
  std::optional<Loan> loan = sink.loan(bytes);
  if (!loan) return false;  // the sink has counted the drop
  if (loan->data.size() < bytes) {
    sink.abort(*loan);
    sink.drop("loan smaller than the frame");
    return false;
  }
  renderer.render(live.pattern, live.seed, id, loan->data.first(bytes));
  FrameInfo info;
  info.camera_frame_id = id;
  info.format = fmt;
  info.exposure_us = live.exposure_ms * 1000;
  sink.commit(*loan, info);
  ++committed_;
  return true;
}

}  // namespace framebroker::cameras
