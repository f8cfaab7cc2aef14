// fbctl and sequences, through the real broker and the real fbctl: `fbctl start CAM --frames N
// --axes ... --order ...` (checked by name), --meta forwarded verbatim, clear refusals of bad
// input, and the sequence's progress in `fbctl status` and `fbctl watch`.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <regex>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using framebroker::SequenceSpec;
using nlohmann::json;

namespace {

struct Taken {
  int64_t position, t, c, z;
  uint64_t camera_frame_id;
  uint16_t pixel0;
};

// Takes frames until the sequence finishes.
std::vector<Taken> take_sequence(framebroker::Subscription& sub) {
  std::vector<Taken> got;
  for (int idle = 0; idle < 50 && !sub.sequence_end();) {
    auto f = sub.next(100ms);
    if (!f) {
      ++idle;
      continue;
    }
    uint16_t p0 = 0;
    std::memcpy(&p0, f->pixels().data(), 2);
    got.push_back({f->sequence_position(), f->index('t').value_or(-1), f->index('c').value_or(-1),
                   f->index('z').value_or(-1), f->camera_frame_id(), p0});
  }
  return got;
}

std::string write_file(const Broker& b, const std::string& name, const std::string& text) {
  const std::string path = b.runtime_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace

TEST(FbctlSequences, StartWithAxesRunsTheSequenceAndEveryFrameCarriesItsIndex) {
  Broker b(idle_counter_camera());
  auto client = connect_to(b);
  auto sub = client.subscribe("cam", {.mode = framebroker::Mode::Every, .max_hold = 32});
  const Result r =
      b.fbctl({"start", "cam", "--frames", "120", "--axes", "t=3,c=2,z=20", "--order", "tcz",
               "--channels", "488,561", "--z-step", "0.5", "--interval", "250"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const auto got = take_sequence(sub);
  ASSERT_TRUE(sub.sequence_end()) << "no SequenceFinished";
  const auto sq = sub.sequence();
  ASSERT_NE(sq, nullptr);
  SequenceSpec want = SequenceSpec::parse("t=3,c=2,z=20", "tcz");
  want.channels = {"488", "561"};
  want.z_step_um = 0.5;
  want.interval_ms = 250;
  EXPECT_EQ(sq->spec, want) << sq->spec.axes_text();
  EXPECT_EQ(sq->spec.frames(), 120u);
  const auto end = *sub.sequence_end();
  EXPECT_TRUE(end.complete);
  EXPECT_EQ(end.frames + end.missed, 120u);
  // What this subscriber missed itself (its max_hold was full: a slow machine) is not the
  // camera's; together they account for every frame.
  const auto me = subscribers(b.status());
  ASSERT_EQ(me.size(), 1u);
  EXPECT_EQ(got.size() + me[0]["missed"].get<size_t>(), end.frames);
  ASSERT_FALSE(got.empty());
  for (size_t i = 0; i < got.size(); ++i) {
    const Taken& g = got[i];
    if (i) EXPECT_GT(g.position, got[i - 1].position);
    EXPECT_EQ(g.t, g.position / 40) << "position " << g.position;
    EXPECT_EQ(g.c, g.position / 20 % 2) << "position " << g.position;
    EXPECT_EQ(g.z, g.position % 20) << "position " << g.position;
    EXPECT_EQ(g.pixel0, g.camera_frame_id % 65536) << "not a counter frame";
    // The camera counts frames from 0 at this start: frame k of the sequence is its k-th.
    EXPECT_EQ(int64_t(g.camera_frame_id), g.position);
  }
  if (end.missed + me[0]["missed"].get<uint64_t>() == 0) EXPECT_EQ(got.back().position, 119);

  const json seq = stream_of(b.status(), "cam")["sequence"];
  EXPECT_EQ(seq["id"], sq->id);
  EXPECT_EQ(seq["axes"], "t=3,c=2,z=20");
  EXPECT_EQ(seq["order"], "tcz");
  EXPECT_EQ(seq["channels"], json::parse(R"(["488", "561"])"));
  EXPECT_EQ(seq["positions"], 120);
  EXPECT_EQ(seq["complete"], true);
}

TEST(FbctlSequences, MetaFileReachesSubscribersVerbatimAndFramesDefaultToTheProduct) {
  Broker b(idle_counter_camera());
  // Odd spacing, key order and non-ASCII text: forwarded as written, not re-serialised.
  const std::string meta =
      "{\"z_plan\": {\"range\": 4.0, \"step\": 0.5},\n  \"axis_order\":\"tz\", "
      "\"note\": \"bead slide \xc3\xa9t\xc3\xa9\", \"channels\": []}\n";
  const std::string path = write_file(b, "mda.json", meta);
  auto client = connect_to(b);
  auto sub = client.subscribe("cam", {.mode = framebroker::Mode::Every, .max_hold = 32});
  const Result r = b.fbctl({"start", "cam", "--axes", "t=2,z=3", "--meta", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = take_sequence(sub);
  ASSERT_TRUE(sub.sequence_end());
  ASSERT_NE(sub.sequence(), nullptr);
  EXPECT_EQ(sub.sequence()->spec.metadata, meta);
  EXPECT_EQ(sub.sequence()->spec.order(), "tz");
  EXPECT_EQ(sub.sequence_end()->frames + sub.sequence_end()->missed, 6u)
      << "without --frames, the product of the axes";
  EXPECT_EQ(got.size(), sub.sequence_end()->frames);
}

TEST(FbctlSequences, BadInputGetsAClearErrorAndStartsNothing) {
  Broker b(idle_counter_camera());
  const std::string big = [] {
    std::string s = "{\"pad\": \"";
    s += std::string(SequenceSpec::kMaxMetadataBytes, 'x');
    return s + "\"}";
  }();
  const std::string too_big = write_file(b, "big.json", big);
  const std::string array = write_file(b, "array.json", "[1, 2, 3]\n");
  const std::string text = write_file(b, "text.json", "t=3 and so on\n");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--axes", "t=3,q=2"}, "unknown axis 'q'"},
      {{"--frames", "100", "--axes", "t=3,c=2,z=20", "--order", "tcz"},
       "--frames 100 does not match --axes t=3,c=2,z=20, which make 120 frames"},
      {{"--axes", "t=3,c=2", "--meta", too_big}, "the limit is 65536"},
      {{"--axes", "t=3,c=2", "--meta", array}, "holds a JSON array; it must be an object"},
      {{"--axes", "t=3,c=2", "--meta", text}, "is not valid JSON"},
      {{"--axes", "t=3,c=2", "--meta", b.runtime_dir() + "/missing.json"}, "missing.json"},
      {{"--axes", "t=3,z=2", "--order", "tc"}, "names axis 'c', which is not among the axes (tz)"},
      {{"--axes", "t=3,z=2", "--order", "t"}, "must name each of the axes"},
      {{"--order", "tcz"}, "--order describes a sequence: give its axes too"},
      {{"--axes", "t=3,c=2", "--channels", "488"}, "1 channel names for 2 channels"},
      {{"--axes", "t=0"}, "axis 't' has size 0"},
      {{"--axes", "t3"}, "is not LETTER=SIZE"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"start", "cam"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Result r = b.fbctl(args);
    EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << "wanted '" << c.message << "' in\n"
                                                        << r.err;
    EXPECT_EQ(r.err.rfind("fbctl: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
  const json st = stream_of(b.status(), "cam");
  EXPECT_EQ(st["published"], 0) << "a refused start started the camera";
  EXPECT_FALSE(st.contains("sequence")) << st.dump();
  // A file of exactly the limit is fine.
  const std::string at_limit =
      write_file(b, "limit.json", big.substr(0, SequenceSpec::kMaxMetadataBytes - 2) + "\"}");
  const Result ok = b.fbctl({"start", "cam", "--axes", "t=2", "--meta", at_limit});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  // --help shows a sequence example.
  const Result help = b.fbctl({"start", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--axes t=3,c=2,z=20 --order tcz"), std::string::npos) << help.out;
}

TEST(FbctlSequences, StatusShowsProgressOnEachAxisAndMissedFrames) {
  // Two subscribers that hold what they get and never read, the second joining once the first
  // filled its holds: between them they hold more than the ring, and the camera drops.
  Broker b(idle_counter_camera(100, 8));
  auto client = connect_to(b);
  auto stuck = client.subscribe("cam", {.mode = framebroker::Mode::Every, .max_hold = 6});
  ASSERT_EQ(b.fbctl({"start", "cam", "--axes", "t=5,z=20"}).exit_code, 0);
  ASSERT_TRUE(wait_held(b, 6));
  auto other = connect_to(b);
  auto stuck_too = other.subscribe("cam", {.mode = framebroker::Mode::Every, .max_hold = 6});
  ASSERT_TRUE(wait_sequence_over(b, "cam"));
  const json seq = stream_of(b.status(), "cam")["sequence"];
  const int missed = seq["missed"];
  EXPECT_GT(missed, 0) << seq.dump();
  EXPECT_EQ(seq["positions"], 100);
  EXPECT_EQ(seq["complete"], true) << "every position was used, some as misses";
  const Result text = b.fbctl({"status"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  const std::string t = "t " + std::to_string(seq["last_index"]["t"].get<int>() + 1) + "/5  z " +
                        std::to_string(seq["last_index"]["z"].get<int>() + 1) + "/20";
  EXPECT_NE(text.out.find("cam  sequence " + std::to_string(seq["id"].get<int>()) + ": " + t +
                          "  (100/100, " + std::to_string(missed) + " missed)  complete"),
            std::string::npos)
      << text.out;
  const Result streams = b.fbctl({"streams", "--json"});
  ASSERT_EQ(streams.exit_code, 0);
  EXPECT_EQ(json::parse(streams.out)[0]["sequence"], seq);
}

TEST(FbctlSequences, StatusAndWatchFollowARunningSequenceToItsEnd) {
  Broker b(idle_counter_camera(200, 32));
  auto watch = b.fbctl_async({"watch", "cam", "--duration", "6"});
  auto watch_json = b.fbctl_async({"watch", "cam", "--duration", "6", "--json"});
  ASSERT_TRUE(b.wait_status([](const json& s) { return s["subscribers"].size() == 2; }));
  ASSERT_EQ(b.fbctl({"start", "cam", "--axes", "t=200,c=3", "--channels", "a,b,c"}).exit_code, 0);
  ASSERT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["published"] > 30; }));
  const Result running = b.fbctl({"status"});
  static const std::regex progress(
      R"(cam  sequence 1: t (\d+)/200  c (\d)/3  \((\d+)/600, (\d+) missed\)  running)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(running.out, m, progress)) << running.out;
  EXPECT_GT(std::stoi(m[3]), 30);
  if (m[4] == "0") {  // the last position was a frame: its index is the progress
    EXPECT_EQ(std::stoi(m[1]), (std::stoi(m[3]) - 1) / 3 + 1) << m[0];
    EXPECT_EQ(std::stoi(m[2]), (std::stoi(m[3]) - 1) % 3 + 1) << m[0];
  }
  const json live = stream_of(b.status(), "cam")["sequence"];
  EXPECT_EQ(live["running"], true);
  EXPECT_EQ(live["complete"], false);

  ASSERT_TRUE(watch->wait(15s));
  const std::string out = watch->out();
  const json done = stream_of(b.status(), "cam")["sequence"];
  const std::string missed = std::to_string(done["missed"].get<int>());
  EXPECT_NE(
      out.find("cam: sequence 1 finished: complete, " +
               std::to_string(600 - done["missed"].get<int>()) + " frames, " + missed + " missed"),
      std::string::npos)
      << out;
  EXPECT_TRUE(std::regex_search(
      out,
      std::regex(R"(fps .*  sequence 1: t \d+/200  c \d/3  \(\d+/600, \d+ missed\)  running)")))
      << out;
  EXPECT_TRUE(
      std::regex_search(out, std::regex("cam: sequence 1: t \\d+/200  c \\d/3  \\(600/600, " +
                                        missed + " missed\\)  complete")))
      << out;
  const json summary = watch_summary(*watch_json);
  EXPECT_EQ(summary["sequence"]["id"], 1);
  EXPECT_EQ(summary["sequence"]["complete"], true);
  EXPECT_EQ(summary["sequence"]["channels"], json::parse(R"(["a", "b", "c"])"));

  // Stopped early: status says so.
  ASSERT_EQ(b.fbctl({"start", "cam", "--axes", "t=1000"}).exit_code, 0);
  ASSERT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["published"] > 310; }));
  ASSERT_EQ(b.fbctl({"stop", "cam"}).exit_code, 0);
  ASSERT_TRUE(wait_sequence_over(b, "cam"));
  const Result stopped = b.fbctl({"status"});
  EXPECT_TRUE(std::regex_search(
      stopped.out,
      std::regex(R"(cam  sequence 2: t \d+/1000  \(\d+/1000, \d+ missed\)  stopped early)")))
      << stopped.out;
}
