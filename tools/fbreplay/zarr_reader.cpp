// fbsave's OME-Zarr (NGFF 0.4, Zarr v2): .zattrs ("framebroker": the format and the per-frame
// columns), 0/.zarray (shape (T[, C], H, W), chunks of K frames, the codec) and 0/<i>.0.0[.0].
// An uncompressed grey frame is one pread from its chunk file into the slot. A Blosc chunk is
// read and decompressed once, into two buffers allocated when the dataset is opened and reused,
// and its frames are copied from there; RGB frames, planar in the array, are interleaved back
// as they are copied.
#include <blosc.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fbreplay/dataset.hpp"
#include "fbreplay/file_rows.hpp"
#include "fbreplay/saved_metadata.hpp"

namespace framebroker::fbreplay {
namespace {

using nlohmann::json;

template <typename T>
void interleave_row(const std::byte* planes, size_t plane_bytes, size_t width, size_t samples,
                    std::byte* dst) {
  for (size_t x = 0; x < width; ++x)
    for (size_t c = 0; c < samples; ++c)
      std::memcpy(dst + (x * samples + c) * sizeof(T), planes + c * plane_bytes + x * sizeof(T),
                  sizeof(T));
}

// A column of the "frames" object, with one value per frame.
const json& column(const json& frames, const char* key, size_t n, const std::string& file) {
  const auto it = frames.find(key);
  if (it == frames.end() || !it->is_array() || it->size() < n)
    corrupt(file, std::string("\"frames\".\"") + key + "\" does not list the array's " +
                      std::to_string(n) + " frames");
  return *it;
}

uint64_t number(const json& v, const std::string& file, const char* key) {
  if (!v.is_number_unsigned())
    corrupt(file, std::string("a value of \"frames\".\"") + key + "\" is " + v.dump());
  return v.get<uint64_t>();
}

class ZarrReader final : public DatasetReader {
 public:
  explicit ZarrReader(const std::string& path) : array_dir_(path + "/0") {
    info_.path = path;
    info_.format = "zarr";
    const std::string attrs_path = path + "/.zattrs";
    const auto attrs = load_json(path, attrs_path);
    const auto fb = attrs.find("framebroker");
    if (fb == attrs.end() || !fb->is_object())
      corrupt(attrs_path, "it has no \"framebroker\" attribute");
    take_format(*fb, attrs_path, info_);
    take_array(path + "/0/.zarray");
    take_frames(fb->value("frames", json::object()), attrs_path);
    if (const auto it = fb->find("source_stream"); it != fb->end() && it->is_string())
      info_.source_stream = it->get<std::string>();
    frame_bytes_ = info_.frame_bytes();
    chunk_bytes_ = frame_bytes_ * k_;
    check_chunks();
    if (compressed_ || info_.samples != 1) chunk_.resize(chunk_bytes_);  // once, reused
    if (compressed_) {
      packed_.resize(chunk_bytes_ + BLOSC_MAX_OVERHEAD);
      blosc_init();
      blosc_set_nthreads(int(std::clamp(std::thread::hardware_concurrency(), 1u, 4u)));
    }
  }

  ~ZarrReader() override {
    if (compressed_) blosc_destroy();
  }

