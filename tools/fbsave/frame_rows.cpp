#include "fbsave/frame_rows.hpp"

#include <cstring>
#include <stdexcept>

namespace framebroker::fbsave {

size_t settle_rows(DatasetInfo& info, const std::string& path) {
  if (info.width == 0 || info.height == 0)
    throw std::runtime_error("cannot write " + path + ": the frames are empty (" +
                             std::to_string(info.width) + "x" + std::to_string(info.height) + ")");
  if (info.samples == 0) info.samples = 1;
  const size_t row_bytes = size_t(info.width) * info.samples * info.bytes_per_sample;
  if (info.stride == 0) info.stride = uint32_t(row_bytes);
  if (info.stride < row_bytes)
    throw std::runtime_error("cannot write " + path + ": stride " + std::to_string(info.stride) +
                             " is less than a row (" + std::to_string(row_bytes) + " bytes)");
  return row_bytes;
}

void check_frame_bytes(const DatasetInfo& info, size_t row_bytes, const FrameRecord& frame,
                       const std::string& path) {
  const size_t need = size_t(info.stride) * (info.height - 1) + row_bytes;
  if (frame.pixels.size() < need)
    throw std::runtime_error("cannot write " + path + ": frame seq " + std::to_string(frame.seq) +
                             " has " + std::to_string(frame.pixels.size()) + " bytes, expected " +
                             std::to_string(need));
}

void pack_rows(const DatasetInfo& info, size_t row_bytes, const std::byte* in, std::byte* out) {
  if (info.stride == row_bytes) {
    std::memcpy(out, in, row_bytes * info.height);
    return;
  }
  for (size_t y = 0; y < info.height; ++y)
    std::memcpy(out + y * row_bytes, in + y * info.stride, row_bytes);
}

}  // namespace framebroker::fbsave
