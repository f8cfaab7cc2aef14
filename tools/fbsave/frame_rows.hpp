// How the writers take a frame out of its slot: `height` rows of row_bytes, `stride` bytes apart
// in the slot, packed in the output.
#pragma once

#include <cstddef>
#include <string>

#include "fbsave/writer.hpp"

namespace framebroker::fbsave {

// Completes `info` for the writer of `path` (samples 0: 1; stride 0: packed rows) and returns the
// bytes of one row. Throws std::runtime_error naming `path` when the frames are empty or a row
// does not fit in the stride.
size_t settle_rows(DatasetInfo& info, const std::string& path);

// Throws std::runtime_error naming `path` unless `frame` holds every row.
void check_frame_bytes(const DatasetInfo& info, size_t row_bytes, const FrameRecord& frame,
                       const std::string& path);

// Copies the rows of the frame at `in` to `out`, packed.
void pack_rows(const DatasetInfo& info, size_t row_bytes, const std::byte* in, std::byte* out);

}  // namespace framebroker::fbsave
