// fbsave's OME-TIFF and raw writers, driven with synthetic counter frames
// (pixel k of the frame with camera frame id f is (f + k) mod 2^bits) and
// checked from the outside: tifffile and numpy in /usr/bin/python3 read every
// pixel back; the JSON metadata is checked here. Also: a kill -9 after
// checkpoint() (copy the output without finish()), an unwritable path, a full
// disk (a 1 MiB tmpfs) and RLIMIT_FSIZE (EFBIG).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fbsave/writer.hpp"

namespace fs = std::filesystem;
using framebroker::fbsave::DatasetInfo;
using framebroker::fbsave::FrameRecord;
using framebroker::fbsave::Writer;
using nlohmann::json;

namespace {

constexpr const char* kPython = "/usr/bin/python3";

// Reads back a dataset and checks every pixel against the frame ids the
// dataset's own metadata gives. argv: kind path n_meta h w samples dtype
// [n_pages]. For tiff, n_meta is the OME SizeT expected (series length) and
// n_pages the number of pages in the file (more after a kill -9).
constexpr const char* kVerifyScript = R"PY(
import sys, json, numpy as np
kind, path = sys.argv[1], sys.argv[2]
n, h, w, s = (int(v) for v in sys.argv[3:7])
dtype = np.dtype(sys.argv[7])
n_pages = int(sys.argv[8]) if len(sys.argv) > 8 else n
shape = (h, w) if s == 1 else (h, w, s)
k = np.arange(h * w * s, dtype=np.uint64).reshape(shape)
mod = np.uint64(1 << (8 * dtype.itemsize))

def expected(ids):
    ids = np.asarray(ids, dtype=np.uint64).reshape((-1,) + (1,) * len(shape))
    return ((ids + k[None]) % mod).astype(dtype)

def check_counter(a, where):  # a frame whose id we do not know: still a counter frame
    f0 = np.uint64(a.reshape(-1)[0])
    assert np.array_equal(a, expected([f0])[0]), where

if kind == 'tiff':
    import tifffile, xml.etree.ElementTree as ET
    side = json.load(open(path + '.frames.json'))
    recs = [json.loads(l) for l in open(path + '.frames.jsonl')][:side['index_lines']]
    with tifffile.TiffFile(path) as t:
        assert t.is_ome, 'not read as OME'
        assert t.is_bigtiff, 'not BigTIFF'
        assert len(t.pages) == n_pages, ('pages', len(t.pages), n_pages)
        ome = ET.fromstring(t.ome_metadata)
        ns = {'o': 'http://www.openmicroscopy.org/Schemas/OME/2016-06'}
        px = ome.find('o:Image/o:Pixels', ns)
        assert int(px.get('SizeT')) == n, ('SizeT', px.get('SizeT'))
        assert px.get('DimensionOrder') == 'XYCZT'
        ser = t.series[0]
        assert ser.shape == (n,) + shape, ('shape', ser.shape)
        assert ser.dtype == dtype, ('dtype', ser.dtype)
        a = ser.asarray()
        frames = recs[:n]
        ids = [f['camera_frame_id'] for f in frames]
        assert [f['page'] for f in frames] == list(range(len(frames)))
        assert np.array_equal(a[:len(ids)], expected(ids)), 'pixels differ'
    # Pages past the OME series (written after the last checkpoint) or past
    # frames.jsonl: read as plain TIFF pages.
    with tifffile.TiffFile(path, is_ome=False) as t:
        assert len(t.pages) == n_pages
        for i in range(len(ids), n_pages):
            check_counter(t.pages[i].asarray(), 'page %d' % i)
    print('OK tiff series', ser.shape, 'pages', n_pages, 'frames.jsonl lines', len(recs))
else:
    meta = json.load(open(path + '/meta.json'))
    idx = [json.loads(l) for l in open(path + '/index.jsonl')]
    assert meta['frames_written'] == n, ('frames_written', meta['frames_written'], n)
    assert meta['index_lines'] <= len(idx)
    assert np.dtype(meta['dtype']) == dtype
    assert meta['stride'] == w * s * dtype.itemsize
    fb = h * w * s * dtype.itemsize
    assert meta['frame_bytes'] == fb
    data = np.fromfile(path + '/frames.raw', dtype=dtype)
    assert data.size % (h * w * s) == 0
    data = data.reshape((-1,) + shape)
    assert len(data) >= n, ('data frames', len(data), n)
    idx = idx[:n]
    assert len(idx) == n, ('index lines', len(idx), n)
    for i, e in enumerate(idx):
        assert e['t'] == i and e['offset'] == i * fb and e['bytes'] == fb, e
    assert np.array_equal(data[:n], expected([e['camera_frame_id'] for e in idx])), 'pixels differ'
    for i in range(n, len(data)):  # frames written after the last meta.json
        check_counter(data[i], 'frame %d' % i)
    print('OK raw frames', n, 'in file', len(data), 'o_direct', meta['o_direct'])
)PY";

