// Zarr v3 with OME-NGFF 0.5: the layout ZarrWriter (zarr_writer.cpp) fills for --format zarr3.
//
// Layout of <path> (a directory):
//   zarr.json            group; attributes "ome" (version 0.5, multiscales, omero of a sequence)
//                        and "framebroker" (per-frame columns, missed seqs: as in v2)
//   0/zarr.json          the array: shape (T, [3,] H, W) or a sequence's (T, C, Z, H, W), codecs
//   0/c/<i>/0/0[/0]      file i (a sequence's: 0/c/<t>/<c>/<z>/0/0)
//
// An inner chunk is K frames (DatasetInfo::chunk_frames), or with DatasetInfo::tile one
// tile x tile region of one frame (K = 1; the frame's edge tiles padded with zeros). Unsharded
// (shard_frames 0), a file is one chunk of K frames: bytes, then blosc or zstd. Sharded, a file is
// a shard of S frames (a sequence's: one plane) in one sharding_indexed codec: its inner chunks
// (bytes, then blosc or zstd) one after the other in C order, then the index: per inner chunk
// (offset, nbytes) as u64 little-endian, both 2^64-1 for a chunk that is absent (the frames past
// the last one of the dataset's last shard), and the index's crc32c (zarrita needs the index at
// the end and its crc32c).
//
// encode() runs on several compressor threads with their own buffers, so everything it needs
// lives in them (it allocates nothing; Blosc's blosc_compress_ctx, asked for 1 thread, makes
// its own small context, as the v2 layout's does):
//   raw  the S frames, then room for the index: uncompressed whole-frame chunks are already where
//        the shard wants them, so the index is written after the last present one, in place
//        (trailer(): the same index, for ZarrWriter's direct path, which writes such shards
//        straight from the slots and never calls encode()).
//   out  [compressed chunks | index][index scratch][tile scratch][zstd workspace]
//        (the parts a configuration needs; see out_bytes()). A tile is gathered row by row into
//        the tile scratch (uncompressed: straight into its place in `out`) and compressed from
//        there; zstd compresses with a static context in the workspace (ZSTD_initStaticCCtx).
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_initStaticCCtx, ZSTD_estimateCCtxSize
#include <blosc.h>
#include <zstd.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <cstring>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "fbsave/file_io.hpp"
#include "fbsave/zarr_layout.hpp"

namespace framebroker::fbsave::zarr {
namespace {

constexpr uint64_t kAbsent = ~uint64_t(0);  // an absent inner chunk's offset and nbytes

using Crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

void store_le64(std::byte* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = std::byte(v >> (8 * i));
}
void store_le32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = std::byte(v >> (8 * i));
}
constexpr size_t align64(size_t n) {
  return (n + 63) / 64 * 64;
}

class V3Layout final : public Layout {
 public:
  void prepare(const std::string& path, const DatasetInfo& info) override;
  void create() override;
  uint32_t frames_per_file() const override { return files_frames_; }
  size_t raw_bytes() const override {
    return size_t(files_frames_) * frame_bytes_ + (sharded_ ? index_bytes_ : 0);
  }
  size_t out_bytes() const override { return out_bytes_; }
  std::span<const std::byte> encode(uint64_t index, std::byte* raw, uint32_t frames,
                                    std::byte* out) const override;
  // Uncompressed whole-frame chunks: a file is its frames, then (sharded) the index.
  bool frames_as_is() const override {
    return info_.compression == Compression::None && tile_ == 0;
  }
  size_t trailer_bytes() const override { return sharded_ ? index_bytes_ : 0; }
  Trailer trailer(uint32_t frames, std::byte* out) const override;
  std::string file_path(uint64_t index) const override { return "0/" + chunk_key_v3(info_, index); }
  std::string write_metadata(const FrameTable& table, uint64_t frames, bool final) override;

