#include "framebroker/sequence.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace framebroker {

namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument(what);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

SequenceSpec SequenceSpec::parse(std::string_view axes, std::string_view order) {
  SequenceSpec spec;
  while (!axes.empty()) {
    const size_t comma = axes.find(',');
    const std::string_view item = trim(axes.substr(0, comma));
    axes = comma == std::string_view::npos ? std::string_view() : axes.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq != 1 || item.size() < 3)
      bad("axis '" + std::string(item) + "' is not LETTER=SIZE (e.g. t=10,c=2,z=100)");
    uint32_t size = 0;
    const auto* end = item.data() + item.size();
    const auto [p, ec] = std::from_chars(item.data() + 2, end, size);
    if (ec != std::errc() || p != end)
      bad("axis '" + std::string(item) + "': the size must be a whole number");
    spec.axes.push_back({item[0], size});
  }
  if (!order.empty()) {
    if (order.size() != spec.axes.size())
      bad("--order '" + std::string(order) + "' must name each of the axes (" + spec.order() +
          ") once");
    std::vector<SequenceAxis> ordered;
    for (const char letter : order) {
      auto it = std::find_if(spec.axes.begin(), spec.axes.end(),
                             [&](const SequenceAxis& a) { return a.name == letter; });
      if (it == spec.axes.end())
        bad("--order '" + std::string(order) + "' names axis '" + std::string(1, letter) +
            "', which is not among the axes (" + spec.order() + ")");
      ordered.push_back(*it);
    }
    spec.axes = std::move(ordered);
  }
  spec.check();
  return spec;
}

void SequenceSpec::check() const {
  if (axes.empty()) bad("a sequence needs at least one axis (e.g. t=10)");
  std::string seen;
  for (const auto& a : axes) {
    if (kAxisLetters.find(a.name) == std::string_view::npos)
      bad("unknown axis '" + std::string(1, a.name) +
          "': axes are t (time), p (position), c (channel) and z");
    if (seen.find(a.name) != std::string::npos)
      bad("axis '" + std::string(1, a.name) + "' is given twice");
    seen += a.name;
    if (a.size == 0) bad("axis '" + std::string(1, a.name) + "' has size 0");
  }
  uint64_t n = 1;
  for (const auto& a : axes) {
    if (n > (uint64_t(1) << 48) / a.size) bad("the sequence has too many frames");
    n *= a.size;
  }
  if (!channels.empty() && channels.size() != size('c'))
    bad(std::to_string(channels.size()) + " channel names for " + std::to_string(size('c')) +
        " channels");
  if (z_step_um < 0 || interval_ms < 0) bad("z step and interval must not be negative");
  if (metadata.size() > kMaxMetadataBytes)
    bad("sequence metadata is " + std::to_string(metadata.size()) + " bytes; the limit is " +
        std::to_string(kMaxMetadataBytes));
  if (!metadata.empty()) {
    const auto j = nlohmann::json::parse(metadata, nullptr, false);
    if (j.is_discarded() || !j.is_object()) bad("sequence metadata must be a JSON object");
  }
}

uint64_t SequenceSpec::frames() const {
  uint64_t n = 1;
  for (const auto& a : axes) n *= a.size;
  return n;
}

std::string SequenceSpec::order() const {
  std::string o;
  for (const auto& a : axes) o += a.name;
  return o;
}

std::string SequenceSpec::axes_text() const {
  std::string t;
  for (const auto& a : axes)
    t += (t.empty() ? "" : ",") + std::string(1, a.name) + "=" + std::to_string(a.size);
  return t;
}

uint32_t SequenceSpec::size(char axis) const {
  for (const auto& a : axes)
    if (a.name == axis) return a.size;
  return 1;
}

void SequenceSpec::index_of(uint64_t position, std::span<uint32_t> out) const {
  for (size_t i = axes.size(); i-- > 0;) {
    if (i < out.size()) out[i] = uint32_t(position % axes[i].size);
    position /= axes[i].size;
  }
}

std::optional<uint64_t> SequenceSpec::position_of(std::span<const uint32_t> index) const {
  if (index.size() != axes.size()) return std::nullopt;
  uint64_t position = 0;
  for (size_t i = 0; i < axes.size(); ++i) {
    if (index[i] >= axes[i].size) return std::nullopt;
    position = position * axes[i].size + index[i];
  }
  return position;
}

}  // namespace framebroker
