// fbsave's Zarr v3 / OME-NGFF 0.5 output end to end: a real broker with the sim counter camera,
// the real fbsave, and a reader nobody here wrote: zarrita (npm, pinned in tests/package.json,
// installed into tests/node_modules by tools/install-deps.sh) under Debian's node, through
// tests/integration/check_zarr3.mjs, which checks every frame pixel-exact and in order.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> camera(const std::string& pixel_type, int fps, int slots) {
  return {"--no-default-camera", "--camera",
          "sim:name=cam,Width=128,Height=96,Pattern=counter,PixelType=" + pixel_type +
              ",FrameRate=" + std::to_string(fps) + ",slots=" + std::to_string(slots) +
              ",start=false"};
}

Result fbsave(Broker& b, std::vector<std::string> args) {
  args.insert(args.begin(), FB_FBSAVE_BIN);
  args.insert(args.end(), {"--socket", b.socket()});
  return run(args, 60s);
}

std::unique_ptr<Process> fbsave_async(Broker& b, std::vector<std::string> args) {
  args.insert(args.begin(), FB_FBSAVE_BIN);
  args.insert(args.end(), {"--socket", b.socket()});
  return std::make_unique<Process>(args, b.runtime_dir() + "/fbsave");
}

// What zarrita reads (see check_zarr3.mjs for the fields).
json read_back(const std::string& path) {
  const std::string script = std::string(FB_SOURCE_DIR) + "/tests/integration/check_zarr3.mjs";
  if (!fs::exists(std::string(FB_SOURCE_DIR) + "/tests/node_modules/zarrita")) {
    ADD_FAILURE() << "zarrita is not installed: run tools/install-deps.sh (npm ci --prefix tests)";
    return json{{"frames", -1}};
  }
  auto r = run({"/usr/bin/node", script, path}, 60s);  // Debian's nodejs
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json{{"frames", -1}};
}

// The dataset is whole and NGFF 0.5: its frames are those listed, each the counter frame of its
// camera frame id, and every seq from the first is a frame or listed missed.
void expect_whole(const json& d, size_t frames, const std::string& what) {
  EXPECT_EQ(d["frames"], frames) << what;
  EXPECT_EQ(d["shape"][0], frames) << what;
  EXPECT_EQ(d["bad_frames"], 0) << what;
  EXPECT_EQ(d["seqs"].size(), frames) << what;
  EXPECT_TRUE(d["ngff_errors"].empty()) << what << ": " << d["ngff_errors"];
  std::set<uint64_t> seen;
  for (const auto& s : d["seqs"]) seen.insert(s.get<uint64_t>());
  for (const auto& s : d["missed"]) seen.insert(s.get<uint64_t>());
  EXPECT_EQ(seen.size(), d["seqs"].size() + d["missed"].size()) << what << ": a seq twice";
  if (!seen.empty()) {
    EXPECT_EQ(*seen.rbegin() - *seen.begin() + 1, seen.size()) << what;
  }
}

