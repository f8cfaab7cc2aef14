// fbsave's OME-Zarr writer, read back with zarr-python (/usr/bin/python3: zarr 2, numcodecs,
// numpy): layout, metadata, every pixel, missed seqs, a kill -9 after a checkpoint, errors.
// Uncompressed packed frames take the writer's direct path (written from the slots, no copy):
// v2 and v3 (sharded or not; read back by this file's own v3 decoder), batches, misaligned
// slots, partial last files, sequences, a full disk.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fbsave/file_io.hpp"
#include "fbsave/writer.hpp"
#include "fbsave/zarr_metadata.hpp"

namespace fs = std::filesystem;
using framebroker::fbsave::aligned_bytes;
using framebroker::fbsave::AlignedBytes;
using framebroker::fbsave::Compression;
using framebroker::fbsave::DatasetInfo;
using framebroker::fbsave::FrameRecord;
using framebroker::fbsave::make_zarr3_writer;
using framebroker::fbsave::make_zarr_writer;
using framebroker::fbsave::SequenceInfo;
using framebroker::fbsave::Writer;
using nlohmann::json;

namespace {

// Checks a dataset against expect.json; prints "FAIL: ..." and exits 1 on the first mismatch.
constexpr const char* kCheckScript = R"PY(
import json, os, re, sys
import numpy as np
import zarr

path, expect_path = sys.argv[1], sys.argv[2]
e = json.load(open(expect_path))

def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)

check(json.load(open(os.path.join(path, ".zgroup"))) == {"zarr_format": 2}, ".zgroup")
g = zarr.open_group(path, mode="r")
attrs = g.attrs.asdict()
ms = attrs["multiscales"]
check(len(ms) == 1 and ms[0]["version"] == "0.4", "multiscales version")
axes = ms[0]["axes"]
check([a["name"] for a in axes] == e["axes"], "axes names %s" % axes)
types = {"t": "time", "c": "channel", "y": "space", "x": "space"}
check(all(a["type"] == types[a["name"]] for a in axes), "axes types %s" % axes)
ds = ms[0]["datasets"]
check(len(ds) == 1 and ds[0]["path"] == "0", "datasets %s" % ds)
ct = ds[0]["coordinateTransformations"]
check(ct[0]["type"] == "scale" and len(ct[0]["scale"]) == len(axes), "scale %s" % ct)

a = g["0"]
T = a.shape[0]
if e.get("prefix"):  # after a failure: some prefix of the frames, in whole chunks
    check(T <= len(e["seqs"]) and T % a.chunks[0] == 0, "T %d" % T)
    e["seqs"] = e["seqs"][:T]
    e["camera_frame_ids"] = e["camera_frame_ids"][:T]
    e["hw"] = e["hw"][:T]
else:
    check(T == len(e["seqs"]), "T %d, want %d" % (T, len(e["seqs"])))
check(list(a.shape[1:]) == e["frame_shape"], "shape %s" % (a.shape,))
check(a.dtype == np.dtype(e["dtype"]), "dtype %s" % a.dtype)
check(list(a.chunks) == [e["k"]] + e["frame_shape"], "chunks %s" % (a.chunks,))
check(a.order == "C" and a.fill_value == 0, "order/fill_value")
if e["compressor"] is None:
    check(a.compressor is None, "compressor %s" % a.compressor)
else:
    c = a.compressor
    check(c.codec_id == "blosc" and c.cname == e["compressor"] and c.shuffle == 1,
          "compressor %s" % c)
files = sorted(f for f in os.listdir(os.path.join(path, "0")) if re.match(r"^\d+\.", f))
nchunks = (T + e["k"] - 1) // e["k"]
if "chunk_files" in e:
    check(len(files) == e["chunk_files"], "chunk files %s" % files)
else:
    check(len(files) >= nchunks, "chunk files %s for %d frames" % (files, T))

fb = attrs["framebroker"]
fr = fb["frames"]
for key in ("seq", "camera_frame_id", "mono_ns", "realtime_ns", "hw_timestamp_ns"):
    check(len(fr[key]) == T, "frames.%s has %d entries, T is %d" % (key, len(fr[key]), T))
check(fr["seq"] == e["seqs"], "seqs")
check(fr["camera_frame_id"] == e["camera_frame_ids"], "camera frame ids")
check(fr["mono_ns"] == [s * 1000000 + 17 for s in e["seqs"]], "mono_ns")
check(fr["realtime_ns"] == [1700000000000000000 + s * 1000 for s in e["seqs"]], "realtime_ns")
check(fr["hw_timestamp_ns"] == e["hw"], "hw_timestamp_ns")
check(fb["frames_written"] == T, "frames_written %s" % fb["frames_written"])
if not e.get("prefix"):
    check(fb["missed_seqs"] == e["missed_seqs"], "missed_seqs %s" % fb["missed_seqs"][:20])
    check(fb["frames_missed"] == len(e["missed_seqs"]), "frames_missed")
    check(fb["frames_expected"] == e["frames_expected"], "frames_expected %s" % fb["frames_expected"])
    check(fb["complete"] == e["complete"], "complete")
