// fbproc end to end: a real broker with a counter camera, real fbproc processes in a chain, the
// real fbsave at its end, and the saved dataset read back with python3-zarr and checked against
// the ops computed with numpy (tests/integration/check_chain.py).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

constexpr int kWidth = 64, kHeight = 48;

std::vector<std::string> camera(int slots, int fps = 200) {
  return {"--no-default-camera", "--camera",
          "sim:name=cam,Width=" + std::to_string(kWidth) + ",Height=" + std::to_string(kHeight) +
              ",Pattern=counter,FrameRate=" + std::to_string(fps) +
              ",slots=" + std::to_string(slots) + ",start=false"};
}

std::vector<std::string> with_socket(Broker& b, std::vector<std::string> argv) {
  argv.push_back("--socket");
  argv.push_back(b.socket());
  return argv;
}

std::unique_ptr<Process> fbproc(Broker& b, const std::string& from, const std::string& to,
                                const std::string& op) {
  return std::make_unique<Process>(
      with_socket(b, {FB_FBPROC_BIN, "--from", from, "--to", to, "--op", op}),
      b.runtime_dir() + "/fbproc-" + to);
}

const json* find_stream(const json& status, const std::string& name) {
  for (const auto& s : status["streams"])
    if (s["name"] == name) return &s;
  return nullptr;
}

bool subscribed(const json& status, const std::string& stream) {
  for (const auto& s : status["subscribers"])
    if (s["stream"] == stream) return true;
  return false;
}

json check_chain(const std::string& path, std::vector<std::string> ops) {
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   std::string(FB_SOURCE_DIR) + "/tests/integration/check_chain.py",
                                   path, std::to_string(kWidth), std::to_string(kHeight)};
  argv.insert(argv.end(), ops.begin(), ops.end());
  auto r = run(argv, 60s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json{{"frames", -1}};
}

// Exit code of a process that must end by itself within `t`.
int exit_code(Process& p, std::chrono::milliseconds t = 20s) {
  auto st = p.wait(t);
  if (!st) return -1;
  return WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
}

}  // namespace

