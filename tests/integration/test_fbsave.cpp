// fbsave end to end: a real broker, the real saver, and third-party readers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <filesystem>
#include <set>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// 256 slots: half a second of slack for a saver on a busy CI machine.
const std::vector<std::string> kCamera = {
    "--no-default-camera", "--camera",
    "sim:name=cam,Width=128,Height=96,Pattern=counter,FrameRate=500,slots=256,start=false"};

Result fbsave(Broker& b, std::vector<std::string> args, std::chrono::milliseconds t = 60s) {
  args.insert(args.begin(), FB_FBSAVE_BIN);
  args.push_back("--socket");
  args.push_back(b.socket());
  return run(args, t);
}

std::unique_ptr<Process> fbsave_async(Broker& b, std::vector<std::string> args) {
  args.insert(args.begin(), FB_FBSAVE_BIN);
  args.push_back("--socket");
  args.push_back(b.socket());
  return std::make_unique<Process>(args, b.runtime_dir() + "/fbsave");
}

json read_back(const std::string& format, const std::string& path) {
  auto r = run({"/usr/bin/python3",
                std::string(FB_SOURCE_DIR) + "/tests/integration/check_dataset.py", format, path});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json{{"frames", -1}};
}

// Every seq from first to first + n - 1 is either a frame or listed as missed, once.
void expect_accounted(const json& d, uint64_t first, uint64_t n) {
  std::set<uint64_t> seen;
  for (const auto& s : d["seqs"])
    EXPECT_TRUE(seen.insert(s.get<uint64_t>()).second) << "twice: " << s;
  for (const auto& s : d["missed"])
    EXPECT_TRUE(seen.insert(s.get<uint64_t>()).second) << "twice: " << s;
  EXPECT_EQ(seen.size(), n);
  if (!seen.empty()) {
    EXPECT_EQ(*seen.begin(), first);
    EXPECT_EQ(*seen.rbegin(), first + n - 1);
  }
}

class FbsaveFormats : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

}  // namespace

TEST_P(FbsaveFormats, SavesEveryCounterFrameAndReadsBackExactly) {
  const auto& [format, name] = GetParam();
  Broker b(kCamera);
  const std::string path = b.runtime_dir() + "/" + name;
  std::vector<std::string> args = {"cam", "-o", path, "--frames", "1200", "--start", "--json"};
  if (format == "zarr") args.insert(args.end(), {"--compress", "lz4", "--chunk-frames", "32"});
  auto r = fbsave(b, args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["format"], format);
  EXPECT_EQ(summary["frames_written"], 1200);
  EXPECT_EQ(summary["frames_missed"], 0);

  const json d = read_back(format, path);
  EXPECT_EQ(d["frames"], 1200);
  EXPECT_EQ(d["bad_frames"], 0);
  EXPECT_EQ(d["dtype"], "uint16");
  EXPECT_TRUE(d["missed"].empty());
  expect_accounted(d, d["seqs"][0].get<uint64_t>(), 1200);
  EXPECT_EQ(d["complete"], true);
  // The camera was started for exactly this acquisition and stopped after it.
  EXPECT_TRUE(b.wait_status([](const json& s) { return s["cameras"][0]["running"] == false; }));
}

INSTANTIATE_TEST_SUITE_P(All, FbsaveFormats,
                         // Directory outputs given with a trailing slash, as shells complete them.
                         ::testing::Values(std::make_pair("zarr", "run.ome.zarr/"),
                                           std::make_pair("tiff", "run.ome.tif"),
                                           std::make_pair("raw", "run.raw/")),
                         [](const auto& info) { return info.param.first; });

TEST(Fbsave, AStalledSaverRecordsTheFramesItMissed) {
  Broker b(kCamera);
  const std::string path = b.runtime_dir() + "/stall.ome.zarr";
  auto saver = fbsave_async(b, {"cam", "-o", path, "--frames", "1500", "--start", "--json"});
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    auto subs = subscribers(s, saver->pid());
    return !subs.empty() && subs[0]["delivered"].get<int>() > 200;
  }));
  saver->signal(SIGSTOP);  // a saver that cannot keep up, the hard way
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    return subscribers(s, saver->pid()).at(0)["missed"].get<int>() > 100;
  }));
  saver->signal(SIGCONT);
  auto st = saver->wait(60s);
  ASSERT_TRUE(st.has_value());
  ASSERT_EQ(WEXITSTATUS(*st), 0) << saver->err();
  const json summary = json::parse(saver->out());
  EXPECT_GT(summary["frames_missed"].get<int>(), 100);
  EXPECT_EQ(summary["frames_written"].get<int>() + summary["frames_missed"].get<int>(), 1500);

  const json d = read_back("zarr", path);
  EXPECT_EQ(d["bad_frames"], 0);
  EXPECT_EQ(d["missed"].size(), summary["frames_missed"].get<size_t>());
  expect_accounted(d,
                   d["seqs"][0].get<uint64_t>() <= d["missed"][0].get<uint64_t>()
                       ? d["seqs"][0].get<uint64_t>()
                       : d["missed"][0].get<uint64_t>(),
                   1500);
}

