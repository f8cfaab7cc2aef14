// fbreplay end to end: a real broker and sim camera, fbsave writes a dataset, fbreplay publishes
// it again, and fbsave (and the test itself, subscribed) records the replayed stream.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kCamera = {
    "--no-default-camera", "--camera",
    "sim:name=cam,Width=64,Height=48,Pattern=counter,FrameRate=200,slots=64,start=false"};

Result tool(const char* bin, Broker& b, std::vector<std::string> args,
            std::chrono::milliseconds t = 30s) {
  args.insert(args.begin(), bin);
  args.push_back("--socket");
  args.push_back(b.socket());
  return run(args, t);
}

std::unique_ptr<Process> tool_async(const char* bin, Broker& b, std::vector<std::string> args,
                                    const std::string& log) {
  args.insert(args.begin(), bin);
  args.push_back("--socket");
  args.push_back(b.socket());
  return std::make_unique<Process>(args, b.runtime_dir() + "/" + log);
}

std::vector<std::string> format_args(const std::string& format) {
  if (format == "zarr") return {"--compress", "lz4", "--chunk-frames", "8"};  // a partial chunk
  return {};
}

// Records `frames` frames of the sim camera with fbsave.
std::string record(Broker& b, const std::string& format, const std::string& name, int frames) {
  const std::string path = b.runtime_dir() + "/" + name;
  std::vector<std::string> args = {"cam",    "-o", path, "--frames", std::to_string(frames),
                                   "--start"};
  for (auto& a : format_args(format)) args.push_back(a);
  const auto r = tool(FB_FBSAVE_BIN, b, args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

// Reads both datasets with third-party readers (zarr, tifffile, numpy) and compares them.
const char* kCompare = R"PY(
import json, sys, numpy
def load(fmt, path):
    if fmt == "zarr":
        import zarr
        g = zarr.open_group(path, mode="r")
        fr = g.attrs.asdict()["framebroker"]["frames"]
        return numpy.asarray(g["0"][:]), fr["camera_frame_id"], fr.get("source_seq")
    if fmt == "tiff":
        import tifffile
        data = tifffile.imread(path)
        if data.ndim == 2: data = data[numpy.newaxis]
        lines = [json.loads(l) for l in open(path + ".frames.jsonl") if l.strip()]
    else:
        meta = json.load(open(path + "/meta.json"))
        lines = [json.loads(l) for l in open(path + "/index.jsonl") if l.strip()]
        data = numpy.fromfile(path + "/frames.raw", dtype=numpy.dtype(meta["dtype"]))
        data = data.reshape(len(lines), meta["height"], meta["width"])
    src = [l["source_seq"] for l in lines] if lines and "source_seq" in lines[0] else None
    return data, [l["camera_frame_id"] for l in lines], src
a, b = load(sys.argv[1], sys.argv[2]), load(sys.argv[1], sys.argv[3])
print(json.dumps({"frames": [int(a[0].shape[0]), int(b[0].shape[0])],
                  "identical": a[0].shape == b[0].shape and bool(numpy.array_equal(a[0], b[0])),
                  "ids": [a[1], b[1]], "source_seq": b[2]}))
)PY";

json compare(Broker& b, const std::string& format, const std::string& x, const std::string& y) {
  const std::string script = b.runtime_dir() + "/compare.py";
  std::ofstream(script) << kCompare;
  const auto r = run({"/usr/bin/python3", script, format, x, y});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json{};
}

json read_back(const std::string& format, const std::string& path) {
  auto r = run({"/usr/bin/python3",
                std::string(FB_SOURCE_DIR) + "/tests/integration/check_dataset.py", format, path});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json{};
}

bool has_stream(const json& status, const std::string& name) {
  for (const auto& s : status["streams"])
    if (s["name"] == name) return true;
  return false;
}

class ReplayFormats : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

}  // namespace

TEST_P(ReplayFormats, ReplayedStreamSavesPixelIdenticalWithItsProvenance) {
  const auto& [format, name] = GetParam();
  constexpr int kFrames = 20;
  Broker b(kCamera);
  const std::string original = record(b, format, "orig" + name, kFrames);
  const json orig = read_back(format, original);
  ASSERT_EQ(orig["frames"], kFrames);

  // fbreplay advertises, then waits for fbsave and for this test to subscribe.
  auto replay =
      tool_async(FB_FBREPLAY_BIN, b,
                 {original, "--as", "replayed", "--wait-subscribers", "2", "--json"}, "fbreplay");
  ASSERT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "replayed"); }))
      << replay->err();
  const std::string copy = b.runtime_dir() + "/copy" + name;
  std::vector<std::string> save_args = {"replayed", "-o", copy, "--frames", std::to_string(kFrames),
                                        "--json"};
  for (auto& a : format_args(format)) save_args.push_back(a);
  auto saver = tool_async(FB_FBSAVE_BIN, b, save_args, "fbsave");
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("replayed", {.mode = framebroker::Mode::Every});

  std::vector<int64_t> source_seqs;
  std::vector<uint64_t> ids;
  while (auto f = sub.next(10s)) {
    EXPECT_EQ(f->seq(), source_seqs.size());
    ASSERT_NE(f->meta().source_stream(), nullptr);
    EXPECT_EQ(f->meta().source_stream()->str(), "cam");
    source_seqs.push_back(f->meta().source_seq());
    ids.push_back(f->camera_frame_id());
  }
  EXPECT_TRUE(sub.ended()) << "the stream did not end after the last frame";
  ASSERT_EQ(source_seqs.size(), size_t(kFrames));
  for (int i = 0; i < kFrames; ++i) {
    EXPECT_EQ(source_seqs[i], orig["seqs"][i].get<int64_t>()) << i;
  }

  auto st = replay->wait(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 0) << replay->err();
  const json rs = json::parse(replay->out());
  EXPECT_EQ(rs["published"], kFrames);
  EXPECT_EQ(rs["format"], format);
  st = saver->wait(30s);
  ASSERT_TRUE(st.has_value());
  ASSERT_EQ(WEXITSTATUS(*st), 0) << saver->err();
  const json ss = json::parse(saver->out());
  EXPECT_EQ(ss["frames_written"], kFrames);
  EXPECT_EQ(ss["frames_missed"], 0);

  const json c = compare(b, format, original, copy);
  EXPECT_EQ(c["frames"], json::array({kFrames, kFrames}));
  EXPECT_EQ(c["identical"], true) << "the replayed dataset's pixels differ";
  EXPECT_EQ(c["ids"][0], c["ids"][1]) << "camera_frame_id did not pass through";
  for (int i = 0; i < kFrames; ++i) EXPECT_EQ(ids[i], c["ids"][0][i].get<uint64_t>()) << i;
  if (!c["source_seq"].is_null()) {  // an fbsave that saves provenance
    EXPECT_EQ(c["source_seq"], orig["seqs"]);
  }
  const json copy_check = read_back(format, copy);
  EXPECT_EQ(copy_check["bad_frames"], 0);
}