// sim(counter) -> fbproc roi -> fbproc bin=2 -> fbsave: every saved frame is the ops applied to
// its camera frame; a pause of the first fbproc shows as a gap in source_seq at the end of the
// chain, while the chain itself loses nothing (the saved seqs are contiguous).
TEST(Fbproc, ChainSavesTheOpsOfEveryFrameAndShowsUpstreamLossAsAGap) {
  Broker b(camera(16));
  auto roi = fbproc(b, "cam", "cam.roi", "roi=8,4,32,24");
  ASSERT_TRUE(b.wait_status([](const json& s) { return find_stream(s, "cam.roi") != nullptr; }))
      << roi->err();
  auto bin = fbproc(b, "cam.roi", "cam.bin", "bin=2");
  ASSERT_TRUE(b.wait_status([](const json& s) { return find_stream(s, "cam.bin") != nullptr; }))
      << bin->err();
  const std::string out = b.runtime_dir() + "/chain.ome.zarr";
  Process save(with_socket(b, {FB_FBSAVE_BIN, "cam.bin", "-o", out, "--frames", "300"}),
               b.runtime_dir() + "/fbsave");
  ASSERT_TRUE(b.wait_status([](const json& s) { return subscribed(s, "cam.bin"); }));

  // The output streams are there before any frame, with their format and producer.
  const json before = b.status();
  const json* bin_stream = find_stream(before, "cam.bin");
  ASSERT_NE(bin_stream, nullptr);
  EXPECT_EQ((*bin_stream)["width"], 16);
  EXPECT_EQ((*bin_stream)["height"], 12);
  EXPECT_EQ((*bin_stream)["published"], 0);
  EXPECT_EQ((*bin_stream)["producer"]["kind"], "client");
  EXPECT_EQ((*bin_stream)["producer"]["pid"], bin->pid());
  EXPECT_EQ((*bin_stream)["state"], "live");

  ASSERT_EQ(b.fbctl({"start", "cam"}).exit_code, 0);
  std::this_thread::sleep_for(300ms);
  roi->signal(SIGSTOP);  // the camera's ring fills behind it: the camera drops frames
  // Frames fbproc could not take: the camera dropped them, or its every-subscription (at its
  // max_hold) missed them.
  auto upstream_lost = [](const json& s) {
    uint64_t lost = stream_of(s, "cam")["dropped"];
    for (const auto& sub : subscribers(s))
      if (sub["stream"] == "cam") lost += sub["missed"].get<uint64_t>();
    return lost;
  };
  ASSERT_TRUE(b.wait_status([&](const json& s) { return upstream_lost(s) > 0; }, 20s));
  roi->signal(SIGCONT);
  ASSERT_EQ(exit_code(save, 60s), 0) << save.err();
  ASSERT_EQ(b.fbctl({"stop", "cam"}).exit_code, 0);

  const json status = b.status();
  const uint64_t lost = upstream_lost(status);
  EXPECT_EQ(stream_of(status, "cam.roi")["dropped"], 0);
  EXPECT_EQ(stream_of(status, "cam.bin")["dropped"], 0);

  const json d = check_chain(out, {"roi=8,4,32,24", "bin=2"});
  EXPECT_EQ(d["frames"], 300);
  EXPECT_EQ(d["bad_frames"], 0);
  EXPECT_TRUE(d["missed"].empty()) << d["missed"];
  EXPECT_EQ(d["source_stream"], "cam");
  ASSERT_EQ(d["source_seqs"].size(), 300u);
  uint64_t gaps = 0;
  for (size_t i = 1; i < d["seqs"].size(); ++i) {
    EXPECT_EQ(d["seqs"][i].get<uint64_t>(), d["seqs"][i - 1].get<uint64_t>() + 1);
    const int64_t step =
        d["source_seqs"][i].get<int64_t>() - d["source_seqs"][i - 1].get<int64_t>();
    EXPECT_GE(step, 1);
    gaps += uint64_t(step - 1);
  }
  EXPECT_GT(gaps, 0u) << "the pause of fbproc left no gap in source_seq";
  EXPECT_LE(gaps, lost);

  // The end of the source ends the chain: roi's stream ends, bin sees it and exits by itself.
  roi->signal(SIGTERM);
  EXPECT_EQ(exit_code(*roi), 0) << roi->err();
  EXPECT_EQ(exit_code(*bin), 0) << bin->err();
  EXPECT_NE(bin->err().find("the source ended"), std::string::npos) << bin->err();
}

