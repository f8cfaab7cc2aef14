#include "common/single_image_tiff.hpp"

#include <tiffio.h>

#include <memory>
#include <stdexcept>

namespace framebroker::tools {

void write_tiff(const std::string& path, const ImageView& img, const std::string& description) {
  const size_t row_bytes = size_t(img.width) * img.samples * img.bits_per_sample / 8;
  if (img.stride < row_bytes || img.pixels.size() < size_t(img.stride) * img.height)
    throw std::runtime_error("image buffer is smaller than its geometry");
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpen(path.c_str(), "w"), TIFFClose);
  if (!tif) throw std::runtime_error("cannot create " + path);
  TIFF* t = tif.get();
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, img.width);
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, img.height);
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, img.bits_per_sample);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, img.samples);
  TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, img.floating ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, img.samples == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
  TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(t, 0));
  TIFFSetField(t, TIFFTAG_SOFTWARE, "framebroker");
  if (!description.empty()) TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
  for (uint32_t y = 0; y < img.height; ++y) {
    // libtiff takes a non-const buffer but does not write to it without compression.
    auto* row = const_cast<std::byte*>(img.pixels.data() + size_t(y) * img.stride);
    if (TIFFWriteScanline(t, row, y, 0) < 0)
      throw std::runtime_error("cannot write " + path + " (row " + std::to_string(y) + ")");
  }
}

}  // namespace framebroker::tools