else:
    check(fb["frames_missed"] == len(fb["missed_seqs"]), "frames_missed vs missed_seqs")
    check(not fb["complete"], "complete after a failure")
check(fb["camera"] == e["camera"] and fb["stream"] == e["stream"], "camera/stream")
check(fb["camera_properties"] == e["camera_properties"], "camera_properties")
check(fb["pixel_type"] == e["pixel_type"], "pixel_type")

# Every pixel: sample k (slot order: row-major, samples interleaved) of the frame with camera
# frame id f is (f + k) mod 2^bits, or float(f + k).
data = a[:]
cf = np.array(e["camera_frame_ids"], dtype=np.uint64)
fshape = e["frame_shape"]
n = int(np.prod(fshape))
ks = np.arange(n, dtype=np.uint64)
if a.dtype.kind == "f":
    want = (cf[:, None] + ks[None, :]).astype(np.float64).astype(a.dtype)
else:
    want = ((cf[:, None] + ks[None, :]) % (1 << (8 * a.dtype.itemsize))).astype(a.dtype)
if len(fshape) == 3:  # RGB: interleaved (y, x, c) in the slot, planar (c, y, x) in the array
    want = want.reshape(T, fshape[1], fshape[2], fshape[0]).transpose(0, 3, 1, 2)
want = want.reshape([T] + fshape)
if not np.array_equal(data, want):
    bad = [t for t in range(T) if not np.array_equal(data[t], want[t])]
    check(False, "pixels differ in %d frames, first t=%d" % (len(bad), bad[0]))
print("OK", T)
)PY";

// Reads a v2 (zarr-python) or v3 (by hand: chunk keys, shards, their index and its crc32c)
// dataset and checks every frame against the counter pattern of its camera frame id, in the order
// of the "framebroker" columns (a sequence's: at the frame's [t, c, z]; planes without a frame
// read as zeros); no temporary file is left. Prints "FAIL: ..." and exits 1 on the first mismatch.
constexpr const char* kDecodeScript = R"PY(
import json, math, os, struct, sys
import numpy as np

path, version, expect = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))

def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)

def crc32c(b):
    crc = 0xFFFFFFFF
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

for root, dirs, files in os.walk(path):
    check(not [f for f in files if f.endswith(".tmp")], "temporary files left in %s" % root)

if version == 2:
    import zarr
    g = zarr.open_group(path, mode="r")
    fb = g.attrs.asdict()["framebroker"]
    data = g["0"][:]
else:
    fb = json.load(open(os.path.join(path, "zarr.json")))["attributes"]["framebroker"]
    m = json.load(open(os.path.join(path, "0", "zarr.json")))
    shape = m["shape"]
    grid = m["chunk_grid"]["configuration"]["chunk_shape"]
    dt = np.dtype({"uint8": "<u1", "uint16": "<u2", "uint32": "<u4", "float32": "<f4"}[m["data_type"]])
    codecs = m["codecs"]
    inner = None
    if codecs[0]["name"] == "sharding_indexed":
        inner = codecs[0]["configuration"]["chunk_shape"]
        codecs = codecs[0]["configuration"]["codecs"]
    check([c["name"] for c in codecs] == ["bytes"], "codecs %s" % codecs)
    check(m["chunk_key_encoding"]["configuration"]["separator"] == "/", "separator")
    data = np.zeros(shape, dt)
    for coords in np.ndindex(*[math.ceil(s / g) for s, g in zip(shape, grid)]):
        f = os.path.join(path, "0", "c", *map(str, coords))
        if not os.path.exists(f):
            continue
        b = open(f, "rb").read()
        if inner is None:
            check(len(b) == math.prod(grid) * dt.itemsize, "%s: %d bytes" % (f, len(b)))
            block = np.frombuffer(b, dt).reshape(grid)
        else:
            ngrid = [g // i for g, i in zip(grid, inner)]
            n = math.prod(ngrid)
            idx = b[len(b) - 16 * n - 4:]
            check(crc32c(idx[:-4]) == struct.unpack("<I", idx[-4:])[0], "%s: index crc32c" % f)
            block = np.zeros(grid, dt)
            end = 0
            for j, ic in enumerate(np.ndindex(*ngrid)):
                off, nb = struct.unpack_from("<QQ", idx, 16 * j)
                if off == 2**64 - 1:
                    check(nb == 2**64 - 1, "%s: absent chunk %d nbytes" % (f, j))
                    continue
                check(nb == math.prod(inner) * dt.itemsize and off == end, "%s: chunk %d" % (f, j))
                end = off + nb
                block[tuple(slice(c * i, (c + 1) * i) for c, i in zip(ic, inner))] = \
                    np.frombuffer(b[off:end], dt).reshape(inner)
            check(len(b) == end + 16 * n + 4, "%s: %d bytes, data ends at %d" % (f, len(b), end))
        sl = tuple(slice(c * g, min((c + 1) * g, s)) for c, g, s in zip(coords, grid, shape))
        data[sl] = block[tuple(slice(0, x.stop - x.start) for x in sl)]

ids = fb["frames"]["camera_frame_id"]
check(ids == expect["camera_frame_ids"], "camera frame ids %s" % ids[:20])
check(fb["frames_written"] == len(ids), "frames_written")
h, w = data.shape[-2:]
k = np.arange(h * w, dtype=np.uint64)
def pattern(f):
    return ((f + k) % (1 << (8 * data.dtype.itemsize))).astype(data.dtype).reshape(h, w)
if "sequence" in fb:
    index = fb["frames"]["index"]
    seen = set()
    for i, f in enumerate(ids):
        t, c, z = index[i]
        seen.add((t, c, z))
        check(np.array_equal(data[t, c, z], pattern(f)), "plane %s of frame %d" % (index[i], i))
    for t, c, z in np.ndindex(*data.shape[:3]):
        if (t, c, z) not in seen:
            check(not data[t, c, z].any(), "plane %s without a frame is not zero" % ((t, c, z),))
else:
    check(data.shape[0] == len(ids), "shape %s, %d frames" % (data.shape, len(ids)))
    for t, f in enumerate(ids):
        check(np.array_equal(data[t], pattern(f)), "frame %d" % t)
print("OK", len(ids))
)PY";

