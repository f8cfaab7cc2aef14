#include "fbbench/bench_common.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace framebroker::fbbench {

Pin parse_pin(const std::string& name) {
  if (name == "none") return Pin::None;
  if (name == "same") return Pin::Same;
  if (name == "split") return Pin::Split;
  throw std::invalid_argument("--pin must be none, same or split, not '" + name + "'");
}

const char* to_string(Pin p) {
  switch (p) {
    case Pin::Same:
      return "same";
    case Pin::Split:
      return "split";
    default:
      return "none";
  }
}

int producer_cpu(Pin p) {
  return p == Pin::None ? -1 : 0;
}

int consumer_cpu(Pin p) {
  return p == Pin::None ? -1 : p == Pin::Same ? 0 : 1;
}

void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    const long n = ::sysconf(_SC_NPROCESSORS_CONF);
    for (long i = 0; i < n && i < CPU_SETSIZE; ++i) CPU_SET(i, &set);
  } else {
    CPU_SET(cpu, &set);
  }
  const int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
  if (rc != 0 && cpu >= 0)
    throw std::runtime_error("cannot pin to CPU " + std::to_string(cpu) + ": " + std::strerror(rc) +
                             " (--pin needs 2 CPUs for split)");
}

uint64_t parse_size(const std::string& text) {
  size_t used = 0;
  uint64_t n = 0;
  try {
    n = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = used ? text.substr(used) : "";
  const uint64_t scale = unit == ""                   ? 1
                         : unit == "K" || unit == "k" ? 1024
                         : unit == "M"                ? 1 << 20
                                                      : 0;
  if (used == 0 || scale == 0 || n == 0 || n > (uint64_t(64) << 20) / scale)
    throw std::invalid_argument("'" + text +
                                "' is not a frame size like 64K, 1M or 8M (up to 64M)");
  return n * scale;
}

std::string size_label(uint64_t bytes) {
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + "M";
  if (bytes % 1024 == 0) return std::to_string(bytes >> 10) + "K";
  return std::to_string(bytes);
}

FrameShape frame_shape_for(uint64_t bytes) {
  const uint64_t pixels = std::max<uint64_t>(bytes / 2, 64);
  FrameShape f;
  f.width =
      uint32_t(std::clamp<uint64_t>(std::bit_floor(uint64_t(std::sqrt(double(pixels)))), 8, 4096));
  f.height = uint32_t(std::clamp<uint64_t>(pixels / f.width, 8, 4096));
  f.label = size_label(f.bytes());
  return f;
}

FrameShape parse_frame_shape(const std::string& text) {
  const size_t x = text.find_first_of("xX");
  if (x == std::string::npos) return frame_shape_for(parse_size(text));
  const auto side = [&](const std::string& part) -> uint32_t {
    if (part.empty() || part.size() > 5 ||
        !std::all_of(part.begin(), part.end(), [](unsigned char c) { return std::isdigit(c); }))
      return 0;
    const unsigned long n = std::stoul(part);
    return n >= 8 && n <= 4096 ? uint32_t(n) : 0;
  };
  FrameShape f;
  f.width = side(text.substr(0, x));
  f.height = side(text.substr(x + 1));
  if (f.width == 0 || f.height == 0)
    throw std::invalid_argument(
        "'" + text + "' is not a frame size WxH in pixels like 64x64 (8 to 4096 a side)");
  f.label = std::to_string(f.width) + "x" + std::to_string(f.height);
  return f;
}

uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

uint64_t sum_pixels(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 2 <= bytes; i += 2) {
    uint16_t w;
    std::memcpy(&w, p + i, 2);
    sum += w;
  }
  if (i < bytes) sum += p[i];
  return sum;
}

void prefault(void* data, size_t bytes) {
  auto* p = static_cast<volatile uint8_t*>(data);
  const long page = ::sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < bytes; i += size_t(page)) p[i] = p[i];
}

LatencyStats summarize(std::vector<double> samples_us) {
  LatencyStats s;
  if (samples_us.empty()) return s;
  std::sort(samples_us.begin(), samples_us.end());
  const auto rank = [&](double q) {
    const size_t n = samples_us.size();
    const size_t i = size_t(std::ceil(q * double(n)));
    return samples_us[std::min(n - 1, i == 0 ? 0 : i - 1)];
  };
  s.count = samples_us.size();
  s.p50_us = rank(0.50);
  s.p99_us = rank(0.99);
  s.p999_us = rank(0.999);
  s.max_us = samples_us.back();
  return s;
}

}  // namespace framebroker::fbbench