 private:
  [[noreturn]] void fail(uint64_t index, const std::string& why) const {
    throw std::runtime_error("cannot write " + path_ + "/" + file_path(index) + ": " + why);
  }
  // Compresses `n` bytes at `src` into `dst` (room: bound_); returns the compressed size.
  size_t compress(uint64_t index, const std::byte* src, std::byte* dst, std::byte* out) const;
  // Inner chunks of a file whose first `frames` frames are there (the others are absent).
  size_t present_chunks(uint32_t frames) const {
    const size_t groups = std::min<size_t>((size_t(frames) + k_ - 1) / k_, files_frames_ / k_);
    return groups * tiles_y_ * tiles_x_;
  }
  // Ends the index at `index` (its entries written) with their crc32c.
  void seal_index(std::byte* index) const {
    Crc32c crc;
    crc.process_bytes(index, index_bytes_ - 4);
    store_le32(index + index_bytes_ - 4, crc.checksum());
  }
  // Copies tile (ty, tx) of the frame at `frame` to `dst`, zero-padded at the frame's edges.
  void gather_tile(const std::byte* frame, uint32_t ty, uint32_t tx, std::byte* dst) const;

  std::string path_;
  DatasetInfo info_;
  bool sharded_ = false;
  uint32_t k_ = 1;             // frames per inner chunk (1 in a sequence or with tiles)
  uint32_t files_frames_ = 1;  // frames per file
  uint32_t tile_ = 0, tiles_y_ = 1, tiles_x_ = 1;
  size_t frame_bytes_ = 0, row_bytes_ = 0;
  size_t inner_bytes_ = 0;  // one inner chunk, uncompressed
  size_t bound_ = 0;        // one inner chunk, compressed, at most
  size_t inner_chunks_ = 1;
  size_t index_bytes_ = 0;
  size_t index_scratch_ = 0, tile_scratch_ = 0, workspace_ = 0, workspace_bytes_ = 0;
  size_t out_bytes_ = 0;
  std::vector<uint64_t> grid_, inner_;  // a file's shape; the inner chunks' (empty: unsharded)
};

void V3Layout::prepare(const std::string& path, const DatasetInfo& info) {
  path_ = path;
  info_ = info;
  const auto refuse = [&](const std::string& why) {
    throw std::runtime_error("cannot write " + path + ": " + why);
  };
  if (info.bytes_per_sample != 1 && info.bytes_per_sample != 2 && info.bytes_per_sample != 4)
    refuse(std::to_string(info.bytes_per_sample) + " bytes per sample is not supported");
  sharded_ = info.shard_frames > 0;
  k_ = chunk_frames(info);
  tile_ = info.tile;
  if (tile_ > 0) {
    if (!sharded_)
      refuse("tiles (--tile " + std::to_string(tile_) +
             ") are inner chunks of a shard; give --shard-frames N (N > 0)");
    if (k_ != 1)
      refuse("with tiles an inner chunk is one frame's tile; --chunk-frames must be 1, not " +
             std::to_string(k_));
    tiles_y_ = (info.height + tile_ - 1) / tile_;
    tiles_x_ = (info.width + tile_ - 1) / tile_;
  }
  if (sharded_ && !info.sequence && info.shard_frames % k_ != 0)
    refuse("a shard holds whole inner chunks: --shard-frames " + std::to_string(info.shard_frames) +
           " is not a multiple of --chunk-frames " + std::to_string(k_));
  files_frames_ = info.sequence ? 1 : sharded_ ? info.shard_frames : k_;
  frame_bytes_ = info.frame_bytes();
  row_bytes_ = size_t(info.width) * info.bytes_per_sample;

  // Shapes: (t, [c,] y, x) or a sequence's (t, c, z, y, x); a tiled shard covers whole tiles.
  const uint64_t gy = tile_ ? uint64_t(tiles_y_) * tile_ : info.height;
  const uint64_t gx = tile_ ? uint64_t(tiles_x_) * tile_ : info.width;
  const auto shape = [&](uint64_t t, uint64_t y, uint64_t x) {
    std::vector<uint64_t> s{t};
    if (info.sequence)
      s.insert(s.end(), {1, 1});
    else if (info.samples != 1)
      s.push_back(info.samples);
    s.insert(s.end(), {y, x});
    return s;
  };
  grid_ = shape(files_frames_, gy, gx);
  inner_.clear();
  inner_bytes_ = size_t(k_) * frame_bytes_;
  if (sharded_) {
    inner_ = tile_ ? shape(1, tile_, tile_) : shape(k_, info.height, info.width);
    if (tile_) inner_bytes_ = size_t(info.samples) * tile_ * tile_ * info.bytes_per_sample;
    inner_chunks_ = size_t(files_frames_ / k_) * tiles_y_ * tiles_x_;
    index_bytes_ = 16 * inner_chunks_ + 4;
  }

  bound_ = inner_bytes_;
  switch (info.compression) {
    case Compression::Lz4:
      if (blosc_compname_to_compcode("lz4") < 0)
        refuse(std::string("this libblosc has no lz4 (it has ") + blosc_list_compressors() + ")");
      if (inner_bytes_ > size_t(BLOSC_MAX_BUFFERSIZE))
        refuse("an inner chunk of " + std::to_string(inner_bytes_ >> 20) +
               " MiB is over Blosc's 2 GiB limit; use fewer frames per chunk");
      bound_ = inner_bytes_ + BLOSC_MAX_OVERHEAD;
      break;
    case Compression::Zstd:
      bound_ = ZSTD_compressBound(inner_bytes_);
      if (ZSTD_isError(bound_)) refuse("an inner chunk is too large for zstd; use fewer frames");
      workspace_bytes_ = ZSTD_estimateCCtxSize(info.clevel);
      break;
    case Compression::None:
      break;
  }
  const bool compressed = info.compression != Compression::None;
  size_t end = 0;
  if (!sharded_) {
    end = compressed ? bound_ : 0;
  } else if (compressed) {
    end = inner_chunks_ * bound_ + index_bytes_;
    index_scratch_ = align64(end);
    end = index_scratch_ + index_bytes_;
    if (tile_) {
      tile_scratch_ = align64(end);
      end = tile_scratch_ + inner_bytes_;
    }
  } else if (tile_) {
    end = inner_chunks_ * inner_bytes_ + index_bytes_;
  }
  if (workspace_bytes_) {
    workspace_ = align64(end);
    end = workspace_ + workspace_bytes_;
  }
  out_bytes_ = end;
}

void V3Layout::create() {
  std::error_code ec;
  std::filesystem::create_directories(path_ + "/0", ec);
  if (ec) throw std::runtime_error("cannot create " + path_ + ": " + ec.message());
}

void V3Layout::gather_tile(const std::byte* frame, uint32_t ty, uint32_t tx, std::byte* dst) const {
  const size_t bps = info_.bytes_per_sample;
  const size_t plane = size_t(info_.height) * row_bytes_;
  const size_t x0 = size_t(tx) * tile_;
  const size_t width = std::min<size_t>(tile_, info_.width - x0) * bps;
  const size_t tile_row = size_t(tile_) * bps;
  for (uint32_t c = 0; c < info_.samples; ++c)
    for (uint32_t r = 0; r < tile_; ++r, dst += tile_row) {
      const size_t y = size_t(ty) * tile_ + r;
      size_t copied = 0;
      if (y < info_.height) {
        std::memcpy(dst, frame + c * plane + y * row_bytes_ + x0 * bps, width);
        copied = width;
      }
      std::memset(dst + copied, 0, tile_row - copied);
    }
}

size_t V3Layout::compress(uint64_t index, const std::byte* src, std::byte* dst,
                          std::byte* out) const {
  if (info_.compression == Compression::Lz4) {
    const int n = blosc_compress_ctx(info_.clevel, BLOSC_SHUFFLE, info_.bytes_per_sample,
                                     inner_bytes_, src, dst, bound_, "lz4", 0, 1);
    if (n <= 0) fail(index, "Blosc compression failed (" + std::to_string(n) + ")");
    return size_t(n);
  }
  ZSTD_CCtx* cctx = ZSTD_initStaticCCtx(out + workspace_, workspace_bytes_);
  if (!cctx) fail(index, "zstd has no room for its context");
  const size_t n = ZSTD_compressCCtx(cctx, dst, bound_, src, inner_bytes_, info_.clevel);
  if (ZSTD_isError(n)) fail(index, std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  return n;
}

Layout::Trailer V3Layout::trailer(uint32_t frames, std::byte* out) const {
  if (!sharded_) return {inner_bytes_, 0};  // a partial chunk: padded with zeros
  // The present chunks are back to back from 0, the partial last one padded with zeros.
  const size_t present = present_chunks(frames);
  for (size_t i = 0; i < inner_chunks_; ++i) {
    const bool here = i < present;
    store_le64(out + 16 * i, here ? i * inner_bytes_ : kAbsent);
    store_le64(out + 16 * i + 8, here ? inner_bytes_ : kAbsent);
  }
  seal_index(out);
  return {present * inner_bytes_, index_bytes_};
}

std::span<const std::byte> V3Layout::encode(uint64_t index, std::byte* raw, uint32_t frames,
                                            std::byte* out) const {
  const bool compressed = info_.compression != Compression::None;
  if (!sharded_) {
    if (!compressed) return {raw, inner_bytes_};
    return {out, compress(index, raw, out, out)};
  }
  if (frames_as_is()) {  // the frames are in place: the index goes straight after them
    const Trailer t = trailer(frames, raw + present_chunks(frames) * inner_bytes_);
    return {raw, size_t(t.offset) + t.bytes};
  }
  // Inner chunks in C order: (group of K frames, tile row, tile column); those of the groups
  // past `frames` are absent.
  const size_t per_group = size_t(tiles_y_) * tiles_x_;
  const size_t present = present_chunks(frames);
  std::byte* const dst = compressed || tile_ ? out : raw;
  // Uncompressed tiles: their bytes are known, so the index goes straight after them.
  std::byte* index_at = compressed ? out + index_scratch_ : dst + present * inner_bytes_;
  size_t pos = 0;
  for (size_t i = 0; i < inner_chunks_; ++i) {
    std::byte* entry = index_at + 16 * i;
    if (i >= present) {
      store_le64(entry, kAbsent);
      store_le64(entry + 8, kAbsent);
      continue;
    }
    const std::byte* frame = raw + (i / per_group) * k_ * frame_bytes_;
    size_t n = inner_bytes_;
    if (!tile_) {
      n = compress(index, frame, dst + pos, out);
    } else if (!compressed) {
      gather_tile(frame, uint32_t(i % per_group / tiles_x_), uint32_t(i % tiles_x_), dst + pos);
    } else {
      gather_tile(frame, uint32_t(i % per_group / tiles_x_), uint32_t(i % tiles_x_),
                  out + tile_scratch_);
      n = compress(index, out + tile_scratch_, dst + pos, out);
    }
    store_le64(entry, pos);
    store_le64(entry + 8, n);
    pos += n;
  }
  if (index_at != dst + pos) std::memcpy(dst + pos, index_at, index_bytes_ - 4);
  seal_index(dst + pos);
  return {dst, pos + index_bytes_};
}

std::string V3Layout::write_metadata(const FrameTable& table, uint64_t frames, bool final) {
  TextPieces group;
  group_json_v3(info_, table, final, group);
  const std::string group_path = path_ + "/zarr.json";
  if (const int e = replace_file(group_path, path_ + "/.zarr.json.tmp", group.pieces(), false))
    return cannot_write(group_path, e);
  // The array's zarr.json after the group's: shape[0] never exceeds the frames described.
  const std::string text = array_json_v3(info_, frames, grid_, inner_);
  const std::string_view piece = text;
  const std::string array_path = path_ + "/0/zarr.json";
  if (const int e =
          replace_file(array_path, path_ + "/0/.zarr.json.tmp", std::span(&piece, 1), false))
    return cannot_write(array_path, e);
  return {};
}

}  // namespace

std::unique_ptr<Layout> make_v3_layout() {
  return std::make_unique<V3Layout>();
}

}  // namespace framebroker::fbsave::zarr

namespace framebroker::fbsave {

std::unique_ptr<Writer> make_zarr3_writer(const std::string& path) {
  return make_zarr_writer(path, zarr::make_v3_layout());
}

}  // namespace framebroker::fbsave