  void read(size_t index, std::span<std::byte> dst, size_t dst_stride) override {
    const size_t row = info_.row_bytes();
    check_destination(dst, info_.height, row, dst_stride);
    const uint64_t chunk = index / k_;
    const size_t in_chunk = index % k_;
    open_chunk(chunk);
    if (!compressed_ && info_.samples == 1) {  // straight from the chunk file
      file_.read_rows(in_chunk * frame_bytes_, info_.height, row, dst, dst_stride);
      return;
    }
    load_chunk(chunk);
    const std::byte* frame = chunk_.data() + in_chunk * frame_bytes_;
    if (info_.samples == 1) {
      for (size_t y = 0; y < info_.height; ++y)
        std::memcpy(dst.data() + y * dst_stride, frame + y * row, row);
      return;
    }
    const size_t plane = frame_bytes_ / info_.samples;
    const size_t plane_row = size_t(info_.width) * info_.bytes_per_sample;
    for (size_t y = 0; y < info_.height; ++y) {
      const std::byte* src = frame + y * plane_row;
      std::byte* out = dst.data() + y * dst_stride;
      if (info_.bytes_per_sample == 1)
        interleave_row<uint8_t>(src, plane, info_.width, info_.samples, out);
      else if (info_.bytes_per_sample == 2)
        interleave_row<uint16_t>(src, plane, info_.width, info_.samples, out);
      else
        interleave_row<uint32_t>(src, plane, info_.width, info_.samples, out);
    }
  }

 private:
  void take_array(const std::string& file) {
    const auto a = load_json(info_.path, file);
    if (field<int>(a, "zarr_format", file) != 2) corrupt(file, "zarr_format is not 2");
    const auto shape = field<std::vector<uint64_t>>(a, "shape", file);
    const auto chunks = field<std::vector<uint64_t>>(a, "chunks", file);
    const std::string dtype = field<std::string>(a, "dtype", file);
    std::vector<uint64_t> want{info_.height, info_.width};
    if (info_.samples != 1) want.insert(want.begin(), info_.samples);
    if (shape.size() != want.size() + 1 || !std::equal(want.begin(), want.end(), shape.begin() + 1))
      corrupt(file, "its shape " + a["shape"].dump() + " is not (t, " +
                        (info_.samples != 1 ? "c, " : "") +
                        "y, x) of the frames .zattrs describes");
    if (chunks.size() != shape.size() || chunks[0] == 0 ||
        !std::equal(want.begin(), want.end(), chunks.begin() + 1))
      corrupt(file, "its chunks " + a["chunks"].dump() + " are not whole frames");
    const char kind = dtype.size() == 3 ? dtype[1] : '?';
    if (dtype.size() != 3 || (dtype[0] != '<' && dtype[0] != '|') || (kind != 'u' && kind != 'f') ||
        size_t(dtype[2] - '0') != info_.bytes_per_sample ||
        (kind == 'f') != (info_.pixel_type == "Mono32F"))
      corrupt(file, "dtype " + dtype + " does not fit pixel type " + info_.pixel_type);
    if (a.value("order", "C") != "C") corrupt(file, "the order is not C");
    if (const auto f = a.find("filters"); f != a.end() && !f->is_null() && !f->empty())
      corrupt(file, "it has filters, which fbsave never writes");
    const auto comp = a.find("compressor");
    if (comp != a.end() && !comp->is_null()) {
      if (comp->value("id", "") != "blosc")
        corrupt(file, "its compressor " + comp->dump() + " is not blosc");
      compressed_ = true;
    }
    frames_.resize(shape[0]);
    k_ = chunks[0];
    if (k_ > 65536) corrupt(file, "a chunk of " + std::to_string(k_) + " frames");
  }

  void take_frames(const json& frames, const std::string& file) {
    const size_t n = frames_.size();
    const json& seq = column(frames, "seq", n, file);
    const json& cfid = column(frames, "camera_frame_id", n, file);
    const json& mono = column(frames, "mono_ns", n, file);
    const json& real = column(frames, "realtime_ns", n, file);
    const json& hw = column(frames, "hw_timestamp_ns", n, file);
    for (size_t i = 0; i < n; ++i) {
      SavedFrame& f = frames_[i];
      f.seq = number(seq[i], file, "seq");
      f.camera_frame_id = number(cfid[i], file, "camera_frame_id");
      f.mono_ns = number(mono[i], file, "mono_ns");
      f.realtime_ns = number(real[i], file, "realtime_ns");
      if (!hw[i].is_null()) f.hw_timestamp_ns = number(hw[i], file, "hw_timestamp_ns");
    }
    // A processor's output also names the origin of each frame (fbsave writes null for none).
    if (frames.contains("source_seq")) {
      const json& source = column(frames, "source_seq", n, file);
      for (size_t i = 0; i < n; ++i)
        if (!source[i].is_null())
          frames_[i].source_seq = int64_t(number(source[i], file, "source_seq"));
    }
  }

