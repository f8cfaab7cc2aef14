// fbsave's Zarr v3 layout (zarr_v3_layout.cpp): the shards encode() makes, decoded here by hand
// (index entries, absent chunks, the index's crc32c, in-place uncompressed shards, tiles with
// their zero padding, blosc and zstd inner chunks), its refusals, and its metadata texts.
#include <blosc.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "fbsave/file_io.hpp"
#include "fbsave/zarr_layout.hpp"
#include "fbsave/zarr_metadata.hpp"

namespace {

using framebroker::fbsave::aligned_bytes;
using framebroker::fbsave::AlignedBytes;
using framebroker::fbsave::Compression;
using framebroker::fbsave::DatasetInfo;
using framebroker::fbsave::zarr::Layout;
using framebroker::fbsave::zarr::make_v3_layout;
using nlohmann::json;

constexpr uint64_t kAbsent = ~uint64_t(0);

uint64_t le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | uint64_t(p[i]);
  return v;
}

// CRC-32C (Castagnoli, reflected), bit by bit: an independent check of the layout's Boost.CRC.
uint32_t crc32c(const std::byte* p, size_t n) {
  uint32_t crc = 0xFFFFFFFF;
  for (size_t i = 0; i < n; ++i) {
    crc ^= uint32_t(p[i]);
    for (int b = 0; b < 8; ++b) crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
  }
  return ~crc;
}

DatasetInfo info16(uint32_t w, uint32_t h) {
  DatasetInfo info;
  info.stream = "cam";
  info.width = w;
  info.height = h;
  info.stride = w * 2;
  info.pixel_type = "Mono16";
  info.bytes_per_sample = 2;
  info.chunk_frames = 1;
  return info;
}

struct Shard {
  std::vector<std::pair<uint64_t, uint64_t>> entries;  // (offset, nbytes)
  std::span<const std::byte> bytes;
};

// Splits a shard into its index, checking the index's crc32c.
Shard read_index(std::span<const std::byte> bytes, size_t chunks) {
  Shard s{{}, bytes};
  const size_t index = 16 * chunks + 4;
  EXPECT_GE(bytes.size(), index);
  const std::byte* at = bytes.data() + bytes.size() - index;
  for (size_t i = 0; i < chunks; ++i)
    s.entries.push_back({le64(at + 16 * i), le64(at + 16 * i + 8)});
  uint32_t stored = 0;
  std::memcpy(&stored, at + 16 * chunks, 4);
  EXPECT_EQ(stored, crc32c(at, 16 * chunks)) << "index crc32c";
  return s;
}

struct Buffers {
  AlignedBytes raw, out;
  Buffers(const Layout& l) : raw(aligned_bytes(l.raw_bytes())) {
    if (l.out_bytes()) out = aligned_bytes(l.out_bytes());
  }
};

// Frame f's pixel k: f * 1000 + k (u16).
void fill(std::byte* raw, const DatasetInfo& info, uint32_t frames) {
  auto* p = reinterpret_cast<uint16_t*>(raw);
  const size_t n = size_t(info.width) * info.height;
  for (uint32_t f = 0; f < frames; ++f)
    for (size_t k = 0; k < n; ++k) p[f * n + k] = uint16_t(f * 1000 + k);
}

std::vector<uint16_t> decode(const std::byte* p, size_t n, Compression c, size_t raw_bytes) {
  std::vector<uint16_t> v(raw_bytes / 2);
  if (c == Compression::None) {
    EXPECT_EQ(n, raw_bytes);
    std::memcpy(v.data(), p, raw_bytes);
  } else if (c == Compression::Lz4) {
    EXPECT_EQ(blosc_decompress_ctx(p, v.data(), raw_bytes, 1), int(raw_bytes));
  } else {
    EXPECT_EQ(ZSTD_decompress(v.data(), raw_bytes, p, n), raw_bytes);
  }
  return v;
}

