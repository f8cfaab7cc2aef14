// fbsave with several streams, end to end: a real broker with two sim counter cameras, the real
// fbsave saving both into one dataset (a group of one image per stream, or with --as-channels
// the channels of one image), read back by readers nobody here wrote: python3-zarr for Zarr v2,
// zarrita (node) for Zarr v3, tifffile and numpy for TIFF and raw.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Two idle counter cameras: cam0 64x48, cam1 of `width` x `height` (both Mono16). 200 fps and 256
// slots: more than a second of slack for a saver on a busy CI machine.
std::vector<std::string> two_cameras(int width, int height) {
  const auto cam = [](const std::string& name, int w, int h) {
    return "sim:name=" + name + ",Width=" + std::to_string(w) + ",Height=" + std::to_string(h) +
           ",Pattern=counter,FrameRate=200,slots=256,start=false";
  };
  return {"--no-default-camera", "--camera", cam("cam0", 64, 48), "--camera",
          cam("cam1", width, height)};
}

std::vector<std::string> fbsave_args(Broker& b, std::vector<std::string> args) {
  args.insert(args.begin(), FB_FBSAVE_BIN);
  args.insert(args.end(), {"--json", "--socket", b.socket()});
  return args;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return in.good() ? json::parse(in) : json::object();
}

const std::string kZarrita = std::string(FB_SOURCE_DIR) + "/tests/node_modules/zarrita";
const std::string kCheckZarr3 = std::string(FB_SOURCE_DIR) + "/tests/integration/check_zarr3.mjs";

bool have_zarrita() {
  return fs::exists(kZarrita) && fs::exists(kCheckZarr3);
}

// The dataset at `path` read by a third-party reader: {frames, bad_frames, seqs, missed, ...}.
json read_back(const std::string& format, const std::string& path) {
  Result r =
      format == "zarr3"
          ? run({"/usr/bin/env", "NODE_PATH=" + std::string(FB_SOURCE_DIR) + "/tests/node_modules",
                 "node", kCheckZarr3, path})
          : run({"/usr/bin/python3",
                 std::string(FB_SOURCE_DIR) + "/tests/integration/check_dataset.py", format, path});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json{{"frames", -1}};
}

// A Zarr group's or array's metadata: v2 .zattrs / .zarray, v3 zarr.json (attributes inside).
json group_attributes(const std::string& format, const std::string& dir) {
  if (format == "zarr3") return read_json(dir + "/zarr.json").value("attributes", json::object());
  return read_json(dir + "/.zattrs");
}
json array_shape(const std::string& format, const std::string& dir) {
  return read_json(dir + (format == "zarr3" ? "/zarr.json" : "/.zarray"))["shape"];
}

void skip_without_zarrita(const std::string& format) {
  if (format == "zarr3" && !have_zarrita())
    GTEST_SKIP() << "zarrita is not installed under tests/node_modules (tools/install-deps.sh)";
}

class FbsaveStreams : public ::testing::TestWithParam<std::string> {};
class FbsaveStreamsAsChannels : public ::testing::TestWithParam<std::string> {};

}  // namespace

