// What fbreplay reads from a dataset fbsave wrote: the frame format, the camera's properties
// at the start, each frame's saved metadata, and each frame's pixels. One small interface; one
// reader per format (zarr_reader.cpp, tiff_reader.cpp, raw_reader.cpp), chosen by
// open_dataset() from what is on disk, never from the name alone.
//
// Every reader checks the dataset once, when it opens it (the metadata parses, the sizes agree,
// the data files hold every frame the metadata lists), and throws std::runtime_error with a
// sentence naming the path and what is wrong. read() then copies a frame's pixels straight into
// the caller's buffer (one copy; the Zarr reader decompresses a chunk once into a buffer it
// reuses) and allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace framebroker::fbreplay {

// One frame's metadata as fbsave saved it.
struct SavedFrame {
  uint64_t seq = 0;  // in the stream that was recorded
  uint64_t camera_frame_id = 0;
  uint64_t mono_ns = 0, realtime_ns = 0;  // the broker's clocks when the frame arrived
  std::optional<uint64_t> hw_timestamp_ns;
  int64_t source_seq = -1;  // a processed stream's frames: the seq of the origin frame
};

struct DatasetInfo {
  std::string path;
  std::string format;         // "zarr", "tiff" or "raw"
  std::string stream;         // the stream that was recorded
  std::string source_stream;  // its origin, when it was a processor's output
  std::string pixel_type;
  uint32_t width = 0, height = 0;
  uint32_t samples = 1;                                  // 1 grey, 3 RGB
  uint32_t bytes_per_sample = 2;                         // 1, 2 or 4
  std::map<std::string, std::string> camera_properties;  // at the start of the recording
  size_t row_bytes() const { return size_t(width) * samples * bytes_per_sample; }
  size_t frame_bytes() const { return row_bytes() * height; }
};

class DatasetReader {
 public:
  virtual ~DatasetReader() = default;
  DatasetReader(const DatasetReader&) = delete;
  DatasetReader& operator=(const DatasetReader&) = delete;

  const DatasetInfo& info() const { return info_; }
  // The frames in the dataset, in order; frames().size() is the frame count.
  const std::vector<SavedFrame>& frames() const { return frames_; }
  // Copies frame `index`'s pixels into `dst`: height rows of info().row_bytes(), `dst_stride`
  // bytes apart, samples interleaved (as in a slot). Throws std::runtime_error naming the path.
  virtual void read(size_t index, std::span<std::byte> dst, size_t dst_stride) = 0;

 protected:
  DatasetReader() = default;
  DatasetInfo info_;
  std::vector<SavedFrame> frames_;
};

// Opens the dataset at `path`, whichever of fbsave's formats it is. Throws std::runtime_error
// naming the path when it is missing, not a dataset fbsave wrote, or corrupt.
std::unique_ptr<DatasetReader> open_dataset(const std::string& path);

std::unique_ptr<DatasetReader> open_zarr(const std::string& path);
std::unique_ptr<DatasetReader> open_tiff(const std::string& path);
std::unique_ptr<DatasetReader> open_raw(const std::string& path);

}  // namespace framebroker::fbreplay
