// What fbsave's Zarr v2 (NGFF 0.4) and Zarr v3 (NGFF 0.5) datasets differ in, for the one
// ZarrWriter (zarr_writer.cpp) that fills their files with frames, has them encoded and writes
// them in order. The writer owns threads, buffers and crash consistency; a layout owns names,
// encodings and metadata texts.
//
// A "file" is the unit the writer fills and writes at once: a chunk in v2 (and in unsharded v3),
// a shard in sharded v3. It holds frames_per_file() consecutive frames, or in a sequence one
// plane, and is addressed by its index (file number, or the plane in (t, c, z) order).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "fbsave/writer.hpp"
#include "fbsave/zarr_metadata.hpp"

namespace framebroker::fbsave::zarr {

class Layout {
 public:
  virtual ~Layout() = default;

  // Checks that this layout can hold `info`'s frames and settles its sizes; throws
  // std::runtime_error naming `path` and the reason. Creates nothing.
  virtual void prepare(const std::string& path, const DatasetInfo& info) = 0;
  // Creates the dataset's directories and the files that never change (a v2 .zgroup).
  virtual void create() = 0;

  // Frames in one file (1 in a sequence).
  virtual uint32_t frames_per_file() const = 0;
  // The size of a raw buffer: frames_per_file() packed frames, plus any room encode() uses in
  // place after them (a shard's index).
  virtual size_t raw_bytes() const = 0;
  // The size of an output buffer for encode() (0: encode() never needs one).
  virtual size_t out_bytes() const = 0;

  // Encodes one file whose first `frames` frames are in `raw` (the rest zero-filled) into `out`,
  // or in place in `raw`. Returns the bytes to write, a prefix of `raw` or of `out`; both buffers
  // are aligned for O_DIRECT and readable up to the next 4096-byte block. Runs on several
  // compressor threads at once, each with its own buffers, so it allocates nothing and keeps no
  // state. Throws std::runtime_error naming the file.
  virtual std::span<const std::byte> encode(uint64_t index, std::byte* raw, uint32_t frames,
                                            std::byte* out) const = 0;

  // True when a file is nothing but its frames, packed and as they are, back to back from
  // offset 0, then trailer() (no compression, no tiles, no reordering): the writer may then
  // write the frames straight from the slots and never calls encode().
  virtual bool frames_as_is() const = 0;
  // With frames_as_is(): the most bytes trailer() writes (0: there is never one).
  virtual size_t trailer_bytes() const = 0;
  struct Trailer {
    uint64_t offset = 0;  // where it goes in the file
    size_t bytes = 0;     // its size at `out`
  };
  // With frames_as_is(): the end of a file whose first `frames` frames are written. Writes the
  // trailer (a v3 shard's index) to `out` and says where it goes; the file is exactly
  // offset + bytes long, and whatever lies between the frames and `offset` reads as zeros (the
  // fill value: a partial chunk's padding). Allocates nothing.
  virtual Trailer trailer(uint32_t frames, std::byte* out) const = 0;

  // The file of `index`, relative to the dataset's root ("0/3.0.0", "0/c/3/0/0").
  virtual std::string file_path(uint64_t index) const = 0;

  // Rewrites the metadata so that it describes the first `frames` frames (all on disk) and
  // `table`; the shape last, so it never exceeds what the attributes describe. `final`: the last
  // call, from finish(). Returns "" or a sentence naming the file and the cause.
  virtual std::string write_metadata(const FrameTable& table, uint64_t frames, bool final) = 0;
};

std::unique_ptr<Layout> make_v2_layout();  // zarr_v2_layout.cpp
std::unique_ptr<Layout> make_v3_layout();  // zarr_v3_layout.cpp

}  // namespace framebroker::fbsave::zarr

namespace framebroker::fbsave {
// The Zarr writer (zarr_writer.cpp) with `layout`: make_zarr_writer(path) is this with
// make_v2_layout(), make_zarr3_writer(path) with make_v3_layout().
std::unique_ptr<Writer> make_zarr_writer(const std::string& path,
                                         std::unique_ptr<zarr::Layout> layout);
}  // namespace framebroker::fbsave