TEST(Zarr3Shard, UncompressedShardIsEncodedInPlaceWithAbsentChunksInItsIndex) {
  DatasetInfo info = info16(8, 4);
  info.shard_frames = 4;
  auto layout = make_v3_layout();
  layout->prepare("/tmp/x.zarr", info);
  EXPECT_EQ(layout->frames_per_file(), 4u);
  EXPECT_EQ(layout->out_bytes(), 0u);  // no second buffer: the frames stay where they are
  EXPECT_EQ(layout->raw_bytes(), 4 * 64 + 4 * 16 + 4u);
  Buffers b(*layout);
  fill(b.raw.get(), info, 3);
  const auto bytes = layout->encode(0, b.raw.get(), 3, b.out.get());
  EXPECT_EQ(bytes.data(), b.raw.get());
  ASSERT_EQ(bytes.size(), 3 * 64 + 4 * 16 + 4u);
  const Shard s = read_index(bytes, 4);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(s.entries[i].first, i * 64);
    EXPECT_EQ(s.entries[i].second, 64u);
  }
  EXPECT_EQ(s.entries[3].first, kAbsent);
  EXPECT_EQ(s.entries[3].second, kAbsent);
  EXPECT_EQ(reinterpret_cast<const uint16_t*>(bytes.data())[2 * 32 + 5], 2005);
  EXPECT_EQ(layout->file_path(7), "0/c/7/0/0");
}

TEST(Zarr3Shard, PartialInnerChunksArePresentAndLaterOnesAbsent) {
  DatasetInfo info = info16(4, 2);
  info.chunk_frames = 2;
  info.shard_frames = 6;
  auto layout = make_v3_layout();
  layout->prepare("/tmp/x.zarr", info);
  Buffers b(*layout);
  fill(b.raw.get(), info, 3);  // frame 3 stays zero: the writer zero-fills the rest
  const Shard s = read_index(layout->encode(0, b.raw.get(), 3, b.out.get()), 3);
  EXPECT_EQ(s.entries[0], std::make_pair(uint64_t(0), uint64_t(32)));
  EXPECT_EQ(s.entries[1], std::make_pair(uint64_t(32), uint64_t(32)));
  EXPECT_EQ(s.entries[2], std::make_pair(kAbsent, kAbsent));
}

class Zarr3Codecs : public ::testing::TestWithParam<Compression> {};

TEST_P(Zarr3Codecs, TiledShardHoldsEveryTileZeroPaddedAtTheEdges) {
  DatasetInfo info = info16(7, 5);  // tiles of 4: 2 x 2, the right and bottom ones padded
  info.tile = 4;
  info.shard_frames = 2;
  info.compression = GetParam();
  auto layout = make_v3_layout();
  layout->prepare("/tmp/x.zarr", info);
  Buffers b(*layout);
  fill(b.raw.get(), info, 1);
  const auto bytes = layout->encode(0, b.raw.get(), 1, b.out.get());
  EXPECT_EQ(bytes.data(), b.out.get());
  const Shard s = read_index(bytes, 8);
  for (size_t i = 0; i < 8; ++i) {
    if (i >= 4) {
      EXPECT_EQ(s.entries[i], std::make_pair(kAbsent, kAbsent)) << i;
      continue;
    }
    ASSERT_LE(s.entries[i].first + s.entries[i].second, bytes.size() - 8 * 16 - 4) << i;
    const auto tile =
        decode(bytes.data() + s.entries[i].first, s.entries[i].second, GetParam(), 4 * 4 * 2);
    const size_t ty = i / 2, tx = i % 2;
    for (size_t r = 0; r < 4; ++r)
      for (size_t c = 0; c < 4; ++c) {
        const size_t y = ty * 4 + r, x = tx * 4 + c;
        const uint16_t want = y < 5 && x < 7 ? uint16_t(y * 7 + x) : 0;
        ASSERT_EQ(tile[r * 4 + c], want) << "tile " << i << " y " << y << " x " << x;
      }
  }
}