struct Case {
  uint32_t width = 64, height = 48;
  std::string pixel_type = "Mono16";
  uint32_t bytes_per_sample = 2, samples = 1;
  bool floating = false;
  uint32_t stride_pad = 0;  // extra bytes per slot row
  Compression compression = Compression::None;
  uint32_t k = 16;
  std::optional<uint64_t> frames_expected;
};

DatasetInfo info_for(const Case& c) {
  DatasetInfo info;
  info.stream = "cam0";
  info.camera = "sim-cam";
  info.width = c.width;
  info.height = c.height;
  info.stride = c.width * c.samples * c.bytes_per_sample + c.stride_pad;
  info.pixel_type = c.pixel_type;
  info.bytes_per_sample = c.bytes_per_sample;
  info.samples = c.samples;
  info.floating = c.floating;
  info.camera_properties = {{"ExposureTime", "10000"}, {"Gain", "1.5"}, {"Model", "Sim \"X\""}};
  info.frames_expected = c.frames_expected;
  info.compression = c.compression;
  info.clevel = 5;
  info.chunk_frames = c.k;
  return info;
}

uint64_t camera_frame_id(uint64_t seq) {
  return 5000 + 3 * seq;
}

// Feeds seqs [0, nseq) except `skip` to the writer the way the saver does, and records what the
// dataset should then hold.
class Feeder {
 public:
  // Frames go to the writer in batches of `batch` consecutive seqs (write_batch(), as the saver
  // does), each from its own slot starting `misalign` bytes after a 4096-byte boundary (slots in
  // shared memory are page-aligned).
  Feeder(Writer& w, const Case& c, size_t batch = 1, size_t misalign = 0)
      : w_(w), c_(c), info_(info_for(c)), batch_(batch), misalign_(misalign) {
    slot_bytes_ = size_t(info_.stride) * c.height;
    slot_span_ = (slot_bytes_ + misalign + 4095) / 4096 * 4096;
    pool_ = aligned_bytes(slot_span_ * batch);
  }

  void feed(uint64_t nseq, const std::set<uint64_t>& skip) {
    for (uint64_t seq = 0; seq < nseq; ++seq) {
      if (skip.count(seq)) continue;
      frame(seq);
    }
    gap_to(nseq);
  }

  void frame(uint64_t seq) {
    if (seq != next_) gap_to(seq);
    const uint64_t f = camera_frame_id(seq);
    std::byte* slot = pool_.get() + pending_.size() * slot_span_ + misalign_;
    fill(slot, f);
    FrameRecord r;
    r.seq = seq;
    r.camera_frame_id = f;
    r.mono_ns = seq * 1000000 + 17;
    r.realtime_ns = 1700000000000000000ull + seq * 1000;
    if (seq % 2 == 0) r.hw_timestamp_ns = seq * 250;
    r.pixels = std::span<const std::byte>(slot, slot_bytes_);
    pending_.push_back(r);
    pending_seqs_.push_back(seq);
    next_ = seq + 1;
    if (pending_.size() == batch_) flush();
  }

  // Hands the frames not yet written to the writer.
  void flush() {
    if (pending_.empty()) return;
    std::vector<FrameRecord> batch;
    batch.swap(pending_);
    std::vector<uint64_t> seqs;
    seqs.swap(pending_seqs_);
    if (batch.size() == 1)
      w_.write(batch[0]);
    else
      w_.write_batch(batch);
    seqs_.insert(seqs_.end(), seqs.begin(), seqs.end());
  }

