// fbsave's OME-Zarr writer, read back with zarr-python (/usr/bin/python3: zarr 2, numcodecs,
// numpy): layout, metadata, every pixel, missed seqs, a kill -9 after a checkpoint, errors.
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

#include "fbsave/writer.hpp"
#include "fbsave/zarr_metadata.hpp"

namespace fs = std::filesystem;
using framebroker::fbsave::Compression;
using framebroker::fbsave::DatasetInfo;
using framebroker::fbsave::FrameRecord;
using framebroker::fbsave::make_zarr_writer;
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
  Feeder(Writer& w, const Case& c) : w_(w), c_(c), info_(info_for(c)) {
    slot_.resize(size_t(info_.stride) * c.height);
  }

  void feed(uint64_t nseq, const std::set<uint64_t>& skip) {
    for (uint64_t seq = 0; seq < nseq; ++seq) {
      if (skip.count(seq)) continue;
      frame(seq);
    }
    gap_to(nseq);
  }

  void frame(uint64_t seq) {
    gap_to(seq);
    const uint64_t f = camera_frame_id(seq);
    fill(f);
    FrameRecord r;
    r.seq = seq;
    r.camera_frame_id = f;
    r.mono_ns = seq * 1000000 + 17;
    r.realtime_ns = 1700000000000000000ull + seq * 1000;
    if (seq % 2 == 0) r.hw_timestamp_ns = seq * 250;
    r.pixels = std::span<const std::byte>(slot_);
    w_.write(r);
    seqs_.push_back(seq);
    next_ = seq + 1;
  }

  void gap_to(uint64_t seq) {
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
  size_t written() const { return seqs_.size(); }
  size_t missed() const { return missed_.size(); }

 private:
  void fill(uint64_t f) {
    const size_t row = size_t(c_.width) * c_.samples * c_.bytes_per_sample;
    const size_t per_row = size_t(c_.width) * c_.samples;
    for (size_t y = 0; y < c_.height; ++y) {
      std::byte* p = slot_.data() + y * info_.stride;
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
  std::vector<std::byte> slot_;
  std::vector<uint64_t> seqs_, missed_;
  uint64_t next_ = 0;
};

class ZarrWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fb_zarr_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/check.py") << kCheckScript;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs the check script on `path`; returns its exit status and appends its output to `out`.
  int check(const std::string& path, const json& expect, std::string& out) {
    const std::string e = dir_ + "/expect.json";
    std::ofstream(e) << expect.dump();
    const std::string cmd = "/usr/bin/python3 " + dir_ + "/check.py " + path + " " + e + " 2>&1";
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
  void round_trip(const Case& c, const std::set<uint64_t>& skip, uint64_t nseq = 1000) {
    const std::string path = dir_ + "/out.ome.zarr";
    auto w = make_zarr_writer(path);
    Feeder feeder(*w, c);
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
  c.k = 200;  // one 1.2 MB chunk: only finish() writes it
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