TEST_P(Zarr3Codecs, UnshardedChunkDecodesToItsFrames) {
  DatasetInfo info = info16(16, 8);
  info.chunk_frames = 2;
  info.compression = GetParam();
  auto layout = make_v3_layout();
  layout->prepare("/tmp/x.zarr", info);
  EXPECT_EQ(layout->frames_per_file(), 2u);
  Buffers b(*layout);
  fill(b.raw.get(), info, 2);
  const auto bytes = layout->encode(0, b.raw.get(), 2, b.out.get());
  const auto v = decode(bytes.data(), bytes.size(), GetParam(), 2 * 16 * 8 * 2);
  EXPECT_EQ(v[0], 0);
  EXPECT_EQ(v[128 + 3], 1003);
}

INSTANTIATE_TEST_SUITE_P(All, Zarr3Codecs,
                         ::testing::Values(Compression::None, Compression::Lz4, Compression::Zstd),
                         [](const auto& p) {
                           return p.param == Compression::None  ? std::string("none")
                                  : p.param == Compression::Lz4 ? std::string("lz4")
                                                                : std::string("zstd");
                         });

TEST(Zarr3Shard, RefusesTilesWithoutShardsAndShardsOfPartChunks) {
  DatasetInfo info = info16(8, 8);
  info.tile = 4;
  auto layout = make_v3_layout();
  try {
    layout->prepare("/tmp/x.zarr", info);
    FAIL() << "tiles without shards accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--shard-frames"), std::string::npos) << e.what();
  }
  info.tile = 0;
  info.chunk_frames = 4;
  info.shard_frames = 6;
  try {
    layout->prepare("/tmp/x.zarr", info);
    FAIL() << "a shard of 1.5 chunks accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple"), std::string::npos) << e.what();
  }
}

TEST(Zarr3Shard, MetadataDescribesShardingAndNgff05) {
  DatasetInfo info = info16(7, 5);
  info.tile = 4;
  info.shard_frames = 2;
  info.compression = Compression::Lz4;
  const json a =
      json::parse(framebroker::fbsave::zarr::array_json_v3(info, 3, {2, 8, 8}, {1, 4, 4}));
  EXPECT_EQ(a["zarr_format"], 3);
  EXPECT_EQ(a["shape"], json({3, 5, 7}));
  EXPECT_EQ(a["data_type"], "uint16");
  EXPECT_EQ(a["dimension_names"], json({"t", "y", "x"}));
  EXPECT_EQ(a["chunk_grid"]["configuration"]["chunk_shape"], json({2, 8, 8}));
  const json& sh = a["codecs"][0];
  EXPECT_EQ(sh["name"], "sharding_indexed");
  EXPECT_EQ(sh["configuration"]["chunk_shape"], json({1, 4, 4}));
  EXPECT_EQ(sh["configuration"]["index_location"], "end");
  EXPECT_EQ(sh["configuration"]["index_codecs"][1]["name"], "crc32c");
  EXPECT_EQ(sh["configuration"]["codecs"][1]["configuration"]["cname"], "lz4");
  EXPECT_EQ(sh["configuration"]["codecs"][1]["configuration"]["typesize"], 2);

  framebroker::fbsave::zarr::FrameTable table;
  framebroker::fbsave::zarr::TextPieces pieces;
  framebroker::fbsave::zarr::group_json_v3(info, table, true, pieces);
  std::string text;
  for (const auto p : pieces.pieces()) text += p;
  const json g = json::parse(text);
  EXPECT_EQ(g["node_type"], "group");
  EXPECT_EQ(g["attributes"]["ome"]["version"], "0.5");
  EXPECT_FALSE(g["attributes"]["ome"]["multiscales"][0].contains("version"));
  EXPECT_EQ(g["attributes"]["framebroker"]["complete"], true);
}

}  // namespace
