// The JSON side of fbsave's datasets, as fbreplay needs it: a metadata file parsed with errors
// that name it, a field taken with a check of its type, the frame format, and the per-frame
// lines of the raw and TIFF indexes (.jsonl). Knows nothing of pixels.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fbreplay/dataset.hpp"

namespace framebroker::fbreplay {

// "<path> is not a dataset fbsave wrote (<why>)": an error about the whole dataset.
[[noreturn]] void corrupt(const std::string& path, const std::string& why);

// Parses the JSON file `file` of the dataset `dataset`. Throws naming `file`.
nlohmann::json load_json(const std::string& dataset, const std::string& file);

// j[key] as T; throws naming `file` and `key` when it is missing or of another type.
template <typename T>
T field(const nlohmann::json& j, const char* key, const std::string& file) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) corrupt(file, std::string("no \"") + key + "\"");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    corrupt(file, std::string("\"") + key + "\" is " + it->dump());
  }
}

// Fills info's stream, pixel_type, width, height, samples, bytes_per_sample and
// camera_properties from fbsave's summary (meta.json, .frames.json or the "framebroker"
// attribute), checking that the pixel type is one fbreplay can publish.
void take_format(const nlohmann::json& summary, const std::string& file, DatasetInfo& info);

// One line of index.jsonl / .frames.jsonl.
struct IndexLine {
  SavedFrame frame;
  nlohmann::json json;  // the whole line, for the format's own fields
};
// Reads every line of `file` in order; throws naming the file and line when one does not parse.
// A last line without its newline (a writer killed mid-line) is left out. The first
// "source_stream" a line names goes to `source_stream`.
std::vector<IndexLine> load_index(const std::string& dataset, const std::string& file,
                                  std::string& source_stream);

// The exposure in µs from the camera's "Exposure" property (ms), or 0.
double exposure_us(const DatasetInfo& info);

}  // namespace framebroker::fbreplay
