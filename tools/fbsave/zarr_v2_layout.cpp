// Zarr v2 with OME-NGFF 0.4 (see zarr_writer.cpp for the layout on disk): one file per chunk of
// K frames, Blosc-compressed or raw.
#include <blosc.h>

#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "fbsave/file_io.hpp"
#include "fbsave/zarr_layout.hpp"

namespace framebroker::fbsave::zarr {
namespace {

// Writes `pieces` to <dir>/.<name>.tmp, then renames it to <dir>/<name>. Returns "" on success,
// otherwise a sentence naming the file and the cause.
std::string replace_in(const std::string& dir, const std::string& name,
                       std::span<const std::string_view> pieces) {
  const std::string path = dir + "/" + name;
  if (const int e = replace_file(path, dir + "/." + name + ".tmp", pieces, false))
    return cannot_write(path, e);
  return {};
}

std::string replace_in(const std::string& dir, const std::string& name, std::string_view text) {
  return replace_in(dir, name, std::span(&text, 1));
}

class V2Layout final : public Layout {
 public:
  void prepare(const std::string& path, const DatasetInfo& info) override {
    path_ = path;
    info_ = info;
    k_ = chunk_frames(info);
    chunk_bytes_ = info.frame_bytes() * k_;
    cname_ = blosc_cname(info.compression);
    if (!cname_) return;
    if (blosc_compname_to_compcode(cname_) < 0)
      throw std::runtime_error(std::string("cannot write ") + path + ": this libblosc has no " +
                               cname_ + " (it has " + blosc_list_compressors() + ")");
    if (chunk_bytes_ > size_t(BLOSC_MAX_BUFFERSIZE))
      throw std::runtime_error("cannot write " + path + ": a chunk of " + std::to_string(k_) +
                               " frames is " + std::to_string(chunk_bytes_ >> 20) +
                               " MiB, over Blosc's 2 GiB limit; use fewer frames per chunk");
  }

  void create() override {
    std::error_code ec;
    std::filesystem::create_directories(path_ + "/0", ec);
    if (ec) throw std::runtime_error("cannot create " + path_ + ": " + ec.message());
    if (auto e = replace_in(path_, ".zgroup", zgroup_v2()); !e.empty()) throw std::runtime_error(e);
  }

  uint32_t frames_per_file() const override { return k_; }
  size_t raw_bytes() const override { return chunk_bytes_; }
  size_t out_bytes() const override { return cname_ ? chunk_bytes_ + BLOSC_MAX_OVERHEAD : 0; }

  std::span<const std::byte> encode(uint64_t index, std::byte* raw, uint32_t,
                                    std::byte* out) const override {
    if (!cname_) return {raw, chunk_bytes_};
    // One Blosc thread per call: the writer runs encode() on several threads at once.
    const int n = blosc_compress_ctx(info_.clevel, BLOSC_SHUFFLE, info_.bytes_per_sample,
                                     chunk_bytes_, raw, out, out_bytes(), cname_, 0, 1);
    if (n <= 0)
      throw std::runtime_error("cannot write " + path_ + "/" + file_path(index) +
                               ": Blosc compression failed (" + std::to_string(n) + ")");
    return {out, size_t(n)};
  }

  // Uncompressed, a chunk is its K frames; a partial one is padded with zeros.
  bool frames_as_is() const override { return !cname_; }
  size_t trailer_bytes() const override { return 0; }
  Trailer trailer(uint32_t, std::byte*) const override { return {chunk_bytes_, 0}; }

  std::string file_path(uint64_t index) const override { return "0/" + chunk_key_v2(info_, index); }

  std::string write_metadata(const FrameTable& table, uint64_t frames, bool final) override {
    TextPieces zattrs;
    zattrs_v2(info_, table, final, zattrs);
    if (std::string e = replace_in(path_, ".zattrs", zattrs.pieces()); !e.empty()) return e;
    return replace_in(path_ + "/0", ".zarray", zarray_v2(info_, frames));
  }

 private:
  std::string path_;
  DatasetInfo info_;
  uint32_t k_ = 1;
  size_t chunk_bytes_ = 0;
  const char* cname_ = nullptr;  // null: no compression
};

}  // namespace

std::unique_ptr<Layout> make_v2_layout() {
  return std::make_unique<V2Layout>();
}

}  // namespace framebroker::fbsave::zarr