TEST(Fbsave, Kill9MidRunLeavesAReadableDataset) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=128,Height=96,Pattern=counter,FrameRate=300,slots=64"});
  for (const auto& [format, name] : {std::pair{"zarr", "k.ome.zarr"}, std::pair{"raw", "k.raw"},
                                     std::pair{"tiff", "k.ome.tif"}}) {
    const std::string path = b.runtime_dir() + "/" + name;
    auto saver = fbsave_async(b, {"cam", "-o", path, "--chunk-frames", "16"});
    // Past the first checkpoint (every 2 s).
    std::this_thread::sleep_for(3500ms);
    saver->signal(SIGKILL);
    saver->wait(10s);
    const json d = read_back(format, path);
    EXPECT_GT(d["frames"].get<int>(), 200) << format;
    EXPECT_EQ(d["bad_frames"], 0) << format;
    EXPECT_EQ(d["seqs"].size(), d["frames"].get<size_t>()) << format;
  }
}

TEST(Fbsave, SigintStopsFlushesAndExitsZero) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=128,Height=96,Pattern=counter,FrameRate=300,slots=64"});
  const std::string path = b.runtime_dir() + "/int.ome.zarr";
  auto saver = fbsave_async(b, {"cam", "-o", path, "--json", "--chunk-frames", "10"});
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    auto subs = subscribers(s, saver->pid());
    return !subs.empty() && subs[0]["delivered"].get<int>() > 100;
  }));
  saver->signal(SIGINT);
  auto st = saver->wait(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 0) << saver->err();
  const json summary = json::parse(saver->out());
  const json d = read_back("zarr", path);
  EXPECT_EQ(d["frames"], summary["frames_written"]);
  EXPECT_EQ(d["bad_frames"], 0);
  EXPECT_EQ(d["complete"], true);
}

TEST(Fbsave, ErrorsAreClearAndLeaveWhatWasWrittenReadable) {
  Broker b(kCamera);
  const std::string dir = b.runtime_dir();
  // An existing output is refused unless --overwrite.
  fs::create_directory(dir + "/exists.zarr");
  auto r = fbsave(b, {"cam", "-o", dir + "/exists.zarr", "--frames", "10", "--start"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already exists; pass --overwrite"), std::string::npos) << r.err;
  r = fbsave(b, {"cam", "-o", dir + "/exists.zarr", "--frames", "10", "--start", "--overwrite"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // An unwritable path.
  r = fbsave(b, {"cam", "-o", "/proc/nope/x.zarr", "--frames", "10"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/proc/nope"), std::string::npos) << r.err;
  // An unknown stream.
  r = fbsave(b, {"nope", "-o", dir + "/u.zarr", "--frames", "10"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no stream named 'nope'"), std::string::npos) << r.err;
  // No broker.
  r = run({FB_FBSAVE_BIN, "cam", "-o", dir + "/n.zarr", "--socket", dir + "/none.sock"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("not running"), std::string::npos) << r.err;
  // Usage.
  r = run({FB_FBSAVE_BIN, "cam"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST(Fbsave, AFullDiskIsReportedAndTheDatasetStaysReadable) {
  Broker b(kCamera);
  const std::string mnt = b.runtime_dir() + "/small";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here: " << strerror(errno);
  for (const auto& [format, name] : {std::pair{"raw", "full.raw"}, std::pair{"zarr", "full.zarr"},
                                     std::pair{"tiff", "full.tif"}}) {
    const std::string path = mnt + "/" + name;
    auto r = fbsave(b, {"cam", "-o", path, "--frames", "1000", "--start", "--chunk-frames", "8"});
    EXPECT_EQ(r.exit_code, 1) << format << ": " << r.err;
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << format << ": " << r.err;
    const json d = read_back(format, path);
    EXPECT_GE(d["frames"].get<int>(), 0) << format;
    EXPECT_EQ(d["bad_frames"], 0) << format;
    fs::remove_all(path);
  }
  ::umount(mnt.c_str());
}

TEST(Fbsave, ALostBrokerEndsTheSaveWithReadableData) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=128,Height=96,Pattern=counter,FrameRate=300,slots=64"});
  const std::string path = b.runtime_dir() + "/lost.ome.zarr";
  auto saver = fbsave_async(b, {"cam", "-o", path, "--chunk-frames", "8"});
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    auto subs = subscribers(s, saver->pid());
    return !subs.empty() && subs[0]["delivered"].get<int>() > 100;
  }));
  b.process().signal(SIGKILL);
  auto st = saver->wait(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 3) << saver->err();
  EXPECT_NE(saver->err().find("lost the broker"), std::string::npos) << saver->err();
  const json d = read_back("zarr", path);
  EXPECT_GT(d["frames"].get<int>(), 50);
  EXPECT_EQ(d["bad_frames"], 0);
  b.start({"--no-default-camera"});  // so that the harness stops a broker cleanly
}