  void gap_to(uint64_t seq) {
    flush();
    if (seq > next_) {
      w_.missed(next_, seq - next_);
      for (uint64_t s = next_; s < seq; ++s) missed_.push_back(s);
    }
    next_ = std::max(next_, seq);
  }

  // The expectations for the first `frames` frames and the missed seqs below `horizon`.
  json expect(size_t frames, uint64_t horizon, bool complete) const {
    json e;
    e["axes"] = c_.samples == 1 ? json{"t", "y", "x"} : json{"t", "c", "y", "x"};
    e["frame_shape"] =
        c_.samples == 1 ? json{c_.height, c_.width} : json{c_.samples, c_.height, c_.width};
    e["dtype"] = std::string(c_.floating ? "<f" : "<u") + std::to_string(c_.bytes_per_sample);
    e["k"] = c_.k;
    e["compressor"] = c_.compression == Compression::None  ? json(nullptr)
                      : c_.compression == Compression::Lz4 ? json("lz4")
                                                           : json("zstd");
    json seqs = json::array(), ids = json::array(), hw = json::array(), missed = json::array();
    for (size_t t = 0; t < frames && t < seqs_.size(); ++t) {
      seqs.push_back(seqs_[t]);
      ids.push_back(camera_frame_id(seqs_[t]));
      hw.push_back(seqs_[t] % 2 == 0 ? json(seqs_[t] * 250) : json(nullptr));
    }
    for (uint64_t s : missed_)
      if (s < horizon) missed.push_back(s);
    e["seqs"] = seqs;
    e["camera_frame_ids"] = ids;
    e["hw"] = hw;
    e["missed_seqs"] = missed;
    e["frames_expected"] = c_.frames_expected.value_or(seqs.size() + missed.size());
    e["complete"] = complete;
    e["camera"] = info_.camera;
    e["stream"] = info_.stream;
    e["camera_properties"] = info_.camera_properties;
    e["pixel_type"] = info_.pixel_type;
    return e;
  }
  json expect_all() const { return expect(seqs_.size(), UINT64_MAX, true); }

  const DatasetInfo& info() const { return info_; }
  void fill_slot(std::byte* slot, uint64_t f) { fill(slot, f); }
  json camera_frame_ids() const {
    json ids = json::array();
    for (uint64_t s : seqs_) ids.push_back(camera_frame_id(s));
    return ids;
  }
  size_t written() const { return seqs_.size(); }
  size_t missed() const { return missed_.size(); }

 private:
  void fill(std::byte* slot, uint64_t f) {
    const size_t row = size_t(c_.width) * c_.samples * c_.bytes_per_sample;
    const size_t per_row = size_t(c_.width) * c_.samples;
    for (size_t y = 0; y < c_.height; ++y) {
      std::byte* p = slot + y * info_.stride;
      for (size_t i = 0; i < per_row; ++i) {
        const uint64_t v = f + y * per_row + i;
        if (c_.floating) {
          const float x = float(v);
          std::memcpy(p + i * 4, &x, 4);
        } else if (c_.bytes_per_sample == 1) {
          p[i] = std::byte(uint8_t(v));
        } else if (c_.bytes_per_sample == 2) {
          const uint16_t x = uint16_t(v);
          std::memcpy(p + i * 2, &x, 2);
        } else {
          const uint32_t x = uint32_t(v);
          std::memcpy(p + i * 4, &x, 4);
        }
      }
      std::memset(p + row, 0xEE, info_.stride - row);  // must never reach the file
    }
  }

  Writer& w_;
  Case c_;
  DatasetInfo info_;
  size_t batch_ = 1, misalign_ = 0, slot_bytes_ = 0, slot_span_ = 0;
  AlignedBytes pool_;
  std::vector<FrameRecord> pending_;
  std::vector<uint64_t> pending_seqs_, seqs_, missed_;
  uint64_t next_ = 0;
};

class ZarrWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fb_zarr_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/check.py") << kCheckScript;
    std::ofstream(dir_ + "/decode.py") << kDecodeScript;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs the check script on `path`; returns its exit status and appends its output to `out`.
  int check(const std::string& path, const json& expect, std::string& out) {
    const std::string e = dir_ + "/expect.json";
    std::ofstream(e) << expect.dump();
    return run("/usr/bin/python3 " + dir_ + "/check.py " + path + " " + e + " 2>&1", out);
  }

  // Decodes a v2 or v3 dataset (kDecodeScript): its frames are those of `camera_frame_ids`.
  void expect_decoded(const std::string& path, int version, const json& camera_frame_ids) {
    const std::string e = dir_ + "/ids.json";
    std::ofstream(e) << json{{"camera_frame_ids", camera_frame_ids}}.dump();
    std::string out;
    EXPECT_EQ(run("/usr/bin/python3 " + dir_ + "/decode.py " + path + " " +
                      std::to_string(version) + " " + e + " 2>&1",
                  out),
              0)
        << out;
  }

  int run(const std::string& cmd, std::string& out) {
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return -1;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = ::pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  void expect_valid(const std::string& path, const json& expect) {
    std::string out;
    EXPECT_EQ(check(path, expect, out), 0) << out;
  }

  // Writes 1000 seqs, some missed, and reads every frame back.
  void round_trip(const Case& c, const std::set<uint64_t>& skip, uint64_t nseq = 1000,
                  size_t batch = 1, size_t misalign = 0) {
    const std::string path = dir_ + "/out.ome.zarr";
    auto w = make_zarr_writer(path);
    Feeder feeder(*w, c, batch, misalign);
    w->begin(feeder.info());
    feeder.feed(nseq, skip);
    w->checkpoint();
    w->finish();
    w->finish();  // idempotent
    const auto t = w->totals();
    EXPECT_EQ(t.written, feeder.written());
    EXPECT_EQ(t.missed, feeder.missed());
    EXPECT_EQ(t.bytes, feeder.written() * feeder.info().frame_bytes());
    expect_valid(path, feeder.expect_all());
  }

  std::string dir_;
};

const std::set<uint64_t> kSkip = {0,   1,   5,   6,   7,   100, 500, 501, 502, 503,
                                  504, 505, 506, 507, 508, 509, 777, 998, 999};

TEST_F(ZarrWriterTest, Mono16Uncompressed) {
  round_trip(Case{}, kSkip);
}

TEST_F(ZarrWriterTest, Mono16Lz4) {
  Case c;
  c.compression = Compression::Lz4;
  round_trip(c, kSkip);
}

TEST_F(ZarrWriterTest, Mono16Zstd) {
  Case c;
  c.compression = Compression::Zstd;
  c.frames_expected = 1000;
  round_trip(c, kSkip);
}

TEST_F(ZarrWriterTest, Mono8Lz4) {
  Case c;
  c.pixel_type = "Mono8";
  c.bytes_per_sample = 1;
  c.compression = Compression::Lz4;
  c.k = 7;
  round_trip(c, kSkip);
}

TEST_F(ZarrWriterTest, StrideWiderThanRow) {
  Case c;
  c.width = 61;  // odd rows of 122 bytes in 128-byte slot rows
  c.stride_pad = 6;
  c.compression = Compression::Zstd;
  round_trip(c, {3, 4}, 100);
}

TEST_F(ZarrWriterTest, Mono32F) {
  Case c;
  c.pixel_type = "Mono32F";
  c.bytes_per_sample = 4;
  c.floating = true;
  c.compression = Compression::Lz4;
  c.k = 8;
  round_trip(c, {2}, 30);
}

TEST_F(ZarrWriterTest, Rgb8IsPlanar) {
  Case c;
  c.width = 16;
  c.height = 12;
  c.pixel_type = "RGB8";
  c.bytes_per_sample = 1;
  c.samples = 3;
  c.stride_pad = 4;
  c.k = 4;
  round_trip(c, {}, 10);
}

TEST_F(ZarrWriterTest, ChunkFrameIsAFullChunkFile) {
  // A chunk of exactly K frames and nothing else: one chunk file, no padding chunk.
  Case c;
  const std::string path = dir_ + "/out.ome.zarr";
  auto w = make_zarr_writer(path);
  Feeder feeder(*w, c);
  w->begin(feeder.info());
  feeder.feed(16, {});
  w->finish();
  auto e = feeder.expect_all();
  e["chunk_files"] = 1;
  expect_valid(path, e);
  EXPECT_EQ(fs::file_size(path + "/0/0.0.0"), 16u * 64 * 48 * 2);
  EXPECT_FALSE(fs::exists(path + "/0/1.0.0"));
}

TEST_F(ZarrWriterTest, EmptyDatasetOpens) {
  const std::string path = dir_ + "/out.ome.zarr";
  auto w = make_zarr_writer(path);
  Feeder feeder(*w, Case{});
  w->begin(feeder.info());
  feeder.gap_to(5);  // five seqs missed, no frame at all
  w->finish();
  EXPECT_EQ(w->totals().written, 0u);
  EXPECT_EQ(w->totals().missed, 5u);
  expect_valid(path, feeder.expect_all());
}

