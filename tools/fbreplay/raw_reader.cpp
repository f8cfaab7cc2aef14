// fbsave's raw directory: meta.json (the format), index.jsonl (a line per frame: seq, ids,
// timestamps, and the frame's offset and size in frames.raw) and frames.raw (rows packed).
// A frame is one pread from frames.raw into the slot. Lines whose frame is not wholly in
// frames.raw (a saver killed mid-frame) are left out.
#include <string>

#include "fbreplay/dataset.hpp"
#include "fbreplay/file_rows.hpp"
#include "fbreplay/saved_metadata.hpp"

namespace framebroker::fbreplay {
namespace {

class RawReader final : public DatasetReader {
 public:
  explicit RawReader(const std::string& path) {
    info_.path = path;
    info_.format = "raw";
    const std::string meta_path = path + "/meta.json";
    const auto meta = load_json(path, meta_path);
    if (meta.value("format", "") != "framebroker.fbsave.raw")
      corrupt(meta_path, "its \"format\" is not framebroker.fbsave.raw");
    take_format(meta, meta_path, info_);
    if (const auto bps = meta.find("bytes_per_sample");
        bps != meta.end() && *bps != info_.bytes_per_sample)
      corrupt(meta_path,
              "bytes_per_sample " + bps->dump() + " does not fit pixel type " + info_.pixel_type);
    const uint64_t frame_bytes = field<uint64_t>(meta, "frame_bytes", meta_path);
    if (frame_bytes != info_.frame_bytes())
      corrupt(meta_path, "frame_bytes is " + std::to_string(frame_bytes) + ", a " +
                             std::to_string(info_.width) + "x" + std::to_string(info_.height) +
                             " " + info_.pixel_type + " frame is " +
                             std::to_string(info_.frame_bytes()));

    data_ = ReadFile(path, path + "/" + meta.value("data_file", std::string("frames.raw")));
    const std::string index_path =
        path + "/" + meta.value("index_file", std::string("index.jsonl"));
    for (auto& line : load_index(path, index_path, info_.source_stream)) {
      const std::string where = index_path + " line " + std::to_string(frames_.size() + 1);
      const uint64_t off = field<uint64_t>(line.json, "offset", where);
      const uint64_t bytes = field<uint64_t>(line.json, "bytes", where);
      if (bytes != frame_bytes)
        corrupt(where, "a frame of " + std::to_string(bytes) + " bytes, not " +
                           std::to_string(frame_bytes));
      if (off > data_.size() || data_.size() - off < bytes) break;  // cut short by a kill
      frames_.push_back(line.frame);
      offsets_.push_back(off);
    }
  }

  void read(size_t index, std::span<std::byte> dst, size_t dst_stride) override {
    data_.read_rows(offsets_.at(index), info_.height, info_.row_bytes(), dst, dst_stride);
  }

 private:
  ReadFile data_;
  std::vector<uint64_t> offsets_;  // of each frame in frames.raw
};

}  // namespace

std::unique_ptr<DatasetReader> open_raw(const std::string& path) {
  return std::make_unique<RawReader>(path);
}

}  // namespace framebroker::fbreplay
