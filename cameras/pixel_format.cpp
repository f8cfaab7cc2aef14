#include "cameras/pixel_format.hpp"

#include <array>
#include <utility>

namespace framebroker::cameras {

namespace {

constexpr std::array<std::pair<PixelType, std::string_view>, 9> kNames{{
    {PixelType::Mono8, "Mono8"},
    {PixelType::Mono10, "Mono10"},
    {PixelType::Mono12, "Mono12"},
    {PixelType::Mono14, "Mono14"},
    {PixelType::Mono16, "Mono16"},
    {PixelType::Mono32F, "Mono32F"},
    {PixelType::RGB8, "RGB8"},
    {PixelType::BGRA8, "BGRA8"},
    {PixelType::RGB16, "RGB16"},
}};

}  // namespace

std::string_view to_string(PixelType t) {
  for (const auto& [type, name] : kNames)
    if (type == t) return name;
  return "Unknown";
}

std::optional<PixelType> parse_pixel_type(std::string_view s) {
  for (const auto& [type, name] : kNames)
    if (name == s) return type;
  return std::nullopt;
}

}  // namespace framebroker::cameras