// kill -9 after a checkpoint: the dataset opens and holds the completed chunks, with metadata
// for exactly those frames and the missed seqs before them.
TEST_F(ZarrWriterTest, KilledAfterCheckpointLeavesCompletedChunks) {
  const std::string path = dir_ + "/out.ome.zarr";
  Case c;
  c.compression = Compression::Lz4;
  const std::set<uint64_t> skip = {10, 11, 36};  // 43 seqs, 40 frames; t=32 is seq 34
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      auto w = make_zarr_writer(path);
      Feeder feeder(*w, c);
      w->begin(feeder.info());
      feeder.feed(43, skip);
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (w->totals().written < 32 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      w->checkpoint();
      if (w->totals().written != 32) ::_exit(3);
      ::kill(::getpid(), SIGKILL);
    } catch (...) {
    }
    ::_exit(2);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "child status " << st;

  // The same frames, fed here only to compute the expectations.
  struct Null : Writer {
    void begin(const DatasetInfo&) override {}
    void write(const FrameRecord&) override {}
    void missed(uint64_t, uint64_t) override {}
    void checkpoint() override {}
    void finish() override {}
    framebroker::fbsave::Totals totals() const override { return {}; }
  } null;
  Feeder feeder(null, c);
  feeder.feed(43, skip);
  auto e = feeder.expect(32, 34, false);
  e["chunk_files"] = 2;
  expect_valid(path, e);
  EXPECT_FALSE(fs::exists(path + "/0/2.0.0"));
}

TEST_F(ZarrWriterTest, CheckpointListsOnlyFramesOnDisk) {
  const std::string path = dir_ + "/out.ome.zarr";
  auto w = make_zarr_writer(path);
  Feeder feeder(*w, Case{});
  w->begin(feeder.info());
  feeder.feed(43, {10, 11, 36});
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (w->totals().written < 32 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  w->checkpoint();
  const std::string copy = dir_ + "/copy.ome.zarr";
  ASSERT_EQ(std::system(("cp -r " + path + " " + copy).c_str()), 0);
  auto e = feeder.expect(32, 34, false);
  e["chunk_files"] = 2;
  expect_valid(copy, e);
  w->finish();
  expect_valid(path, feeder.expect_all());
}

TEST_F(ZarrWriterTest, UncreatablePathIsAClearError) {
  std::ofstream(dir_ + "/afile") << "x";
  const std::string path = dir_ + "/afile/out.ome.zarr";
  auto w = make_zarr_writer(path);
  try {
    w->begin(info_for(Case{}));
    FAIL() << "begin() did not throw";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("Not a directory"), std::string::npos) << m;
  }
  w->finish();  // nothing to do, no throw
}

