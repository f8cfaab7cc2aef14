// fbsave's OME-TIFF: <path> (BigTIFF, one uncompressed strip per page), <path>.frames.json (the
// summary) and <path>.frames.jsonl (a line per page). libtiff walks the pages once, when the
// dataset is opened, and checks each one's layout; each page's strip offset is kept, so a frame
// is then one pread from the file into the slot, with no libtiff call and no buffer.
// Pages beyond the index's lines, or lines beyond the pages (a saver killed between the two),
// are left out: a frame is replayed only with its metadata.
#include <tiffio.h>

#include <cstdarg>
#include <cstdio>
#include <memory>
#include <string>

#include "fbreplay/dataset.hpp"
#include "fbreplay/file_rows.hpp"
#include "fbreplay/saved_metadata.hpp"

namespace framebroker::fbreplay {
namespace {

// libtiff's first error, kept for the message.
int keep_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* out = static_cast<std::string*>(user);
  if (!out->empty()) return 1;
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  *out = (module && *module) ? std::string(module) + ": " + buf : std::string(buf);
  return 1;
}
int ignore_warning(TIFF*, void*, const char*, const char*, va_list) {
  return 1;
}

struct TiffClose {
  void operator()(TIFF* t) const { TIFFClose(t); }
};

class TiffReader final : public DatasetReader {
 public:
  explicit TiffReader(const std::string& path) {
    info_.path = path;
    info_.format = "tiff";
    const std::string summary_path = path + ".frames.json";
    const auto summary = load_json(path, summary_path);
    if (summary.value("format", "") != "framebroker.fbsave.ome-tiff")
      corrupt(summary_path, "its \"format\" is not framebroker.fbsave.ome-tiff");
    take_format(summary, summary_path, info_);
    const auto lines = load_index(path, path + ".frames.jsonl", info_.source_stream);

    data_ = ReadFile(path, path);  // first: a missing file is named as such
    std::string error;
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, &keep_error, &error);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, &ignore_warning, nullptr);
    std::unique_ptr<TIFF, TiffClose> tif(TIFFOpenExt(path.c_str(), "rm", opts));
    TIFFOpenOptionsFree(opts);
    if (!tif) corrupt(path, "libtiff cannot open it (" + error + ")");
    do {
      const size_t page = offsets_.size();
      if (page >= lines.size()) break;  // a page without its line
      check_page(tif.get(), page);
      if (!error.empty()) corrupt(path, "page " + std::to_string(page) + ": " + error);
      const uint64_t off = TIFFGetStrileOffset(tif.get(), 0);
      const uint64_t bytes = TIFFGetStrileByteCount(tif.get(), 0);
      if (bytes != info_.frame_bytes() || off > data_.size() || data_.size() - off < bytes)
        corrupt(path, "page " + std::to_string(page) + " has " + std::to_string(bytes) +
                          " bytes at offset " + std::to_string(off) + ", the file " +
                          std::to_string(data_.size()) + "; a frame is " +
                          std::to_string(info_.frame_bytes()));
      const auto want = lines[page].json.find("page");
      if (want != lines[page].json.end() && *want != page)
        corrupt(path + ".frames.jsonl",
                "line " + std::to_string(page + 1) + " describes page " + want->dump());
      offsets_.push_back(off);
      frames_.push_back(lines[page].frame);
    } while (TIFFReadDirectory(tif.get()));
    if (!error.empty()) corrupt(path, error);
  }

  void read(size_t index, std::span<std::byte> dst, size_t dst_stride) override {
    data_.read_rows(offsets_.at(index), info_.height, info_.row_bytes(), dst, dst_stride);
  }

 private:
  // Throws unless the current page is one uncompressed strip of the summary's frame format.
  void check_page(TIFF* tif, size_t page) const {
    uint32_t w = 0, h = 0, rows = 0;
    uint16_t bps = 0, spp = 1, comp = COMPRESSION_NONE, planar = PLANARCONFIG_CONTIG;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows);
    const std::string p = "page " + std::to_string(page) + ": ";
    if (w != info_.width || h != info_.height)
      corrupt(info_.path, p + std::to_string(w) + "x" + std::to_string(h) + ", the summary says " +
                              std::to_string(info_.width) + "x" + std::to_string(info_.height));
    if (bps != 8 * info_.bytes_per_sample || spp != info_.samples)
      corrupt(info_.path, p + std::to_string(spp) + " samples of " + std::to_string(bps) +
                              " bits, not " + info_.pixel_type);
    if (comp != COMPRESSION_NONE || planar != PLANARCONFIG_CONTIG || rows < h ||
        TIFFNumberOfStrips(tif) != 1)
      corrupt(info_.path, p + "not one uncompressed strip, as fbsave writes pages");
  }

  ReadFile data_;
  std::vector<uint64_t> offsets_;  // of each page's strip
};

}  // namespace

std::unique_ptr<DatasetReader> open_tiff(const std::string& path) {
  return std::make_unique<TiffReader>(path);
}

}  // namespace framebroker::fbreplay
