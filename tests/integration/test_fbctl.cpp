// fbctl against a real broker: every command, its JSON, its errors and exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

const std::vector<std::string> kCounterCamera = {
    "--no-default-camera", "--camera",
    "sim:name=cam,Width=96,Height=64,Pattern=counter,FrameRate=200,slots=16"};

json run_json(Broker& b, const std::vector<std::string>& args) {
  auto r = b.fbctl(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

}  // namespace

TEST(Fbctl, StreamsShowsEveryFieldWithDropReasonsApart) {
  Broker b(kCounterCamera);
  ASSERT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["fps"] > 100; }));
  const json streams = run_json(b, {"streams", "--json"});
  ASSERT_EQ(streams.size(), 1u);
  const json& st = streams[0];
  EXPECT_EQ(st["name"], "cam");
  EXPECT_EQ(st["camera"], "cam");
  EXPECT_EQ(st["gen"], 1);
  EXPECT_EQ(st["slots"], 16);
  EXPECT_EQ(st["frame_bytes"], 96 * 64 * 2);
  EXPECT_EQ(st["slot_bytes"], 12288);  // the frame, in whole pages
  EXPECT_EQ(st["free"].get<int>() + st["writing"].get<int>() + st["ready"].get<int>(), 16);
  EXPECT_GT(st["fps"].get<double>(), 100);
  EXPECT_NEAR(st["mb_per_s"].get<double>(), st["fps"].get<double>() * 12288 / 1e6, 0.01);
  EXPECT_GT(st["published"].get<int>(), 0);
  EXPECT_EQ(st["dropped"], 0);
  EXPECT_EQ(st["dropped_reasons"]["ring_full"], 0);
  EXPECT_EQ(st["dropped_reasons"]["camera"], 0);
  EXPECT_GE(st["latest_seq"].get<int>(), 0);
  EXPECT_EQ(st["format"]["width"], 96);
  EXPECT_EQ(st["format"]["height"], 64);
  EXPECT_EQ(st["format"]["pixel_type"], "Mono16");

  auto text = b.fbctl({"streams"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("RING_FULL"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("96x64 Mono16"), std::string::npos) << text.out;
}

TEST(Fbctl, SlotsShowsTheHolderOfAHeldSlot) {
  Broker b(kCounterCamera);
  auto holder = b.fbctl_async({"watch", "cam", "--hold", "3", "--duration", "60"});
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    auto subs = subscribers(s, holder->pid());
    return subs.size() == 1 && subs[0]["held"] == 3;
  }));
  std::this_thread::sleep_for(100ms);  // let the held frames age
  const json map = run_json(b, {"slots", "cam", "--json"});
  EXPECT_EQ(map["stream"], "cam");
  EXPECT_EQ(map["gen"], 1);
  ASSERT_EQ(map["slots"].size(), 16u);
  int held_by_watch = 0, cache = 0, free = 0;
  for (size_t i = 0; i < map["slots"].size(); ++i) {
    const json& sl = map["slots"][i];
    EXPECT_EQ(sl["index"], i);
    if (sl["state"] == "free") {
      ++free;
      EXPECT_TRUE(sl["holders"].empty());
      continue;
    }
    for (const auto& h : sl["holders"]) {
      if (h["subscriber"] == 0) {
        ++cache;
      } else if (h["pid"] == holder->pid()) {
        EXPECT_EQ(h["client"], "fbctl");
        EXPECT_EQ(sl["state"], "ready");
        EXPECT_GE(sl["seq"].get<int>(), 0);
        // The three it keeps, held since before the sleep (it may also be
        // reading the newest frame right now).
        if (sl["age_ms"].get<double>() > 50) ++held_by_watch;
      }
    }
  }
  EXPECT_EQ(held_by_watch, 3);
  EXPECT_EQ(cache, 1);
  EXPECT_GE(free, 10);

  auto text = b.fbctl({"slots", "cam"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  const std::string bar =
      text.out.substr(text.out.find('['), text.out.find(']') - text.out.find('['));
  EXPECT_GE(std::count(bar.begin(), bar.end(), 'H'), 3) << text.out;  // the three held slots
  EXPECT_NE(text.out.find("fbctl (pid " + std::to_string(holder->pid()) + ")"), std::string::npos)
      << text.out;
}

TEST(Fbctl, SubscribersShowModeLimitsLagAndConnectionTime) {
  Broker b(kCounterCamera);
  auto every = b.fbctl_async({"watch", "cam", "--max-hold", "5", "--duration", "60"});
  auto latest =
      b.fbctl_async({"watch", "cam", "--mode", "latest", "--window", "2", "--duration", "60"});
  ASSERT_TRUE(b.wait_status([&](const json& s) { return s["subscribers"].size() == 2; }));
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    for (const auto& sub : s["subscribers"])
      if (sub["delivered"].get<int>() < 10) return false;
    return true;
  }));
  const json subs = run_json(b, {"subscribers", "--json"});
  ASSERT_EQ(subs.size(), 2u);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (const auto& s : subs) {
    EXPECT_EQ(s["client"], "fbctl");
    EXPECT_EQ(s["stream"], "cam");
    EXPECT_EQ(s["uid"], getuid());
    EXPECT_GE(s["last_seq"].get<int>(), 0);
    EXPECT_GE(s["lag"].get<int>(), 0);
    EXPECT_LT(s["lag"].get<int>(), 16);
    EXPECT_LE(s["connected_unix_ms"].get<int64_t>(), now_ms);
    EXPECT_GT(s["connected_unix_ms"].get<int64_t>(), now_ms - 60000);
    if (s["pid"] == every->pid()) {
      EXPECT_EQ(s["mode"], "every");
      EXPECT_EQ(s["max_hold"], 5);
    } else {
      EXPECT_EQ(s["pid"], latest->pid());
      EXPECT_EQ(s["mode"], "latest");
      EXPECT_EQ(s["window"], 2);
    }
  }
  auto text = b.fbctl({"subscribers"});
  EXPECT_NE(text.out.find("max_hold 5"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("window 2"), std::string::npos) << text.out;
}