struct TempDir {
  fs::path path;
  TempDir() {
    char t[] = "/tmp/fbsave_test_XXXXXX";
    if (!::mkdtemp(t)) throw std::runtime_error("mkdtemp failed");
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct PyResult {
  int status = -1;
  std::string output;
};

PyResult run_python(const fs::path& script_dir, const std::vector<std::string>& args) {
  const fs::path script = script_dir / "verify.py";
  if (!fs::exists(script)) std::ofstream(script) << kVerifyScript;
  std::string cmd = std::string(kPython) + " '" + script.string() + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  PyResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

DatasetInfo make_info(uint32_t w, uint32_t h, uint32_t bps, uint32_t stride = 0,
                      uint32_t samples = 1) {
  DatasetInfo i;
  i.stream = "cam0";
  i.camera = "sim-camera";
  i.width = w;
  i.height = h;
  i.bytes_per_sample = bps;
  i.samples = samples;
  i.stride = stride ? stride : w * bps * samples;
  i.pixel_type = samples == 3 ? "RGB8" : (bps == 1 ? "Mono8" : "Mono16");
  i.camera_properties = {{"Exposure", "10"}, {"PixelType", i.pixel_type}, {"Note", "a<b & \"c\""}};
  return i;
}

// Slot-like, page-aligned buffers that get the counter pattern, used in turn
// (so that a batch of up to `buffers` frames stays valid); the row padding
// (stride > row) is filled with 0xEE so that a leak would show.
class FrameSource {
 public:
  explicit FrameSource(const DatasetInfo& info, size_t misalign = 0, size_t buffers = 1)
      : info_(info), misalign_(misalign) {
    bytes_ = size_t(info.stride) * info.height;
    const size_t alloc = (bytes_ + misalign + 4095) / 4096 * 4096;
    for (size_t b = 0; b < buffers; ++b)
      mem_.emplace_back(static_cast<std::byte*>(std::aligned_alloc(4096, alloc)));
  }
  std::span<const std::byte> make(uint64_t frame_id) {
    std::byte* base = mem_[next_++ % mem_.size()].get() + misalign_;
    std::memset(base, 0xEE, bytes_);
    const uint32_t bps = info_.bytes_per_sample;
    const uint64_t mask = bps >= 8 ? ~0ull : (1ull << (8 * bps)) - 1;
    const size_t per_row = size_t(info_.width) * info_.samples;
    for (uint32_t y = 0; y < info_.height; ++y) {
      std::byte* row = base + size_t(y) * info_.stride;
      for (size_t i = 0; i < per_row; ++i) {
        const uint64_t v = (frame_id + y * per_row + i) & mask;
        std::memcpy(row + i * bps, &v, bps);  // little-endian host
      }
    }
    return {base, bytes_};
  }
  size_t buffers() const { return mem_.size(); }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  DatasetInfo info_;
  size_t misalign_, bytes_ = 0, next_ = 0;
  std::vector<std::unique_ptr<std::byte, Free>> mem_;
};

// Frame seq s has camera frame id 3s + 7, mono 1000 + 10s, realtime
// 1.7e18 + 1000s, and a hardware timestamp only when s is even.
FrameRecord record(uint64_t seq, std::span<const std::byte> px) {
  FrameRecord r;
  r.seq = seq;
  r.camera_frame_id = 3 * seq + 7;
  r.mono_ns = 1000 + 10 * seq;
  r.realtime_ns = 1700000000000000000ull + 1000 * seq;
  if (seq % 2 == 0) r.hw_timestamp_ns = 500 + seq;
  r.pixels = px;
  return r;
}

struct DriveResult {
  uint64_t written = 0;
  uint64_t next_seq = 0;
  std::vector<std::pair<uint64_t, uint64_t>> missed;  // what we reported
  std::string error;                                  // first exception, if any
};

// Writes `frames` frames starting at seq 10; before the frame at index i in
// `gaps` (frame index -> count) reports `count` missed seqs. Checkpoints
// every `checkpoint_every` frames. Stops at the first exception. With a source
// of several buffers, consecutive frames go to write_batch() in groups of that
// many (a gap or a checkpoint ends a group early); with one, to write().
DriveResult drive(Writer& w, const DatasetInfo& info, uint64_t frames,
                  const std::map<uint64_t, uint64_t>& gaps, uint64_t checkpoint_every,
                  FrameSource* src = nullptr, uint64_t first_seq = 10) {
  std::unique_ptr<FrameSource> own;
  if (!src) {
    own = std::make_unique<FrameSource>(info);
    src = own.get();
  }
  DriveResult r;
  std::vector<FrameRecord> group;
  auto flush = [&] {
    if (group.size() == 1 && src->buffers() == 1)
      w.write(group[0]);
    else if (!group.empty())
      w.write_batch(group);
    r.written += group.size();
    group.clear();
  };
  uint64_t seq = first_seq;
  try {
    for (uint64_t i = 0; i < frames; ++i) {
      if (auto g = gaps.find(i); g != gaps.end()) {
        flush();
        w.missed(seq, g->second);
        r.missed.emplace_back(seq, g->second);
        seq += g->second;
      }
      group.push_back(record(seq, src->make(3 * seq + 7)));
      ++seq;
      if (group.size() == src->buffers()) flush();
      if (checkpoint_every && (i + 1) % checkpoint_every == 0) {
        flush();
        w.checkpoint();
      }
    }
    flush();
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  r.next_seq = seq;
  return r;
}

json missed_json(const std::vector<std::pair<uint64_t, uint64_t>>& m) {
  json a = json::array();
  for (const auto& [s, n] : m) a.push_back({s, n});
  return a;
}

const std::map<uint64_t, uint64_t> kGaps = {{90, 3}, {490, 1}, {770, 4}};

std::string dtype_of(const DatasetInfo& i) {
  return "<u" + std::to_string(i.bytes_per_sample);
}

std::vector<std::string> verify_args(const std::string& kind, const fs::path& p,
                                     const DatasetInfo& i, uint64_t n, uint64_t pages = 0) {
  std::vector<std::string> a = {kind,
                                p.string(),
                                std::to_string(n),
                                std::to_string(i.height),
                                std::to_string(i.width),
                                std::to_string(i.samples),
                                dtype_of(i)};
  if (pages) a.push_back(std::to_string(pages));
  return a;
}

// Checks the per-frame records (sidecar "frames" or index.jsonl lines).
void check_frame_records(const std::vector<json>& recs, uint64_t first_seq,
                         const std::map<uint64_t, uint64_t>& gaps) {
  uint64_t seq = first_seq;
  for (size_t i = 0; i < recs.size(); ++i) {
    if (auto g = gaps.find(i); g != gaps.end()) seq += g->second;
    const json& r = recs[i];
    ASSERT_EQ(r["seq"].get<uint64_t>(), seq) << "record " << i;
    EXPECT_EQ(r["camera_frame_id"].get<uint64_t>(), 3 * seq + 7);
    EXPECT_EQ(r["mono_ns"].get<uint64_t>(), 1000 + 10 * seq);
    EXPECT_EQ(r["realtime_ns"].get<uint64_t>(), 1700000000000000000ull + 1000 * seq);
    if (seq % 2 == 0)
      EXPECT_EQ(r["hw_timestamp_ns"].get<uint64_t>(), 500 + seq);
    else
      EXPECT_TRUE(r["hw_timestamp_ns"].is_null());
    ++seq;
  }
}

// ---------------------------------------------------------------- OME-TIFF

void tiff_round_trip(const DatasetInfo& info, uint64_t frames,
                     const std::map<uint64_t, uint64_t>& gaps, bool expect_direct = false,
                     size_t misalign = 0) {
  TempDir dir;
  const fs::path p = dir.path / "out.ome.tif";
  auto w = framebroker::fbsave::make_tiff_writer(p.string());
  DatasetInfo i = info;
  i.frames_expected = frames + 8;
  w->begin(i);
  FrameSource src(i, misalign);
  const DriveResult r = drive(*w, i, frames, gaps, 100, &src);
  ASSERT_EQ(r.error, "");
  w->finish();
  w->finish();  // idempotent
  const auto t = w->totals();
  uint64_t missed = 0;
  for (const auto& [s, n] : r.missed) missed += n;
  EXPECT_EQ(t.written, frames);
  EXPECT_EQ(t.missed, missed);
  EXPECT_EQ(t.bytes, frames * i.frame_bytes());

  const json side = read_json(p.string() + ".frames.json");
  EXPECT_EQ(side["frames_written"], frames);
  EXPECT_EQ(side["index_lines"], frames);
  EXPECT_EQ(side["frames_missed"], missed);
  EXPECT_EQ(side["frames_expected"], frames + 8);
  EXPECT_EQ(side["missed_seqs"], missed_json(r.missed));
  EXPECT_EQ(side["complete"], true);
  EXPECT_TRUE(side["error"].is_null());
  EXPECT_EQ(side["camera_properties"]["Note"], "a<b & \"c\"");
  EXPECT_EQ(side["dtype"], dtype_of(i));
  EXPECT_EQ(side["o_direct"], expect_direct) << side["o_direct_note"];
  EXPECT_EQ(side["o_direct_pages"], expect_direct && misalign == 0 ? frames : 0);
  const auto recs = read_jsonl(p.string() + ".frames.jsonl");
  ASSERT_EQ(recs.size(), frames);
  for (size_t k = 0; k < recs.size(); ++k) ASSERT_EQ(recs[k]["page"], k);
  check_frame_records(recs, 10, gaps);

  const PyResult py = run_python(dir.path, verify_args("tiff", p, i, frames));
  EXPECT_EQ(py.status, 0) << py.output;
}

TEST(TiffWriter, Mono16ThousandFramesWithMissedSeqs) {
  tiff_round_trip(make_info(64, 48, 2), 1000, kGaps);
}

TEST(TiffWriter, Mono8) {
  tiff_round_trip(make_info(64, 48, 1), 200, {{50, 2}});
}

TEST(TiffWriter, StrideLargerThanRow) {
  tiff_round_trip(make_info(64, 48, 2, 64 * 2 + 40), 150, {{10, 1}});
}

TEST(TiffWriter, Rgb8AndFourSamples) {
  tiff_round_trip(make_info(33, 17, 1, 0, 3), 20, {});
  DatasetInfo bgra = make_info(33, 17, 1, 0, 4);
  bgra.pixel_type = "BGRA8";
  tiff_round_trip(bgra, 20, {});
}

// 512x256 Mono16 is 256 KiB: each strip starts on a block and goes with O_DIRECT straight from
// the aligned slot, or from the packing buffer (padded rows); a misaligned slot's pages go through
// the page cache. tifffile reads every page back either way. (Smaller pages, as in the tests
// above, always go through the page cache.)
TEST(TiffWriter, ODirectWhenAligned) {
  tiff_round_trip(make_info(512, 256, 2), 40, {{7, 2}}, true);
  tiff_round_trip(make_info(512, 256, 2), 10, {}, true, /*misalign=*/64);
  tiff_round_trip(make_info(512, 256, 2, 512 * 2 + 64), 10, {}, true);
}

// kill -9 after checkpoint(): the file as it is on disk then, without finish().
TEST(TiffWriter, ReadableAfterCheckpointWithoutFinish) {
  TempDir dir;
  const fs::path p = dir.path / "out.ome.tif";
  const DatasetInfo info = make_info(64, 48, 2);
  auto w = framebroker::fbsave::make_tiff_writer(p.string());
  w->begin(info);
  FrameSource src(info);
  DriveResult r = drive(*w, info, 300, {{100, 2}}, 0, &src);
  ASSERT_EQ(r.error, "");
  w->checkpoint();
  // 1: copied right after the checkpoint: OME with SizeT = 300, all there.
  const fs::path snap1 = dir.path / "snap1.ome.tif";
  fs::copy_file(p, snap1);
  fs::copy_file(p.string() + ".frames.json", snap1.string() + ".frames.json");
  fs::copy_file(p.string() + ".frames.jsonl", snap1.string() + ".frames.jsonl");
  // 2: 50 more pages after the checkpoint, then killed: SizeT (and the
  // sidecar) still say 300; the 50 pages are complete in the file.
  r = drive(*w, info, 50, {}, 0, &src, r.next_seq);
  ASSERT_EQ(r.error, "");
  const fs::path snap2 = dir.path / "snap2.ome.tif";
  fs::copy_file(p, snap2);
  fs::copy_file(p.string() + ".frames.json", snap2.string() + ".frames.json");
  fs::copy_file(p.string() + ".frames.jsonl", snap2.string() + ".frames.jsonl");

  const json side = read_json(snap1.string() + ".frames.json");
  EXPECT_EQ(side["frames_written"], 300);
  EXPECT_EQ(side["index_lines"], 300);
  EXPECT_EQ(side["complete"], false);
  EXPECT_EQ(side["missed_seqs"], json::parse("[[110, 2]]"));

  PyResult py = run_python(dir.path, verify_args("tiff", snap1, info, 300, 300));
  EXPECT_EQ(py.status, 0) << py.output;
  py = run_python(dir.path, verify_args("tiff", snap2, info, 300, 350));
  EXPECT_EQ(py.status, 0) << py.output;
  w->finish();
  py = run_python(dir.path, verify_args("tiff", p, info, 350));
  EXPECT_EQ(py.status, 0) << py.output;
}

TEST(TiffWriter, UnwritablePathGivesClearMessage) {
  TempDir dir;
  const fs::path file = dir.path / "plainfile";
  std::ofstream(file) << "x";
  const std::string p = (file / "out.ome.tif").string();
  auto w = framebroker::fbsave::make_tiff_writer(p);
  try {
    w->begin(make_info(64, 48, 2));
    FAIL() << "begin() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot write " + p + ": Not a directory");
  }
  EXPECT_NO_THROW(w->finish());
}

// ---------------------------------------------------------------- raw

void raw_round_trip(const DatasetInfo& info, uint64_t frames,
                    const std::map<uint64_t, uint64_t>& gaps, bool expect_direct,
                    size_t misalign = 0, size_t batch = 1) {
  TempDir dir;
  const fs::path p = dir.path / "run1";
  auto w = framebroker::fbsave::make_raw_writer(p.string());
  DatasetInfo i = info;
  i.frames_expected = frames;
  w->begin(i);
  FrameSource src(i, misalign, batch);
  const DriveResult r = drive(*w, i, frames, gaps, 100, &src);
  ASSERT_EQ(r.error, "");
  w->finish();
  w->finish();
  const auto t = w->totals();
  uint64_t missed = 0;
  for (const auto& [s, n] : r.missed) missed += n;
  EXPECT_EQ(t.written, frames);
  EXPECT_EQ(t.missed, missed);
  EXPECT_EQ(t.bytes, frames * i.frame_bytes());
  EXPECT_EQ(fs::file_size(p / "frames.raw"), frames * i.frame_bytes());

  const json meta = read_json(p / "meta.json");
  EXPECT_EQ(meta["frames_written"], frames);
  EXPECT_EQ(meta["frames_missed"], missed);
  EXPECT_EQ(meta["frames_expected"], frames);
  EXPECT_EQ(meta["missed_seqs"], missed_json(r.missed));
  EXPECT_EQ(meta["index_lines"], frames);
  EXPECT_EQ(meta["width"], i.width);
  EXPECT_EQ(meta["height"], i.height);
  EXPECT_EQ(meta["stride"], i.width * i.bytes_per_sample * i.samples);
  EXPECT_EQ(meta["pixel_type"], i.pixel_type);
  EXPECT_EQ(meta["dtype"], dtype_of(i));
  EXPECT_EQ(meta["camera"], "sim-camera");
  EXPECT_EQ(meta["camera_properties"]["Exposure"], "10");
  EXPECT_EQ(meta["complete"], true);
  EXPECT_EQ(meta["o_direct"], expect_direct) << meta["o_direct_note"];
  const auto idx = read_jsonl(p / "index.jsonl");
  ASSERT_EQ(idx.size(), frames);
  check_frame_records(idx, 10, gaps);

  const PyResult py = run_python(dir.path, verify_args("raw", p, i, frames));
  EXPECT_EQ(py.status, 0) << py.output;
}

// 64x48 Mono16 is 6144 bytes, not a multiple of 4096: buffered fd.
TEST(RawWriter, Mono16ThousandFramesWithMissedSeqs) {
  raw_round_trip(make_info(64, 48, 2), 1000, kGaps, false);
}

TEST(RawWriter, Mono8) {
  raw_round_trip(make_info(64, 48, 1), 200, {{5, 7}}, false);
}

TEST(RawWriter, StrideLargerThanRow) {
  raw_round_trip(make_info(64, 48, 2, 64 * 2 + 40), 150, {{10, 1}}, false);
}

// 64x64 Mono16 is 8192 bytes: O_DIRECT on /tmp (ext4 here), straight from
// the aligned slot; also from a misaligned one (packed into the bounce buffer)
// and from padded rows.
TEST(RawWriter, ODirectWhenAligned) {
  raw_round_trip(make_info(64, 64, 2), 300, {{7, 2}}, true);
  raw_round_trip(make_info(64, 64, 2), 50, {}, true, /*misalign=*/64);
  raw_round_trip(make_info(64, 64, 2, 64 * 2 + 64), 50, {}, true);
}

// Batches of consecutive frames (one pwritev each on the O_DIRECT path); a gap
// or a checkpoint cuts a batch short. Misaligned or padded frames go through
// the per-frame path instead; the result is the same file.
TEST(RawWriter, BatchesGiveTheSameDataset) {
  raw_round_trip(make_info(64, 64, 2), 300, kGaps, true, 0, /*batch=*/8);
  raw_round_trip(make_info(64, 64, 2), 100, {{7, 2}}, true, /*misalign=*/64, /*batch=*/8);
  raw_round_trip(make_info(64, 64, 2, 64 * 2 + 64), 100, {}, true, 0, /*batch=*/8);
  raw_round_trip(make_info(64, 48, 2), 100, {{3, 1}}, false, 0, /*batch=*/8);
}

TEST(RawWriter, ReadableAfterCheckpointWithoutFinish) {
  TempDir dir;
  const fs::path p = dir.path / "run";
  const DatasetInfo info = make_info(64, 64, 2);
  auto w = framebroker::fbsave::make_raw_writer(p.string());
  w->begin(info);
  FrameSource src(info);
  DriveResult r = drive(*w, info, 300, {{100, 2}}, 0, &src);
  ASSERT_EQ(r.error, "");
  w->checkpoint();
  r = drive(*w, info, 50, {}, 0, &src, r.next_seq);
  ASSERT_EQ(r.error, "");
  const fs::path snap = dir.path / "snap";
  fs::copy(p, snap, fs::copy_options::recursive);  // kill -9 now
  const json meta = read_json(snap / "meta.json");
  EXPECT_EQ(meta["frames_written"], 300);
  EXPECT_EQ(meta["complete"], false);
  EXPECT_EQ(meta["missed_seqs"], json::parse("[[110, 2]]"));
  PyResult py = run_python(dir.path, verify_args("raw", snap, info, 300));
  EXPECT_EQ(py.status, 0) << py.output;
  w->finish();
  py = run_python(dir.path, verify_args("raw", p, info, 350));
  EXPECT_EQ(py.status, 0) << py.output;
}

TEST(RawWriter, UnwritablePathGivesClearMessage) {
  TempDir dir;
  const fs::path file = dir.path / "plainfile";
  std::ofstream(file) << "x";
  const std::string p = (file / "run").string();
  auto w = framebroker::fbsave::make_raw_writer(p);
  try {
    w->begin(make_info(64, 48, 2));
    FAIL() << "begin() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot write " + p + ": Not a directory");
  }
  EXPECT_NO_THROW(w->finish());
}

// ---------------------------------------------------------------- full disk

// A 1 MiB tmpfs, unmounted at the end.
class SmallTmpfs {
 public:
  SmallTmpfs() {
    char t[] = "/tmp/fbsave_full_XXXXXX";
    if (!::mkdtemp(t)) return;
    path_ = t;
    if (::mount("tmpfs", t, "tmpfs", 0, "size=1m") != 0) {
      reason_ = std::string("cannot mount a tmpfs: ") + std::strerror(errno);
      ::rmdir(t);
      path_.clear();
    }
  }
  ~SmallTmpfs() {
    if (!path_.empty()) {
      ::umount2(path_.c_str(), MNT_DETACH);
      ::rmdir(path_.c_str());
    }
  }
  bool ok() const { return !path_.empty(); }
  const std::string& reason() const { return reason_; }
  fs::path path() const { return path_; }

 private:
  std::string path_, reason_;
};

// 64x48 Mono16 (6 KiB, buffered fd) and 64x64 Mono16 (8 KiB, O_DIRECT), one
// frame at a time and in batches of 8.
class RawDiskFull : public ::testing::TestWithParam<std::tuple<uint32_t, size_t>> {};

TEST_P(RawDiskFull, KeepsWholeFramesAndValidMetadata) {
  SmallTmpfs fsys;
  if (!fsys.ok()) GTEST_SKIP() << fsys.reason();
  TempDir scratch;
  const auto [height, batch] = GetParam();
  const DatasetInfo info = make_info(64, height, 2);
  const fs::path p = fsys.path() / "run";
  auto w = framebroker::fbsave::make_raw_writer(p.string());
  w->begin(info);
  FrameSource src(info, 0, batch);
  const DriveResult r = drive(*w, info, 1000, {{20, 1}}, 20, &src);
  ASSERT_NE(r.error, "") << "1000 frames of 6 KiB fitted in 1 MiB?";
  EXPECT_NE(r.error.find("No space left on device"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find(p.string()), std::string::npos) << r.error;
  EXPECT_THROW(w->write(record(r.next_seq, FrameSource(info).make(0))), std::runtime_error);
  EXPECT_NO_THROW(w->finish());
  const auto t = w->totals();
  EXPECT_GT(t.written, 20u);
  EXPECT_LT(t.written, 1000u);
  // frames.raw holds whole frames only.
  EXPECT_EQ(fs::file_size(p / "frames.raw"), t.written * info.frame_bytes());
  const json meta = read_json(p / "meta.json");  // valid JSON, whichever one got written
  const uint64_t in_meta = meta["frames_written"];
  EXPECT_LE(in_meta, t.written);
  std::cout << "[   info   ] raw 64x" << height << " batch " << batch
            << " (o_direct=" << meta["o_direct"] << "): disk full after " << t.written
            << " frames; meta.json says " << in_meta << " (complete=" << meta["complete"]
            << ", index_lines=" << meta["index_lines"] << ", error=" << meta["error"] << ")\n";
  const PyResult py = run_python(scratch.path, verify_args("raw", p, info, in_meta));
  EXPECT_EQ(py.status, 0) << py.output;
}

INSTANTIATE_TEST_SUITE_P(RawWriter, RawDiskFull,
                         ::testing::Combine(::testing::Values(48u, 64u),
                                            ::testing::Values(size_t(1), size_t(8))));

TEST(TiffWriter, DiskFull) {
  SmallTmpfs fsys;
  if (!fsys.ok()) GTEST_SKIP() << fsys.reason();
  TempDir scratch;
  const DatasetInfo info = make_info(64, 48, 2);
  const fs::path p = fsys.path() / "out.ome.tif";
  auto w = framebroker::fbsave::make_tiff_writer(p.string());
  w->begin(info);
  const DriveResult r = drive(*w, info, 1000, {{20, 1}}, 20);
  ASSERT_NE(r.error, "") << "1000 frames of 6 KiB fitted in 1 MiB?";
  EXPECT_NE(r.error.find("No space left on device"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("cannot write " + fsys.path().string()), std::string::npos) << r.error;
  EXPECT_NO_THROW(w->finish());
  const auto t = w->totals();
  EXPECT_GT(t.written, 20u);
  const json side = read_json(p.string() + ".frames.json");
  std::cout << "[   info   ] tiff: disk full after " << t.written << " pages; frames.json says "
            << side["frames_written"] << " (complete=" << side["complete"]
            << ", index_lines=" << side["index_lines"] << ", error=" << side["error"] << ")\n";
  // The file holds exactly the complete pages, and SizeT says so.
  const PyResult py = run_python(scratch.path, verify_args("tiff", p, info, t.written));
  EXPECT_EQ(py.status, 0) << py.output;
}

// ---------------------------------------------------------------- EFBIG

// Runs fn in a child with RLIMIT_FSIZE = limit (SIGXFSZ ignored, so writes
// past it fail with EFBIG); returns what the child reports.
std::string in_child_with_fsize_limit(rlim_t limit, const std::function<std::string()>& fn) {
  int pfd[2];
  if (::pipe(pfd) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pfd[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit rl{limit, limit};
    ::setrlimit(RLIMIT_FSIZE, &rl);
    std::string out;
    try {
      out = fn();
    } catch (const std::exception& e) {
      out = std::string("exception: ") + e.what();
    }
    (void)!::write(pfd[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(pfd[1]);
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(pfd[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  ::close(pfd[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return out;
}

TEST(Writers, FileTooLarge) {
  TempDir dir;
  // 64x48 Mono16 goes through the page cache, 64x64 through O_DIRECT (raw).
  for (const uint32_t h : {48u, 64u}) {
    const DatasetInfo info = make_info(64, h, 2);
    for (const std::string kind : {"raw", "tiff"}) {
      const fs::path p = dir.path / ("big" + std::to_string(h) + "." + kind);
      const std::string got = in_child_with_fsize_limit(200 * 1024, [&]() -> std::string {
        auto w = kind == "raw" ? framebroker::fbsave::make_raw_writer(p.string())
                               : framebroker::fbsave::make_tiff_writer(p.string());
        w->begin(info);
        const DriveResult r = drive(*w, info, 100, {}, 10);
        w->finish();  // must not throw the same error again
        return std::to_string(w->totals().written) + "\n" + r.error;
      });
      EXPECT_NE(got.find("File too large"), std::string::npos) << kind << ": " << got;
      EXPECT_EQ(got.find("exception"), std::string::npos) << kind << ": " << got;
      const uint64_t written = std::strtoull(got.c_str(), nullptr, 10);
      EXPECT_GT(written, 10u) << got;
      const PyResult py = run_python(dir.path, verify_args(kind, p, info, written));
      EXPECT_EQ(py.status, 0) << kind << " " << h << ": " << py.output;
    }
  }
}

}  // namespace