INSTANTIATE_TEST_SUITE_P(All, ReplayFormats,
                         ::testing::Values(std::make_pair("zarr", ".ome.zarr"),
                                           std::make_pair("tiff", ".ome.tif"),
                                           std::make_pair("raw", ".raw")),
                         [](const auto& info) { return info.param.first; });

TEST(Replay, FpsPacesTheFramesAndAsRecordedPublishesThemAll) {
  Broker b(kCamera);
  const std::string ds = record(b, "raw", "ten.raw", 10);
  // 10 frames at 20 fps: 9 intervals of 50 ms after the first frame.
  const auto t0 = std::chrono::steady_clock::now();
  auto r = tool(FB_FBREPLAY_BIN, b, {ds, "--as", "paced", "--fps", "20", "--json"});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["published"], 10);
  EXPECT_GE(s, 0.3);

  r = tool(FB_FBREPLAY_BIN, b, {ds, "--as", "recorded", "--as-recorded", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["published"], 10);
}

TEST(Replay, LoopPublishesMoreFramesThanTheDatasetHolds) {
  Broker b(kCamera);
  const std::string ds = record(b, "tiff", "five.ome.tif", 5);
  const json orig = read_back("tiff", ds);
  auto replay = tool_async(FB_FBREPLAY_BIN, b,
                           {ds, "--as", "looped", "--loop", "--wait-subscribers", "1"}, "fbreplay");
  ASSERT_TRUE(b.wait_status([](const json& s) { return has_stream(s, "looped"); }))
      << replay->err();
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("looped", {.mode = framebroker::Mode::Every});
  for (uint64_t i = 0; i < 13; ++i) {
    auto f = sub.next(10s);
    ASSERT_TRUE(f) << "frame " << i << " never came";
    EXPECT_EQ(f->seq(), i);  // seq keeps increasing across passes
    EXPECT_EQ(f->meta().source_seq(), orig["seqs"][i % 5].get<int64_t>()) << i;
  }
  replay->signal(SIGINT);
  auto st = replay->wait(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 0) << replay->err();
  while (sub.next(10s)) {
  }
  EXPECT_TRUE(sub.ended());
}

TEST(Replay, ErrorsNameTheDatasetAndExitNonZero) {
  Broker b(kCamera);
  const std::string dir = b.runtime_dir();
  // A dataset that does not exist.
  auto r = tool(FB_FBREPLAY_BIN, b, {dir + "/nope.ome.zarr", "--as", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir + "/nope.ome.zarr"), std::string::npos) << r.err;
  // A directory that is no dataset, and a file that is no TIFF.
  fs::create_directory(dir + "/empty");
  r = tool(FB_FBREPLAY_BIN, b, {dir + "/empty", "--as", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir + "/empty is not a dataset fbsave wrote"), std::string::npos) << r.err;
  std::ofstream(dir + "/notes.txt") << "not a dataset\n";
  r = tool(FB_FBREPLAY_BIN, b, {dir + "/notes.txt", "--as", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir + "/notes.txt"), std::string::npos) << r.err;
  // A corrupt dataset: metadata that does not parse, a chunk gone.
  const std::string raw = record(b, "raw", "bad.raw", 3);
  std::ofstream(raw + "/meta.json") << "{\"format\": \"framebroker.fbsave.raw\", ";
  r = tool(FB_FBREPLAY_BIN, b, {raw, "--as", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(raw + "/meta.json"), std::string::npos) << r.err;
  const std::string zarr = record(b, "zarr", "bad.zarr", 10);
  fs::remove(zarr + "/0/1.0.0");
  r = tool(FB_FBREPLAY_BIN, b, {zarr, "--as", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(zarr + "/0/1.0.0"), std::string::npos) << r.err;
  // No broker.
  const std::string good = record(b, "raw", "good.raw", 2);
  r = run({FB_FBREPLAY_BIN, good, "--as", "x", "--socket", dir + "/none.sock"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("not running"), std::string::npos) << r.err;
  // Usage, and the help with an example.
  r = run({FB_FBREPLAY_BIN, good});
  EXPECT_EQ(r.exit_code, 2);
  r = run({FB_FBREPLAY_BIN, good, "--as", "x", "--fps", "5", "--as-recorded"});
  EXPECT_EQ(r.exit_code, 2);
  r = run({FB_FBREPLAY_BIN, "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("fbreplay run1.ome.zarr --as replay0 --fps 30"), std::string::npos);
}