TEST(Fbctl, SubscribersShowTheRoleEachClientGaveInHello) {
  Broker b(kCounterCamera);
  auto watch = b.fbctl_async({"watch", "cam", "--duration", "60"});
  const std::string path = b.runtime_dir() + "/role.raw";
  auto saver = std::make_unique<Process>(
      std::vector<std::string>{FB_FBSAVE_BIN, "cam", "-o", path, "--format", "raw", "--duration",
                               "60", "--socket", b.socket()},
      b.runtime_dir() + "/fbsave");
  ASSERT_TRUE(b.wait_status([](const json& s) { return s["subscribers"].size() == 2; }));
  const json subs = run_json(b, {"subscribers", "--json"});
  ASSERT_EQ(subs.size(), 2u);
  for (const auto& s : subs) {
    if (s["pid"] == saver->pid()) {
      EXPECT_EQ(s["client"], "fbsave");
      EXPECT_EQ(s["role"], "saver");
    } else {
      EXPECT_EQ(s["pid"], watch->pid());
      EXPECT_EQ(s["role"], "control");
    }
  }
  auto text = b.fbctl({"subscribers"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  std::istringstream lines(text.out);
  std::string header, line;
  std::getline(lines, header);
  EXPECT_EQ(header.rfind("ID  CLIENT  ROLE", 0), 0u) << text.out;
  std::set<std::string> client_role;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string id, client, role;
    f >> id >> client >> role;
    client_role.insert(client + " " + role);
  }
  EXPECT_EQ(client_role, (std::set<std::string>{"fbctl control", "fbsave saver"})) << text.out;
}

TEST(Fbctl, CamerasAndPropsAndGetSetStartStop) {
  Broker b({"--no-default-camera", "--camera", "sim:name=cam,Width=64,Height=64,start=false"});
  json cams = run_json(b, {"cameras", "--json"});
  ASSERT_EQ(cams.size(), 1u);
  EXPECT_EQ(cams[0]["name"], "cam");
  EXPECT_EQ(cams[0]["driver"], "sim");
  EXPECT_EQ(cams[0]["state"], "idle");
  EXPECT_EQ(cams[0]["frames"], 0);

  const json props = run_json(b, {"props", "cam", "--json"});
  EXPECT_EQ(props["camera"], "cam");
  std::map<std::string, json> by_name;
  for (const auto& p : props["properties"]) by_name[p["name"]] = p;
  for (const char* name : {"Width", "Height", "PixelType", "BitDepth", "Exposure", "FrameRate",
                           "Binning", "Pattern", "Seed"})
    EXPECT_TRUE(by_name.count(name)) << name;
  EXPECT_EQ(by_name["Width"]["type"], "int");
  EXPECT_EQ(by_name["Width"]["value"], "64");
  EXPECT_EQ(by_name["Width"]["unit"], "px");
  EXPECT_EQ(by_name["Width"]["min"], 8);
  EXPECT_EQ(by_name["Width"]["max"], 4096);
  EXPECT_EQ(by_name["PixelType"]["type"], "enum");
  EXPECT_EQ(by_name["PixelType"]["allowed"], json({"Mono8", "Mono16"}));
  EXPECT_EQ(by_name["BitDepth"]["read_only"], true);
  EXPECT_EQ(by_name["Exposure"]["type"], "float");

  EXPECT_EQ(b.fbctl({"set", "cam", "FrameRate", "500"}).exit_code, 0);
  EXPECT_EQ(b.fbctl({"get", "cam", "FrameRate"}).out, "500\n");
  EXPECT_EQ(run_json(b, {"get", "cam", "FrameRate", "--json"})["value"], "500");
  EXPECT_EQ(b.fbctl({"start", "cam", "--frames", "50"}).exit_code, 0);
  ASSERT_TRUE(b.wait_status([](const json& s) { return s["cameras"][0]["frames"] == 50; }));
  ASSERT_TRUE(b.wait_status([](const json& s) { return s["cameras"][0]["state"] == "idle"; }));
  EXPECT_EQ(b.fbctl({"start", "cam"}).exit_code, 0);
  ASSERT_TRUE(b.wait_status([](const json& s) { return s["cameras"][0]["state"] == "running"; }));
  auto text = b.fbctl({"cameras"});
  EXPECT_NE(text.out.find("running"), std::string::npos) << text.out;
  EXPECT_EQ(b.fbctl({"stop", "cam"}).exit_code, 0);
  EXPECT_EQ(run_json(b, {"cameras", "--json"})[0]["state"], "idle");
}

TEST(Fbctl, ErrorsListWhatIsAllowedAndExitWithTheirCodes) {
  Broker b({"--no-default-camera", "--camera", "sim:name=cam,Width=64,Height=64,start=false"});
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string says;
  } cases[] = {
      {{"get", "nocam", "Width"}, 1, "cameras: cam"},
      {{"get", "cam", "Nope"}, 1, "known: Width, Height"},
      {{"set", "cam", "Width", "99999"}, 1, "[8, 4096]"},
      {{"set", "cam", "Pattern", "stripes"}, 1, "spots"},
      {{"set", "cam", "BitDepth", "8"}, 1, "read-only"},
      {{"slots", "nostream"}, 1, "streams: cam"},
      {{"watch", "nostream", "--frames", "1"}, 1, "streams: cam"},
      {{"start", "nocam"}, 1, "cameras: cam"},
      {{"frobnicate"}, 2, ""},
      {{"slots"}, 2, "stream"},
      {{"watch", "cam", "--mode", "sideways"}, 2, "sideways"},
  };
  for (const auto& c : cases) {
    auto r = b.fbctl(c.args);
    std::string cmd;
    for (const auto& a : c.args) cmd += a + " ";
    EXPECT_EQ(r.exit_code, c.code) << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << cmd << "\nstderr: " << r.err;
    if (c.code == 1) {
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
  }
  auto r = run({FB_FBCTL_BIN, "streams", "--socket", b.runtime_dir() + "/nothing.sock"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find(b.runtime_dir() + "/nothing.sock"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("framebrokerd"), std::string::npos) << r.err;  // how to start it
}

// --socket, --instance and --json go before the command, as people type them, or after it.
TEST(Fbctl, GlobalOptionsWorkBeforeAndAfterTheCommand) {
  Broker b(kCounterCamera);
  const std::string sock = b.socket();
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--socket", sock, "--json", "streams"},
                                             {"--json", "--socket", sock, "streams"},
                                             {"--socket", sock, "streams", "--json"},
                                             {"--json", "streams", "--socket", sock},
                                             {"streams", "--json", "--socket", sock}}) {
    std::vector<std::string> argv{FB_FBCTL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv);
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.err;
    const json streams = json::parse(r.out);
    ASSERT_EQ(streams.size(), 1u) << cmd;
    EXPECT_EQ(streams[0]["name"], "cam") << cmd;
  }

  // --instance finds <runtime dir>/<instance>.sock, in either place.
  const std::vector<std::string> env{"RUNTIME_DIRECTORY=" + b.runtime_dir(), "FRAMEBROKER_SOCKET="};
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--instance", b.instance(), "status", "--json"},
                                             {"status", "--instance", b.instance(), "--json"}}) {
    std::vector<std::string> argv{FB_FBCTL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv, b.runtime_dir() + "/instance-" + args[0], env);
    auto st = p.wait(30s);
    ASSERT_TRUE(st && WIFEXITED(*st)) << args[0];
    EXPECT_EQ(WEXITSTATUS(*st), 0) << args[0] << "\n" << p.err();
    EXPECT_EQ(json::parse(p.out())["broker"]["instance"], b.instance()) << args[0];
  }

  // watch keeps its own --json (one summary at the end) in both places.
  auto watch = run({FB_FBCTL_BIN, "--socket", sock, "--json", "watch", "cam", "--frames", "5"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_EQ(json::parse(watch.out)["frames"], 5) << watch.out;

  // No broker there: the reason, not a complaint about the command line.
  auto none = run({FB_FBCTL_BIN, "--socket", "/nonexistent/fb.sock", "status"});
  EXPECT_EQ(none.exit_code, 3) << none.err;
  EXPECT_NE(none.err.find("/nonexistent/fb.sock"), std::string::npos) << none.err;
  EXPECT_EQ(none.err.find("not expected"), std::string::npos) << none.err;

  // A command that prints no JSON says so, wherever --json is.
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--json", "stop", "cam", "--socket", sock},
                                             {"stop", "cam", "--json", "--socket", sock}}) {
    std::vector<std::string> argv{FB_FBCTL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("fbctl stop prints no JSON"), std::string::npos) << r.err;
  }
  EXPECT_EQ(b.status()["cameras"][0]["state"], "running");  // the refused stop did nothing

  auto help = run({FB_FBCTL_BIN, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("fbctl --socket "), std::string::npos) << help.out;
}