// max-project=K and mean=K make one frame of K, from the K camera frames that follow the one
// the output frame names; the chain output ends when its publisher does.
TEST(Fbproc, ProjectionsOverKFrames) {
  Broker b(camera(64, 100));
  auto mip = fbproc(b, "cam", "cam.mip", "max-project=4");
  auto mean = fbproc(b, "cam", "cam.mean", "mean=3");
  ASSERT_TRUE(b.wait_status([](const json& s) {
    return find_stream(s, "cam.mip") != nullptr && find_stream(s, "cam.mean") != nullptr;
  }));
  const std::string mip_out = b.runtime_dir() + "/mip.ome.zarr";
  const std::string mean_out = b.runtime_dir() + "/mean.ome.zarr";
  Process save_mip(with_socket(b, {FB_FBSAVE_BIN, "cam.mip", "-o", mip_out, "--frames", "20"}),
                   b.runtime_dir() + "/fbsave-mip");
  Process save_mean(with_socket(b, {FB_FBSAVE_BIN, "cam.mean", "-o", mean_out, "--frames", "20"}),
                    b.runtime_dir() + "/fbsave-mean");
  ASSERT_TRUE(b.wait_status(
      [](const json& s) { return subscribed(s, "cam.mip") && subscribed(s, "cam.mean"); }));
  ASSERT_EQ(b.fbctl({"start", "cam"}).exit_code, 0);
  ASSERT_EQ(exit_code(save_mip, 60s), 0) << save_mip.err();
  ASSERT_EQ(exit_code(save_mean, 60s), 0) << save_mean.err();
  ASSERT_EQ(b.fbctl({"stop", "cam"}).exit_code, 0);
  ASSERT_EQ(stream_of(b.status(), "cam")["dropped"], 0) << "the test needs a lossless run";

  for (const auto& [path, op, k] :
       {std::tuple{mip_out, "max-project=4", 4}, std::tuple{mean_out, "mean=3", 3}}) {
    const json d = check_chain(path, {op});
    EXPECT_EQ(d["frames"], 20) << op;
    EXPECT_EQ(d["bad_frames"], 0) << op;
    for (size_t i = 1; i < d["source_seqs"].size(); ++i)
      EXPECT_EQ(d["source_seqs"][i].get<int64_t>() - d["source_seqs"][i - 1].get<int64_t>(), k)
          << op;
  }
  mip->signal(SIGTERM);
  mean->signal(SIGTERM);
  EXPECT_EQ(exit_code(*mip), 0) << mip->err();
  EXPECT_EQ(exit_code(*mean), 0) << mean->err();
  // A stopped publisher leaves its stream ended (until its last holder lets go).
  EXPECT_TRUE(b.wait_status([](const json& s) {
    const json* m = find_stream(s, "cam.mip");
    return m == nullptr || (*m)["state"] == "ended";
  }));
}

// Bad ops and names get a clear error and exit 1 (2 for usage); the broker keeps serving.
TEST(Fbproc, RefusesBadOpsNamesAndMissingStreams) {
  Broker b(camera(16));
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--from", "cam", "--to", "x", "--op", "bin=0"}, 1, "N must be 1 to 48"},
      {{"--from", "cam", "--to", "x", "--op", "roi=60,0,10,10"}, 1, "inside the 64x48 input"},
      {{"--from", "cam", "--to", "x", "--op", "blur=3"}, 1, "unknown --op 'blur=3'"},
      {{"--from", "cam", "--to", "x", "--op", "mean=k"}, 1, "K must be a whole number"},
      {{"--from", "nope", "--to", "x", "--op", "copy"}, 1, "no stream named 'nope'"},
      {{"--from", "cam", "--to", "cam", "--op", "copy"}, 1, "cam"},
      {{"--from", "cam", "--to", "bad/name", "--op", "copy"}, 1, "is not valid"},
      {{"--from", "cam", "--op", "copy"}, 2, "--to is required"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {FB_FBPROC_BIN};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const Result r = run(with_socket(b, argv));
    EXPECT_EQ(r.exit_code, c.code) << c.args.back() << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  const Result missing = run({FB_FBPROC_BIN, "--from", "cam", "--to", "x", "--op", "copy",
                              "--socket", b.runtime_dir() + "/nothing.sock"});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_NE(missing.err.find("nothing.sock"), std::string::npos) << missing.err;
  EXPECT_EQ(b.status()["streams"].size(), 1u);
}

// max_publish_mb: a ring larger than the limit is refused with the limit in the message.
TEST(Fbproc, RingLargerThanTheLimitIsRefused) {
  auto args = camera(16);
  args.insert(args.end(), {"--max-publish-mb", "1"});
  Broker b(args);
  // 64x48 Mono16 is 6 KiB a frame: 200 slots is more than 1 MiB.
  const Result r = run(with_socket(
      b, {FB_FBPROC_BIN, "--from", "cam", "--to", "big", "--op", "copy", "--slots", "200"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("1 MiB"), std::string::npos) << r.err;
  const Result ok = run(with_socket(b, {FB_FBPROC_BIN, "--from", "cam", "--to", "small", "--op",
                                        "copy", "--slots", "16", "--quiet"}),
                        2s);
  EXPECT_EQ(ok.exit_code, -1) << "a ring under the limit is accepted (fbproc runs on): " << ok.err;
}