  // The path of a chunk, in chunk_path_: "<t>.0.0" or "<t>.0.0.0", as fbsave writes them.
  void set_chunk_path(uint64_t chunk) {
    char key[48];
    std::snprintf(key, sizeof key, "/%llu.0.0%s", (unsigned long long)chunk,
                  info_.samples != 1 ? ".0" : "");
    chunk_path_.assign(array_dir_).append(key);  // reuses its capacity: no allocation
  }

  // Every chunk the frames need is there (fbsave writes each one whole), so that a damaged
  // dataset is refused before anything is published.
  void check_chunks() {
    const uint64_t chunks = (frames_.size() + k_ - 1) / k_;
    for (uint64_t c = 0; c < chunks; ++c) {
      set_chunk_path(c);
      std::error_code ec;
      const auto size = std::filesystem::file_size(chunk_path_, ec);
      if (ec)
        corrupt(info_.path, "chunk " + chunk_path_ + " of its " + std::to_string(frames_.size()) +
                                " frames is missing (" + ec.message() + ")");
      if (!compressed_ && size != chunk_bytes_)
        corrupt(info_.path, chunk_path_ + " has " + std::to_string(size) +
                                " bytes, an uncompressed chunk " + std::to_string(chunk_bytes_));
    }
  }

  void open_chunk(uint64_t chunk) {
    if (chunk == file_chunk_ && file_.is_open()) return;
    set_chunk_path(chunk);
    file_.open(info_.path, chunk_path_);
    file_chunk_ = chunk;
    if (!compressed_ && file_.size() != chunk_bytes_)
      corrupt(info_.path, chunk_path_ + " has " + std::to_string(file_.size()) +
                              " bytes, an uncompressed chunk " + std::to_string(chunk_bytes_));
  }

  // The chunk, decompressed or read, in chunk_ (once per chunk).
  void load_chunk(uint64_t chunk) {
    if (chunk == loaded_chunk_) return;
    loaded_chunk_ = UINT64_MAX;
    if (!compressed_) {
      file_.read_at(chunk_.data(), chunk_bytes_, 0);
    } else {
      const size_t n = file_.size();
      if (n > packed_.size() || n < BLOSC_MIN_HEADER_LENGTH)
        corrupt(info_.path, chunk_path_ + " has " + std::to_string(n) +
                                " bytes, not a Blosc chunk of " + std::to_string(chunk_bytes_));
      file_.read_at(packed_.data(), n, 0);
      size_t nbytes = 0;
      if (blosc_cbuffer_validate(packed_.data(), n, &nbytes) != 0 || nbytes != chunk_bytes_)
        corrupt(info_.path, chunk_path_ + " is not a Blosc chunk of " +
                                std::to_string(chunk_bytes_) + " bytes");
      if (blosc_decompress(packed_.data(), chunk_.data(), chunk_bytes_) != int(chunk_bytes_))
        corrupt(info_.path, chunk_path_ + " does not decompress");
    }
    loaded_chunk_ = chunk;
  }

  const std::string array_dir_;
  bool compressed_ = false;
  uint64_t k_ = 1;
  size_t frame_bytes_ = 0, chunk_bytes_ = 0;
  std::vector<std::byte> chunk_, packed_;  // allocated once
  std::string chunk_path_;
  ReadFile file_;
  uint64_t file_chunk_ = UINT64_MAX, loaded_chunk_ = UINT64_MAX;
};

}  // namespace

std::unique_ptr<DatasetReader> open_zarr(const std::string& path) {
  return std::make_unique<ZarrReader>(path);
}

}  // namespace framebroker::fbreplay