struct Case {
  std::string name, pixel_type;
  std::vector<std::string> args;
  uint64_t frames;
  json codecs, chunks;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class FbsaveZarr3 : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(FbsaveZarr3, ZarritaReadsEveryCounterFramePixelExact) {
  const Case& c = GetParam();
  Broker b(camera(c.pixel_type, 500, 256));
  const std::string path = b.runtime_dir() + "/run.ome.zarr";
  std::vector<std::string> args = {"cam", "-o", path};
  args.insert(args.end(), c.args.begin(), c.args.end());
  args.insert(args.end(), {"--frames", std::to_string(c.frames), "--start", "--json"});
  const auto r = fbsave(b, args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["format"], "zarr3");
  EXPECT_EQ(summary["frames_written"], c.frames);
  EXPECT_EQ(summary["frames_missed"], 0);
  EXPECT_TRUE(fs::exists(path + "/zarr.json"));
  EXPECT_FALSE(fs::exists(path + "/.zgroup"));

  const json d = read_back(path);
  expect_whole(d, c.frames, c.name);
  EXPECT_TRUE(d["missed"].empty());
  EXPECT_EQ(d["complete"], true);
  EXPECT_EQ(d["dtype"], c.pixel_type == "Mono8" ? "uint8" : "uint16");
  EXPECT_EQ(d["codecs"], c.codecs);
  EXPECT_EQ(d["chunks"], c.chunks);
}

INSTANTIATE_TEST_SUITE_P(
    All, FbsaveZarr3,
    ::testing::Values(
        // The command, checked by name: --format zarr3 --frames N --compress lz4.
        Case{"lz4",
             "Mono16",
             {"--format", "zarr3", "--compress", "lz4"},
             300,
             {"sharding_indexed", "bytes", "blosc"},
             {1, 96, 128}},
        // Shards of 64 frames, the last one partial (its inner chunks past the end absent).
        Case{"none",
             "Mono16",
             {"--format", "zarr3", "--compress", "none", "--shard-frames", "64"},
             300,
             {"sharding_indexed", "bytes"},
             {1, 96, 128}},
        Case{"zstd",
             "Mono16",
             {"--format", "zarr3", "--compress", "zstd", "--shard-frames", "64"},
             300,
             {"sharding_indexed", "bytes", "zstd"},
             {1, 96, 128}},
        // Unsharded: a file per chunk; 4 frames a chunk, the last one partial.
        Case{"none_unsharded",
             "Mono16",
             {"--format", "zarr3", "--shard-frames", "0", "--chunk-frames", "4"},
             301,
             {"bytes"},
             {4, 96, 128}},
        Case{"lz4_unsharded",
             "Mono16",
             {"--format", "zarr3", "--compress", "lz4", "--shard-frames", "0"},
             150,
             {"bytes", "blosc"},
             {1, 96, 128}},
        Case{"zstd_unsharded",
             "Mono16",
             {"--format", "zarr3", "--compress", "zstd", "--shard-frames", "0"},
             150,
             {"bytes", "zstd"},
             {1, 96, 128}},
        // Tiles of 48 x 48 (the right and bottom ones padded), Mono8, through --zarr-version 3.
        Case{"lz4_tiles_mono8",
             "Mono8",
             {"--zarr-version", "3", "--compress", "lz4", "--tile", "48", "--shard-frames", "16"},
             301,
             {"sharding_indexed", "bytes", "blosc"},
             {1, 48, 48}},
        Case{"none_tiles",
             "Mono16",
             {"--format", "zarr3", "--tile", "40", "--shard-frames", "8"},
             100,
             {"sharding_indexed", "bytes"},
             {1, 40, 40}}),
    [](const auto& info) { return info.param.name; });

TEST(FbsaveZarr3Sequences, ASequenceIsTczyxWithEveryPlaneAtItsIndex) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=64,Height=48,Pattern=counter,FrameRate=200,slots=256,start=false"});
  const std::string path = b.runtime_dir() + "/stack.ome.zarr";
  auto saver = fbsave_async(
      b, {"cam", "-o", path, "--format", "zarr3", "--compress", "lz4", "--frames", "24", "--json"});
  ASSERT_TRUE(b.wait_status([&](const json& s) { return !subscribers(s, saver->pid()).empty(); }))
      << saver->err();
  const auto started =
      b.fbctl({"start", "cam", "--frames", "24", "--axes", "t=3,c=2,z=4", "--order", "tcz"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const auto st = saver->wait(30s);
  ASSERT_TRUE(st.has_value());
  ASSERT_EQ(WEXITSTATUS(*st), 0) << saver->err();
  EXPECT_EQ(json::parse(saver->out())["frames_written"], 24);

  const json d = read_back(path);  // each frame read at its [t, c, z]
  EXPECT_EQ(d["frames"], 24);
  EXPECT_EQ(d["bad_frames"], 0);
  EXPECT_EQ(d["shape"], json({3, 2, 4, 48, 64}));
  EXPECT_TRUE(d["ngff_errors"].empty()) << d["ngff_errors"];
  const json group = json::parse(std::ifstream(path + "/zarr.json"));
  const json& ome = group["attributes"]["ome"];
  EXPECT_EQ(ome["omero"]["channels"].size(), 2u);
  EXPECT_FALSE(ome["omero"].contains("version"));
  EXPECT_EQ(ome["multiscales"][0]["axes"].size(), 5u);
  EXPECT_EQ(group["attributes"]["framebroker"]["sequence"]["planes_written"], 24);
}

TEST(FbsaveZarr3, Kill9LeavesWholeShardsThatMatchTheIndex) {
  Broker b(camera("Mono16", 300, 64));
  const std::string path = b.runtime_dir() + "/k.ome.zarr";
  auto saver = fbsave_async(b, {"cam", "-o", path, "--format", "zarr3", "--compress", "lz4",
                                "--shard-frames", "32", "--start"});
  // Past the first checkpoint (every 2 s).
  std::this_thread::sleep_for(3500ms);
  saver->signal(SIGKILL);
  saver->wait(10s);
  const json d = read_back(path);
  const size_t frames = d["frames"].get<size_t>();
  EXPECT_GT(frames, 200u);
  EXPECT_EQ(frames % 32, 0u) << "not whole shards";
  expect_whole(d, frames, "killed");
  EXPECT_EQ(d["complete"], false);
}

TEST(FbsaveZarr3, AFullDiskIsReportedAndTheDatasetStaysReadable) {
  Broker b(camera("Mono16", 500, 256));
  const std::string mnt = b.runtime_dir() + "/small";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here: " << strerror(errno);
  const std::string path = mnt + "/full.ome.zarr";
  auto r = fbsave(b, {"cam", "-o", path, "--format", "zarr3", "--frames", "1000", "--start",
                      "--shard-frames", "8"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  const json d = read_back(path);
  EXPECT_GT(d["frames"].get<int>(), 0);
  expect_whole(d, d["frames"].get<size_t>(), "full disk");
  ::umount(mnt.c_str());
}

TEST(FbsaveZarr3, OptionErrorsAreClear) {
  Broker b(camera("Mono16", 500, 256));
  const std::string dir = b.runtime_dir();
  // Shards and tiles are Zarr v3's.
  auto r = fbsave(b, {"cam", "-o", dir + "/a.ome.zarr", "--frames", "5", "--tile", "32"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--format zarr3"), std::string::npos) << r.err;
  // Tiles live in shards.
  r = fbsave(b, {"cam", "-o", dir + "/b.ome.zarr", "--format", "zarr3", "--frames", "5", "--tile",
                 "32", "--shard-frames", "0", "--start"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--shard-frames"), std::string::npos) << r.err;
  // A shard holds whole chunks.
  r = fbsave(b, {"cam", "-o", dir + "/c.ome.zarr", "--format", "zarr3", "--frames", "5",
                 "--chunk-frames", "4", "--shard-frames", "6", "--start"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("multiple of --chunk-frames 4"), std::string::npos) << r.err;
}