// Two cameras of different sizes, one dataset: each stream complete and pixel-exact in its own
// member (Zarr: PATH/<stream>, raw: PATH/<stream>, TIFF: NAME.<stream>.ome.tif), with its own
// summary, and the group listing both.
TEST_P(FbsaveStreams, TwoCamerasOfDifferentSizesBothCompleteInOneDataset) {
  const std::string format = GetParam();
  skip_without_zarrita(format);
  Broker b(two_cameras(32, 16));
  const std::string name = format == "tiff" ? "run.ome.tif" : format == "raw" ? "run" : "run.zarr";
  const std::string path = b.runtime_dir() + "/" + name;
  auto r = run(fbsave_args(
      b, {"cam0", "cam1", "-o", path, "--format", format, "--frames", "300", "--start"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["format"], format);
  EXPECT_EQ(summary["as_channels"], false);
  EXPECT_EQ(summary["frames_written"], 600);
  EXPECT_EQ(summary["frames_missed"], 0);
  EXPECT_TRUE(summary["error"].is_null());
  ASSERT_EQ(summary["streams"].size(), 2u);

  const std::map<std::string, json> shapes = {{"cam0", json({300, 48, 64})},
                                              {"cam1", json({300, 16, 32})}};
  for (const json& s : summary["streams"]) {
    const std::string stream = s["stream"];
    SCOPED_TRACE(stream);
    const std::string member =
        format == "tiff" ? b.runtime_dir() + "/run." + stream + ".ome.tif" : path + "/" + stream;
    EXPECT_EQ(s["path"], member);
    EXPECT_EQ(s["frames_written"], 300);
    EXPECT_EQ(s["frames_missed"], 0);
    EXPECT_EQ(s["first_seq"], 0);
    EXPECT_EQ(s["last_seq"], 299);

    const json d = read_back(format, member);
    EXPECT_EQ(d["frames"], 300);
    EXPECT_EQ(d["bad_frames"], 0);
    EXPECT_TRUE(d["missed"].empty());
    ASSERT_EQ(d["seqs"].size(), 300u);
    for (int i = 0; i < 300; ++i) EXPECT_EQ(d["seqs"][i], i);
    if (format == "zarr" || format == "zarr3") {
      EXPECT_EQ(array_shape(format, member + "/0"), shapes.at(stream));
    }
  }
  if (format == "zarr" || format == "zarr3") {
    EXPECT_EQ(group_attributes(format, path)["framebroker"]["streams"], json({"cam0", "cam1"}));
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, FbsaveStreams, ::testing::Values("zarr", "zarr3", "tiff", "raw"),
                         [](const auto& info) { return info.param; });

// --as-channels: one image (t, c, z, y, x) = (200, 2, 1, 48, 64); frame n of stream i at t=n,
// c=i (with --start both cameras' frame ids count from 0, so plane (t, c) is counter frame t);
// each frame's seq and camera frame id in the columns with its index; each channel's accounting
// in the "channels" group.
TEST_P(FbsaveStreamsAsChannels, FrameNOfStreamIIsAtTnCi) {
  const std::string format = GetParam();
  skip_without_zarrita(format);
  Broker b(two_cameras(64, 48));
  const std::string path = b.runtime_dir() + "/two.zarr";
  auto r = run(fbsave_args(b, {"cam0", "cam1", "-o", path, "--format", format, "--frames", "200",
                               "--start", "--as-channels"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["as_channels"], true);
  EXPECT_EQ(summary["frames_written"], 400);
  EXPECT_EQ(summary["frames_missed"], 0);
  ASSERT_EQ(summary["streams"].size(), 2u);
  EXPECT_EQ(summary["streams"][1]["frames_written"], 200);

  EXPECT_EQ(array_shape(format, path + "/0"), json({200, 2, 1, 48, 64}));
  if (format == "zarr") {
    auto rb = run({"/usr/bin/python3",
                   std::string(FB_SOURCE_DIR) + "/tests/integration/check_sequence_dataset.py",
                   "zarr", path});
    ASSERT_EQ(rb.exit_code, 0) << rb.out << rb.err;
    const json d = json::parse(rb.out);
    EXPECT_EQ(d["axes"], "tczyx");
    EXPECT_EQ(d["channels"], json({"cam0", "cam1"}));
    ASSERT_EQ(d["planes"].size(), 400u);
    for (const auto& p : d["planes"]) EXPECT_EQ(p[3], p[0]) << "plane " << p;
    EXPECT_TRUE(d["sequence"]["missing"].empty());
    // The columns: every frame with its index, channel c's camera frame id t at [t, c, 0].
    const json& cols = d["columns"];
    ASSERT_EQ(cols["index"].size(), 400u);
    std::set<std::pair<int, int>> seen;
    for (size_t i = 0; i < 400; ++i) {
      const json& idx = cols["index"][i];
      EXPECT_EQ(cols["camera_frame_id"][i], idx[0]) << i;
      EXPECT_EQ(cols["seq"][i], idx[0]) << i;  // both cameras' seqs start at 0
      EXPECT_TRUE(seen.insert({idx[0].get<int>(), idx[1].get<int>()}).second) << idx;
    }
  } else {
    const json d = read_back(format, path);  // zarrita: each frame at its index, pixel-exact
    EXPECT_EQ(d["frames"], 400);
    EXPECT_EQ(d["bad_frames"], 0);
    EXPECT_TRUE(d["ngff_errors"].empty()) << d["ngff_errors"];
  }
  const json ch = group_attributes(format, path + "/channels")["framebroker"];
  EXPECT_EQ(ch["streams"], json({"cam0", "cam1"}));
  EXPECT_EQ(ch["complete"], true);
  ASSERT_EQ(ch["channels"].size(), 2u);
  for (int c = 0; c < 2; ++c) {
    EXPECT_EQ(ch["channels"][c]["c"], c);
    EXPECT_EQ(ch["channels"][c]["first_seq"], 0);
    EXPECT_EQ(ch["channels"][c]["frames_written"], 200);
    EXPECT_TRUE(ch["channels"][c]["missed_seqs"].empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, FbsaveStreamsAsChannels, ::testing::Values("zarr", "zarr3"),
                         [](const auto& info) { return info.param; });

// A stalled saver misses frames of each stream: each missed frame's plane is zeros, listed
// under its own channel (by its stream's seq) and among the image's missing planes; every other
// plane is its counter frame. Nothing is accounted twice or not at all.
TEST(FbsaveStreamsChannels, AMissedFrameLeavesItsPlaneEmptyAndIsListedUnderItsChannel) {
  Broker b(two_cameras(64, 48));
  const std::string path = b.runtime_dir() + "/stall.ome.zarr";
  Process saver(
      fbsave_args(b, {"cam0", "cam1", "-o", path, "--frames", "600", "--start", "--as-channels"}),
      b.runtime_dir() + "/fbsave");
  const auto delivered_to_both = [&](const char* key, int n) {
    return b.wait_status([&](const json& s) {
      const auto subs = subscribers(s, saver.pid());
      if (subs.size() != 2) return false;
      for (const auto& sub : subs)
        if (sub[key].get<int>() <= n) return false;
      return true;
    });
  };
  ASSERT_TRUE(delivered_to_both("delivered", 100)) << saver.err();
  saver.signal(SIGSTOP);  // a saver that cannot keep up, the hard way
  ASSERT_TRUE(delivered_to_both("missed", 20));
  saver.signal(SIGCONT);
  const auto st = saver.wait(60s);
  ASSERT_TRUE(st.has_value());
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << saver.err();
  const json summary = json::parse(saver.out());
  EXPECT_EQ(summary["frames_written"].get<int>() + summary["frames_missed"].get<int>(), 1200);

  auto rb = run({"/usr/bin/python3",
                 std::string(FB_SOURCE_DIR) + "/tests/integration/check_sequence_dataset.py",
                 "zarr", path});
  ASSERT_EQ(rb.exit_code, 0) << rb.out << rb.err;
  const json d = json::parse(rb.out);
  const json ch = read_json(path + "/channels/.zattrs")["framebroker"];
  ASSERT_EQ(ch["channels"].size(), 2u);
  std::set<std::vector<int>> missing;  // [t, c, 0] from each channel's missed seqs
  for (int c = 0; c < 2; ++c) {
    const json& one = ch["channels"][c];
    SCOPED_TRACE(one["stream"].get<std::string>());
    EXPECT_EQ(one["frames_missed"], summary["streams"][c]["frames_missed"]);
    EXPECT_GT(one["frames_missed"].get<int>(), 20);
    EXPECT_EQ(one["frames_written"].get<int>() + one["frames_missed"].get<int>(), 600);
    const int first = one["first_seq"];
    for (const auto& range : one["missed_seqs"])
      for (int q = range[0]; q < range[0].get<int>() + range[1].get<int>(); ++q)
        missing.insert({q - first, c, 0});
  }
  std::set<std::vector<int>> listed;
  for (const auto& m : d["sequence"]["missing"]) listed.insert(m.get<std::vector<int>>());
  EXPECT_EQ(listed, missing);
  ASSERT_EQ(d["planes"].size(), 1200u);
  for (const auto& p : d["planes"]) {
    if (missing.count({p[0].get<int>(), p[1].get<int>(), 0}))
      EXPECT_TRUE(p[3].is_null()) << "missed plane " << p << " is not zeros";
    else
      EXPECT_EQ(p[3], p[0]) << "plane " << p;
  }
}

// Streams of different formats cannot be channels of one image: refused before anything is
// written, in words that name both formats.
TEST(FbsaveStreamsChannels, StreamsOfDifferentFormatsAreRefused) {
  Broker b(two_cameras(32, 16));
  const std::string path = b.runtime_dir() + "/mixed.ome.zarr";
  auto r = run(
      fbsave_args(b, {"cam0", "cam1", "-o", path, "--frames", "10", "--start", "--as-channels"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cam0 is 64x48 Mono16"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cam1 is 32x16 Mono16"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path));
  // Without --as-channels the same streams are saved, one image each.
  r = run(fbsave_args(b, {"cam0", "cam1", "-o", path, "--frames", "10", "--start"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}