TEST(Fbctl, EveryCommandExplainsItselfWithAnExample) {
  for (const char* cmd : {"status", "streams", "slots", "subscribers", "cameras", "props", "get",
                          "set", "start", "stop", "snap", "top", "watch"}) {
    auto r = run({FB_FBCTL_BIN, cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("e.g. fbctl " + std::string(cmd)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--socket"), std::string::npos) << r.out;
  }
}

namespace {

// Reads a TIFF with tifffile and checks it against the counter pattern of the
// camera frame id it names in its description; prints "ok <frame id>".
Result check_counter_tiff(const std::string& path, int width, int height, const char* dtype) {
  const std::string script =
      "import sys, re, numpy, tifffile\n"
      "with tifffile.TiffFile(sys.argv[1]) as t:\n"
      "    a = t.asarray(); desc = t.pages[0].description\n"
      "f = int(re.search(r'camera frame (\\d+)', desc).group(1))\n"
      "assert a.shape == (int(sys.argv[3]), int(sys.argv[2])), a.shape\n"
      "assert a.dtype == numpy.dtype(sys.argv[4]), a.dtype\n"
      "k = numpy.arange(a.size, dtype=numpy.uint64)\n"
      "want = ((k + f) % (1 << (8 * a.dtype.itemsize))).astype(a.dtype).reshape(a.shape)\n"
      "assert (a == want).all(), 'pixels differ from the counter pattern'\n"
      "print('ok', f)\n";
  return run({"/usr/bin/python3", "-c", script, path, std::to_string(width), std::to_string(height),
              dtype});
}

}  // namespace

TEST(Fbctl, SnapWritesTheCounterFrameWhileStreamingAndWhileIdle) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=100,Height=60,Pattern=counter,FrameRate=100,start=false"});
  const std::string idle = b.runtime_dir() + "/idle.tif";
  auto r = b.fbctl({"snap", "cam", "-o", idle, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["width"], 100);
  r = check_counter_tiff(idle, 100, 60, "uint16");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "ok 0\n");  // an idle camera snaps frame 0

  ASSERT_EQ(b.fbctl({"start", "cam"}).exit_code, 0);
  ASSERT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["latest_seq"] > 20; }));
  const std::string live = b.runtime_dir() + "/live.tif";
  r = b.fbctl({"snap", "cam", "-o", live});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = check_counter_tiff(live, 100, 60, "uint16");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_GT(std::stoi(r.out.substr(3)), 20);  // a later frame of the running camera

  ASSERT_EQ(b.fbctl({"stop", "cam"}).exit_code, 0);
  ASSERT_EQ(b.fbctl({"set", "cam", "PixelType", "Mono8"}).exit_code, 0);
  const std::string mono8 = b.runtime_dir() + "/mono8.tif";
  ASSERT_EQ(b.fbctl({"snap", "cam", "-o", mono8}).exit_code, 0);
  r = check_counter_tiff(mono8, 100, 60, "uint8");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(Fbctl, TopRunsInTmuxShowsTheStreamAndQuitsOnQ) {
  Broker b(kCounterCamera);
  const std::string session = "fbtop-" + b.instance();
  const std::string cmd = std::string(FB_FBCTL_BIN) + " top --socket " + b.socket();
  ASSERT_EQ(run({"/usr/bin/tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", cmd})
                .exit_code,
            0);
  // The stream's row ("cam  96x64 Mono16  FPS ...") with a live fps, and its ring bar.
  auto stream_fps = [](const std::string& screen) {
    std::istringstream lines(screen);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream f(line);
      std::string name, size, type;
      double fps = 0;
      if (f >> name >> size >> type >> fps && name == "cam" && size == "96x64") return fps;
    }
    return 0.0;
  };
  std::string screen;
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::this_thread::sleep_for(100ms);
    screen = run({"/usr/bin/tmux", "capture-pane", "-p", "-t", session}).out;
    seen = stream_fps(screen) > 100 && screen.find("cam [") != std::string::npos;
  }
  EXPECT_TRUE(seen) << screen;
  EXPECT_NE(screen.find("q quits"), std::string::npos) << screen;
  run({"/usr/bin/tmux", "send-keys", "-t", session, "q"});
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    std::this_thread::sleep_for(100ms);
    gone = run({"/usr/bin/tmux", "has-session", "-t", session}).exit_code != 0;
  }
  EXPECT_TRUE(gone) << "fbctl top did not quit on q";
  if (!gone) run({"/usr/bin/tmux", "kill-session", "-t", session});
}