TEST_F(ZarrWriterTest, DiskFullIsReportedOnceAndLeavesAReadableDataset) {
  const std::string mnt = dir_ + "/small";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a 1 MiB tmpfs at " << mnt << ": " << std::strerror(errno);
  struct Unmount {
    std::string m;
    ~Unmount() { ::umount2(m.c_str(), MNT_DETACH); }
  } unmount{mnt};

  const std::string path = mnt + "/out.ome.zarr";
  Case c;  // 96 KiB chunks, uncompressed: about ten fit
  std::string error;
  {
    auto w = make_zarr_writer(path);
    Feeder feeder(*w, c);
    w->begin(feeder.info());
    try {
      for (uint64_t seq = 0; seq < 5000; ++seq) {
        feeder.frame(seq);
        if (seq % 50 == 0) w->checkpoint();
      }
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    EXPECT_NE(error.find("No space left on device"), std::string::npos) << error;
    EXPECT_NE(error.find("cannot write " + path), std::string::npos) << error;
    EXPECT_NO_THROW(w->finish());  // already reported: not thrown again
    EXPECT_NO_THROW(w->finish());
    const auto t = w->totals();
    EXPECT_GT(t.written, 0u);
    EXPECT_EQ(t.written % c.k, 0u);
    EXPECT_LT(t.written, feeder.written());
    auto e = feeder.expect_all();
    e["prefix"] = true;
    expect_valid(path, e);
  }
}

TEST_F(ZarrWriterTest, DiskFullOnTheLastChunkIsThrownByFinish) {
  const std::string mnt = dir_ + "/small";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a 1 MiB tmpfs at " << mnt << ": " << std::strerror(errno);
  struct Unmount {
    std::string m;
    ~Unmount() { ::umount2(m.c_str(), MNT_DETACH); }
  } unmount{mnt};

  const std::string path = mnt + "/out.ome.zarr";
  Case c;
  c.k = 200;         // one 1.2 MB chunk: only finish() writes it
  c.stride_pad = 4;  // padded rows: the copying path (the direct one writes frames as they come)
  auto w = make_zarr_writer(path);
  Feeder feeder(*w, c);
  w->begin(feeder.info());
  feeder.feed(100, {});
  try {
    w->finish();
    FAIL() << "finish() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(w->finish());
  EXPECT_EQ(w->totals().written, 0u);
  auto e = feeder.expect_all();
  e["prefix"] = true;
  expect_valid(path, e);
}

// The direct path (uncompressed, packed rows: frames written from the slots, no copy).

// Frames of 64 x 64 Mono16 (8 KiB): whole blocks, so O_DIRECT where the filesystem takes it.
Case direct_case(uint32_t k) {
  Case c;
  c.width = 64;
  c.height = 64;
  c.k = k;
  return c;
}

size_t files_in(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.' &&
        e.path().filename() != "zarr.json")
      ++n;
  return n;
}

TEST_F(ZarrWriterTest, DirectV2BatchesFromAlignedSlotsWithAPartialLastChunk) {
  // 981 frames in batches of 7 (pwritev, crossing chunk ends): 61 chunks and a partial one.
  round_trip(direct_case(16), kSkip, 1000, 7, 0);
  const std::string path = dir_ + "/out.ome.zarr";
  EXPECT_EQ(fs::file_size(path + "/0/61.0.0"), 16u * 8192);  // padded with the fill value
  EXPECT_FALSE(fs::exists(path + "/0/62.0.0"));
  for (int i = 0; i < 62; ++i)
    EXPECT_EQ(fs::file_size(path + "/0/" + std::to_string(i) + ".0.0"), 16u * 8192) << i;
}

TEST_F(ZarrWriterTest, DirectV2FromMisalignedSlots) {
  // Slots 64 bytes off a block: O_DIRECT takes each frame through the bounce buffer.
  round_trip(direct_case(5), {3, 17}, 63, 4, 64);
  // Frames of 6144 bytes (not whole blocks): the page cache, from a misaligned slot.
  round_trip(Case{}, {}, 50, 3, 8);
}

TEST_F(ZarrWriterTest, DirectV3ShardedAndUnsharded) {
  struct V3Case {
    Case c;
    uint32_t shard_frames;
    size_t batch, misalign;
    uint64_t nseq;
    std::set<uint64_t> skip;
    size_t files;
  };
  const V3Case cases[] = {
      // Shards of 32 frames in 4 inner chunks of 8: 90 frames, the last shard 26 (its 4th chunk
      // partial, padded with zeros: a hole before the index).
      {direct_case(8), 32, 10, 0, 93, {4, 50, 51}, 3},
      // A whole last shard (64 frames); misaligned slots.
      {direct_case(8), 32, 6, 512, 64, {}, 2},
      // Unsharded chunks of 16 frames of 6144 bytes (the page cache): 40 frames, 3 chunks.
      {Case{}, 0, 9, 0, 41, {40}, 3},
  };
  int n = 0;
  for (const V3Case& v : cases) {
    const std::string path = dir_ + "/v3_" + std::to_string(n++) + ".ome.zarr";
    auto w = make_zarr3_writer(path);
    Feeder feeder(*w, v.c, v.batch, v.misalign);
    DatasetInfo info = feeder.info();
    info.shard_frames = v.shard_frames;
    w->begin(info);
    feeder.feed(v.nseq, v.skip);
    w->finish();
    EXPECT_EQ(w->totals().written, feeder.written()) << path;
    EXPECT_EQ(files_in(path + "/0/c"), v.files) << path;
    expect_decoded(path, 3, feeder.camera_frame_ids());
  }
}

// A sequence: one plane a file, in acquisition order (z fastest here), some planes never come.
TEST_F(ZarrWriterTest, DirectSequenceV2AndV3) {
  for (int version : {2, 3}) {
    const std::string path = dir_ + "/seq" + std::to_string(version) + ".ome.zarr";
    auto w = version == 2 ? make_zarr_writer(path) : make_zarr3_writer(path);
    Case c = direct_case(1);
    DatasetInfo info = info_for(c);
    SequenceInfo s;
    s.id = 7;
    s.axes = "t=2,c=2,z=3";
    s.order = "tcz";
    s.t = 2;
    s.c = 2;
    s.z = 3;
    info.sequence = s;
    if (version == 3) info.shard_frames = 1;  // a shard per plane, with its index
    w->begin(info);
    struct Null : Writer {
      void begin(const DatasetInfo&) override {}
      void write(const FrameRecord&) override {}
      void missed(uint64_t, uint64_t) override {}
      void checkpoint() override {}
      void finish() override {}
      framebroker::fbsave::Totals totals() const override { return {}; }
    } null;
    Feeder pattern(null, c);  // for its slot filling only
    AlignedBytes slot = aligned_bytes(64 * 64 * 2);
    json ids = json::array();
    uint64_t written = 0;
    for (uint64_t p = 0; p < s.planes(); ++p) {
      if (p == 4 || p == 9) {
        w->missed(p, 1);
        continue;
      }
      const auto [t, ci, z] = s.tcz_of_place(p);
      FrameRecord r;
      r.seq = p;
      r.camera_frame_id = camera_frame_id(p);
      r.position = int64_t(p);
      r.t = t;
      r.c = ci;
      r.z = z;
      pattern.fill_slot(slot.get(), r.camera_frame_id);
      r.pixels = std::span<const std::byte>(slot.get(), 64 * 64 * 2);
      w->write(r);
      ids.push_back(r.camera_frame_id);
      ++written;
    }
    w->finish();
    EXPECT_EQ(w->totals().written, written);
    EXPECT_EQ(files_in(path + "/0"), written) << path;
    expect_decoded(path, version, ids);
  }
}

// A full disk on the direct path: write() reports it once, the file it was writing is gone, and
// the dataset holds the whole files before it.
TEST_F(ZarrWriterTest, DiskFullOnTheDirectPathLeavesWholeFiles) {
  const std::string mnt = dir_ + "/small";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a 1 MiB tmpfs at " << mnt << ": " << std::strerror(errno);
  struct Unmount {
    std::string m;
    ~Unmount() { ::umount2(m.c_str(), MNT_DETACH); }
  } unmount{mnt};

  for (int version : {2, 3}) {
    const std::string path = mnt + "/out" + std::to_string(version) + ".ome.zarr";
    const Case c = direct_case(8);  // 64 KiB files: about 15 fit
    auto w = version == 2 ? make_zarr_writer(path) : make_zarr3_writer(path);
    Feeder feeder(*w, c, 5);
    DatasetInfo info = feeder.info();
    if (version == 3) info.shard_frames = 16;
    w->begin(info);
    std::string error;
    try {
      for (uint64_t seq = 0; seq < 1000; ++seq) feeder.frame(seq);
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    EXPECT_NE(error.find("No space left on device"), std::string::npos) << error;
    EXPECT_NE(error.find("cannot write " + path), std::string::npos) << error;
    EXPECT_NO_THROW(w->finish());  // already reported
    const uint64_t per_file = version == 2 ? 8 : 16;
    const auto t = w->totals();
    EXPECT_GT(t.written, 0u);
    EXPECT_EQ(t.written % per_file, 0u);
    EXPECT_EQ(files_in(path + "/0"), t.written / per_file);
    EXPECT_LT(t.written, 1000u);
    json ids = json::array();  // no seq skipped: the first t.written
    for (uint64_t seq = 0; seq < t.written; ++seq) ids.push_back(camera_frame_id(seq));
    expect_decoded(path, version, ids);
    fs::remove_all(path);
  }
}

// The metadata texts on their own (a Zarr v3 writer will build on them): the frame table
// describes the frames on disk only, and the missed seqs up to the first frame not on disk.
TEST(ZarrMetadata, TableDescribesOnlyFramesOnDisk) {
  namespace zarr = framebroker::fbsave::zarr;
  DatasetInfo info = info_for(Case{});
  zarr::FrameTable table;
  for (uint64_t seq : {0, 1, 4, 5}) {
    if (seq == 4) table.missed(2, 2);
    FrameRecord f;
    f.seq = seq;
    f.camera_frame_id = seq + 100;
    f.mono_ns = seq * 10;
    f.realtime_ns = seq * 20;
    if (seq % 2) f.hw_timestamp_ns = seq * 30;
    table.add(f);
  }
  table.missed(6, 1);
  const auto text = [&](bool complete) {
    zarr::TextPieces out;
    zarr::zattrs_v2(info, table, complete, out);
    std::string s;
    for (std::string_view p : out.pieces()) s += p;
    return json::parse(s);
  };

  table.advance(2);  // seqs 0 and 1 on disk; 2 and 3 missed before seq 4, which is not
  json fb = text(false)["framebroker"];
  EXPECT_EQ(fb["frames"]["seq"], json({0, 1}));
  EXPECT_EQ(fb["frames"]["hw_timestamp_ns"], json({nullptr, 30}));
  EXPECT_EQ(fb["missed_seqs"], json({2, 3}));
  EXPECT_EQ(fb["frames_written"], 2);
  EXPECT_EQ(fb["frames_expected"], 4);
  EXPECT_EQ(table.missed_total(), 3u);

  table.advance(4);
  const json attrs = text(true);
  fb = attrs["framebroker"];
  EXPECT_EQ(fb["frames"]["seq"], json({0, 1, 4, 5}));
  EXPECT_EQ(fb["frames"]["camera_frame_id"], json({100, 101, 104, 105}));
  EXPECT_EQ(fb["missed_seqs"], json({2, 3, 6}));
  EXPECT_EQ(fb["complete"], true);
  EXPECT_EQ(attrs["multiscales"][0]["version"], "0.4");
  EXPECT_EQ(zarr::multiscales(info, "")[0].count("version"), 0u);
}

TEST(ZarrMetadata, ZarrayV2) {
  namespace zarr = framebroker::fbsave::zarr;
  Case c;
  c.pixel_type = "RGB8";
  c.bytes_per_sample = 1;
  c.samples = 3;
  c.compression = Compression::Lz4;
  c.k = 4;
  const json a = json::parse(zarr::zarray_v2(info_for(c), 10));
  EXPECT_EQ(a["shape"], json({10, 3, 48, 64}));
  EXPECT_EQ(a["chunks"], json({4, 3, 48, 64}));
  EXPECT_EQ(a["dtype"], "|u1");
  EXPECT_EQ(a["compressor"]["cname"], "lz4");
  EXPECT_EQ(zarr::chunk_key_v2(info_for(c), 7), "7.0.0.0");
}

}  // namespace
