#include "fbreplay/saved_metadata.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace framebroker::fbreplay {

namespace {

using nlohmann::json;

std::string read_text(const std::string& dataset, const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int e = errno;
    throw std::runtime_error("cannot read " + dataset + ": " + file + ": " + std::strerror(e));
  }
  std::ostringstream s;
  s << in.rdbuf();
  return std::move(s).str();
}

struct Layout {
  const char* pixel_type;
  uint32_t bytes_per_sample, samples;
};
// The pixel types fbsave saves (it refuses BGRA8).
constexpr Layout kLayouts[] = {
    {"Mono8", 1, 1},  {"Mono10", 2, 1},  {"Mono12", 2, 1}, {"Mono14", 2, 1},
    {"Mono16", 2, 1}, {"Mono32F", 4, 1}, {"RGB8", 1, 3},   {"RGB16", 2, 3},
};

uint64_t u64(const json& line, const char* key, const std::string& where) {
  return field<uint64_t>(line, key, where);
}

}  // namespace

void corrupt(const std::string& path, const std::string& why) {
  throw std::runtime_error(path + " is not a dataset fbsave wrote, or it is damaged: " + why);
}

json load_json(const std::string& dataset, const std::string& file) {
  const std::string text = read_text(dataset, file);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) corrupt(file, "it is not valid JSON");
  if (!j.is_object()) corrupt(file, "it is not a JSON object");
  return j;
}

void take_format(const json& summary, const std::string& file, DatasetInfo& info) {
  if (const auto sq = summary.find("sequence"); sq != summary.end() && sq->is_object())
    throw std::runtime_error(
        "cannot replay " + file + ": it holds sequence " + sq->value("axes", std::string()) +
        " saved with its dimensions (t, c, z); fbreplay replays flat (t, y, x) datasets only");
  info.stream = field<std::string>(summary, "stream", file);
  info.pixel_type = field<std::string>(summary, "pixel_type", file);
  info.width = field<uint32_t>(summary, "width", file);
  info.height = field<uint32_t>(summary, "height", file);
  if (info.width == 0 || info.height == 0 || info.width > 65536 || info.height > 65536)
    corrupt(file,
            "the frames are " + std::to_string(info.width) + "x" + std::to_string(info.height));
  const Layout* layout = nullptr;
  for (const Layout& l : kLayouts)
    if (info.pixel_type == l.pixel_type) layout = &l;
  if (!layout) corrupt(file, "fbreplay cannot publish pixel type \"" + info.pixel_type + "\"");
  info.bytes_per_sample = layout->bytes_per_sample;
  info.samples = layout->samples;
  info.camera_properties.clear();
  if (const auto it = summary.find("camera_properties"); it != summary.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      info.camera_properties[k] = v.is_string() ? v.get<std::string>() : v.dump();
}

std::vector<IndexLine> load_index(const std::string& dataset, const std::string& file,
                                  std::string& source_stream) {
  const std::string text = read_text(dataset, file);
  std::vector<IndexLine> lines;
  size_t pos = 0;
  for (size_t n = 1; pos < text.size(); ++n) {
    const size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;  // a line cut short by a kill: not a frame
    const std::string where = file + " line " + std::to_string(n);
    IndexLine line;
    line.json =
        json::parse(text.begin() + ptrdiff_t(pos), text.begin() + ptrdiff_t(end), nullptr, false);
    pos = end + 1;
    if (line.json.is_discarded() || !line.json.is_object()) corrupt(where, "not a JSON object");
    SavedFrame& f = line.frame;
    f.seq = u64(line.json, "seq", where);
    f.camera_frame_id = u64(line.json, "camera_frame_id", where);
    f.mono_ns = u64(line.json, "mono_ns", where);
    f.realtime_ns = u64(line.json, "realtime_ns", where);
    if (const auto it = line.json.find("hw_timestamp_ns"); it != line.json.end() && !it->is_null())
      f.hw_timestamp_ns = u64(line.json, "hw_timestamp_ns", where);
    if (line.json.contains("source_seq")) {
      f.source_seq = field<int64_t>(line.json, "source_seq", where);
      if (source_stream.empty())
        source_stream = field<std::string>(line.json, "source_stream", where);
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

double exposure_us(const DatasetInfo& info) {
  const auto it = info.camera_properties.find("Exposure");
  if (it == info.camera_properties.end()) return 0;
  char* end = nullptr;
  const double ms = std::strtod(it->second.c_str(), &end);
  return end != it->second.c_str() && ms > 0 ? ms * 1000 : 0;
}

}  // namespace framebroker::fbreplay
