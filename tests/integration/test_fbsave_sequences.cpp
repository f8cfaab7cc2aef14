// fbsave and sequences, end to end: a real broker runs a sequence on the sim counter camera, the
// real fbsave saves it, and third-party readers (python3-zarr, tifffile, numpy) read it back: the
// dataset has the sequence's dimensions, every plane is the counter frame of its index, and the
// planes no frame came for are zeros and listed in the metadata.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <set>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using framebroker::SequenceSpec;
using nlohmann::json;

namespace {

// 200 fps: a sequence of 120 frames takes 0.6 s, and a saver on a busy machine keeps up.
std::vector<std::string> counter_camera(int fps, int slots) {
  return {"--no-default-camera", "--camera",
          "sim:name=cam,Width=64,Height=48,Pattern=counter,FrameRate=" + std::to_string(fps) +
              ",slots=" + std::to_string(slots) + ",start=false"};
}

std::unique_ptr<Process> fbsave_async(Broker& b, std::vector<std::string> args) {
  args.insert(args.begin(), FB_FBSAVE_BIN);
  args.insert(args.end(), {"--json", "--socket", b.socket()});
  return std::make_unique<Process>(args, b.runtime_dir() + "/fbsave-" + std::to_string(rand()));
}

// Waits until every saver subscribed to the stream.
void wait_subscribed(Broker& b, const std::vector<Process*>& savers) {
  for (Process* p : savers)
    ASSERT_TRUE(b.wait_status([&](const json& s) { return !subscribers(s, p->pid()).empty(); }))
        << "fbsave never subscribed: " << p->err();
}

json finish(Process& saver) {
  auto st = saver.wait(30s);
  EXPECT_TRUE(st.has_value()) << "fbsave did not end with the sequence";
  if (!st) return json::object();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << saver.err();
  return json::parse(saver.out());
}

json read_back(const std::string& format, const std::string& path) {
  auto r = run({"/usr/bin/python3",
                std::string(FB_SOURCE_DIR) + "/tests/integration/check_sequence_dataset.py", format,
                path});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json{{"planes", json::array()}};
}

// Every plane (t, c, z) holds the counter frame of its position, `place(t, c, z)` (the camera
// frame ids count from 0 at the start), or zeros when `missing` lists it; nothing else.
template <typename Place>
void expect_planes(const json& d, const std::set<std::vector<uint32_t>>& missing, Place place) {
  size_t zero = 0;
  for (const auto& p : d["planes"]) {
    const std::vector<uint32_t> tcz = {p[0], p[1], p[2]};
    if (missing.count(tcz)) {
      EXPECT_TRUE(p[3].is_null()) << "missing plane " << p << " is not zeros";
      ++zero;
    } else {
      EXPECT_EQ(p[3], place(tcz[0], tcz[1], tcz[2])) << "plane " << p;
    }
  }
  EXPECT_EQ(zero, missing.size());
}

// A dataset with every plane: its (t, c, z, h, w) shape, and each plane where `place` says.
template <typename Place>
void expect_full_stack(const json& d, const json& tczyx, Place place) {
  EXPECT_EQ(d["tczyx"], tczyx);
  const size_t planes = tczyx[0].get<size_t>() * tczyx[1].get<size_t>() * tczyx[2].get<size_t>();
  ASSERT_EQ(d["planes"].size(), planes);
  expect_planes(d, {}, place);
}

std::set<std::vector<uint32_t>> missing_of(const json& sequence) {
  std::set<std::vector<uint32_t>> out;
  for (const auto& m : sequence["missing"]) out.insert(m.get<std::vector<uint32_t>>());
  return out;
}

SequenceSpec tcz_spec() {
  auto spec = SequenceSpec::parse("t=3,c=2,z=20", "tcz");
  spec.channels = {"488nm", "561nm"};
  spec.z_step_um = 0.5;
  return spec;
}

auto tcz_place = [](uint32_t t, uint32_t c, uint32_t z) { return t * 40 + c * 20 + z; };

// fbsave waits on the camera; the t=3,c=2,z=20 sequence runs; fbsave's JSON summary.
json save_tcz(Broker& b, const std::string& path) {
  auto saver = fbsave_async(b, {"cam", "-o", path, "--frames", "120"});
  wait_subscribed(b, {saver.get()});
  connect_to(b).camera("cam").start(tcz_spec());
  return finish(*saver);
}

}  // namespace

// The check by name: fbsave CAM -o PATH.ome.zarr --frames 120, then the sequence starts.
TEST(FbsaveSequences, OmeZarrHasTheSequenceAxesAndEveryPlaneAtItsIndex) {
  Broker b(counter_camera(200, 256));
  const std::string path = b.runtime_dir() + "/stack.ome.zarr";
  const json summary = save_tcz(b, path);
  EXPECT_EQ(summary["frames_written"], 120);
  EXPECT_EQ(summary["frames_missed"], 0);
  ASSERT_EQ(summary["sequences"].size(), 1u);

  const json d = read_back("zarr", path);
  EXPECT_EQ(d["axes"], "tczyx");
  EXPECT_EQ(d["axis_types"], json({"time", "channel", "space", "space", "space"}));
  EXPECT_EQ(d["axis_units"][2], "micrometer");
  EXPECT_EQ(d["scale"][2], 0.5);
  EXPECT_EQ(d["shape"], json({3, 2, 20, 48, 64}));
  EXPECT_EQ(d["channels"], json({"488nm", "561nm"}));
  ASSERT_EQ(d["planes"].size(), 120u);
  expect_planes(d, {}, tcz_place);
  const json& sq = d["sequence"];
  EXPECT_EQ(sq["id"], summary["sequences"][0]);
  EXPECT_EQ(sq["axes"], "t=3,c=2,z=20");
  EXPECT_EQ(sq["order"], "tcz");
  EXPECT_EQ(sq["planes_written"], 120);
  EXPECT_TRUE(sq["missing"].empty());
  EXPECT_TRUE(sq["missing_positions"].empty());
  // The per-frame columns say where each frame went.
  EXPECT_EQ(d["columns"]["position"].size(), 120u);
  EXPECT_EQ(d["columns"]["index"][41], json({1, 0, 1}));

  // fbreplay reads fbsave's flat datasets; this one it refuses in words, without crashing.
  auto r = run({FB_FBREPLAY_BIN, path, "--as", "again", "--socket", b.socket()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("sequence"), std::string::npos) << r.err;
}

// The same through the command line, exactly as the issue names it.
TEST(FbsaveSequences, FbctlStartWithAxesThenFbsaveGivesTczyx) {
  Broker b(counter_camera(200, 256));
  const std::string path = b.runtime_dir() + "/named.ome.zarr";
  auto saver = fbsave_async(b, {"cam", "-o", path, "--frames", "120"});
  wait_subscribed(b, {saver.get()});
  const auto started =
      b.fbctl({"start", "cam", "--frames", "120", "--axes", "t=3,c=2,z=20", "--order", "tcz"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const json summary = finish(*saver);
  EXPECT_EQ(summary["frames_written"], 120);
  const json d = read_back("zarr", path);
  EXPECT_EQ(d["axes"], "tczyx");
  expect_full_stack(d, {3, 2, 20, 48, 64}, tcz_place);
}

TEST(FbsaveSequences, OmeTiffHasDimensionOrderSizesAndChannelNames) {
  Broker b(counter_camera(200, 256));
  const std::string path = b.runtime_dir() + "/stack.ome.tif";
  const json summary = save_tcz(b, path);
  EXPECT_EQ(summary["frames_written"], 120);

  const json d = read_back("tiff", path);
  EXPECT_EQ(d["axes"], "TCZYX");
  EXPECT_EQ(d["shape"], json({3, 2, 20, 48, 64}));
  EXPECT_EQ(d["dimension_order"], "XYZCT");
  EXPECT_EQ(d["sizes"], json({{"T", 3}, {"C", 2}, {"Z", 20}}));
  EXPECT_EQ(d["channels"], json({"488nm", "561nm"}));
  ASSERT_EQ(d["planes"].size(), 120u);
  expect_planes(d, {}, tcz_place);
  EXPECT_TRUE(d["sequence"]["missing"].empty());
  EXPECT_EQ(d["summary"]["zero_pages"], 0);
}

// Acquired z outermost, t innermost: each frame still lands at its (t, c, z), in Zarr and in TIFF
// (whose pages follow the acquisition, with the DimensionOrder that says so).
TEST(FbsaveSequences, AnyAcquisitionOrderIsPlacedByIndex) {
  Broker b(counter_camera(200, 256));
  const std::string zarr = b.runtime_dir() + "/zct.ome.zarr";
  const std::string tiff = b.runtime_dir() + "/zct.ome.tif";
  auto zs = fbsave_async(b, {"cam", "-o", zarr});
  auto ts = fbsave_async(b, {"cam", "-o", tiff});
  wait_subscribed(b, {zs.get(), ts.get()});
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  client.camera("cam").start(SequenceSpec::parse("t=2,c=2,z=3", "zct"));
  finish(*zs);
  finish(*ts);
  // Position of (t, c, z) when z is outermost and t innermost.
  auto place = [](uint32_t t, uint32_t c, uint32_t z) { return (z * 2 + c) * 2 + t; };
  const json dz = read_back("zarr", zarr);
  EXPECT_EQ(dz["channels"], json({"0", "1"}));
  expect_full_stack(dz, {2, 2, 3, 48, 64}, place);
  const json dt = read_back("tiff", tiff);
  EXPECT_EQ(dt["dimension_order"], "XYTCZ");
  expect_full_stack(dt, {2, 2, 3, 48, 64}, place);
}

// A saver stopped while the sequence runs loses frames: exactly those planes are listed as missing
// and left at zero, in every format, and the count agrees with the broker's.
TEST(FbsaveSequences, LostFramesLeaveListedZeroPlanes) {
  Broker b(counter_camera(500, 16));
  const std::string zarr = b.runtime_dir() + "/holes.ome.zarr";
  const std::string tiff = b.runtime_dir() + "/holes.ome.tif";
  auto zs = fbsave_async(b, {"cam", "-o", zarr, "--frames", "120"});
  auto ts = fbsave_async(b, {"cam", "-o", tiff, "--frames", "120"});
  wait_subscribed(b, {zs.get(), ts.get()});
  // Stopped before the first frame: each gets what its queue holds, the rest passes it by.
  zs->signal(SIGSTOP);
  ts->signal(SIGSTOP);
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  client.camera("cam").start(tcz_spec());
  ASSERT_TRUE(wait_sequence_over(b, "cam"));
  const json st = b.status();
  const uint64_t camera_missed = stream_of(st, "cam")["sequence"]["missed"];
  std::map<std::string, uint64_t> lost;
  lost["zarr"] = camera_missed + subscribers(st, zs->pid()).at(0)["missed"].get<uint64_t>();
  lost["tiff"] = camera_missed + subscribers(st, ts->pid()).at(0)["missed"].get<uint64_t>();
  zs->signal(SIGCONT);
  ts->signal(SIGCONT);
  const json sz = finish(*zs), stt = finish(*ts);

  for (const auto& [format, path, summary] :
       {std::tuple{"zarr", zarr, sz}, std::tuple{"tiff", tiff, stt}}) {
    SCOPED_TRACE(format);
    const json d = read_back(format, path);
    ASSERT_EQ(d["planes"].size(), 120u);
    const auto missing = missing_of(d["sequence"]);
    EXPECT_GT(missing.size(), 0u) << "a stopped saver lost nothing?";
    EXPECT_EQ(missing.size(), lost[format]);
    EXPECT_EQ(summary["frames_missed"], missing.size());
    EXPECT_EQ(summary["frames_written"], 120 - missing.size());
    EXPECT_EQ(d["sequence"]["planes_written"], 120 - missing.size());
    // Positions and indices name the same planes (the broker set the indices).
    EXPECT_EQ(d["sequence"]["missing_positions"].size(), missing.size());
    for (const auto& p : d["sequence"]["missing_positions"]) {
      const uint32_t pos = p;
      EXPECT_TRUE(missing.count({pos / 40, pos / 20 % 2, pos % 20})) << "position " << pos;
    }
    expect_planes(d, missing, tcz_place);
  }
}

TEST(FbsaveSequences, RawIndexLinesCarryPositionAndIndex) {
  Broker b(counter_camera(200, 256));
  const std::string path = b.runtime_dir() + "/stack.raw";
  auto saver = fbsave_async(b, {"cam", "-o", path});
  wait_subscribed(b, {saver.get()});
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  client.camera("cam").start(SequenceSpec::parse("t=2,c=2,z=5", "tcz"));
  const json summary = finish(*saver);
  EXPECT_EQ(summary["frames_written"], 20);
  const json d = read_back("raw", path);
  ASSERT_EQ(d["lines"].size(), 20u);
  for (size_t i = 0; i < 20; ++i) {
    const json& line = d["lines"][i];
    EXPECT_EQ(line["position"], i);
    EXPECT_EQ(line["index"], json({{"t", i / 10}, {"c", i / 5 % 2}, {"z", i % 5}})) << line;
  }
  expect_planes(d, {}, [](uint32_t t, uint32_t c, uint32_t z) { return t * 10 + c * 5 + z; });
  EXPECT_EQ(d["sequence"]["axes"], "t=2,c=2,z=5");
  EXPECT_EQ(d["sequence"]["planes_written"], 20);
  EXPECT_TRUE(d["sequence"]["missing"].empty());
}

// --sequences all: each sequence in its own subgroup, listed in the root group.
TEST(FbsaveSequences, AllSequencesGoIntoOneGroup) {
  Broker b(counter_camera(200, 256));
  const std::string path = b.runtime_dir() + "/runs.zarr";
  auto saver = fbsave_async(b, {"cam", "-o", path, "--sequences", "all"});
  wait_subscribed(b, {saver.get()});
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  for (int i = 0; i < 2; ++i) {
    client.camera("cam").start(SequenceSpec::parse("t=2,z=4", "tz"));
    ASSERT_TRUE(wait_sequence_over(b, "cam"));
  }
  ASSERT_TRUE(b.wait_status([&](const json& s) {
    const auto subs = subscribers(s, saver->pid());
    return !subs.empty() && subs[0]["delivered"] == 16;
  }));
  saver->signal(SIGINT);
  const json summary = finish(*saver);
  ASSERT_EQ(summary["sequences"].size(), 2u);
  EXPECT_EQ(summary["frames_written"], 16);
  for (const auto& id : summary["sequences"]) {
    const json d = read_back("zarr", path + "/seq-" + std::to_string(id.get<uint64_t>()));
    EXPECT_EQ(d["shape"], json({2, 1, 4, 48, 64}));
    expect_planes(d, {}, [](uint32_t t, uint32_t, uint32_t z) { return t * 4 + z; });
  }
}

// A publisher that says which plane each frame is, in an order other than its sequence's: Zarr
// puts every frame at its index. TIFF, written page after page in acquisition order, cannot go
// back: it lists the frames it could not place, and their planes as missing (zeros).
TEST(FbsaveSequences, APublishersExplicitIndicesPlaceTheFrames) {
  Broker b({"--no-default-camera"});
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto pub = client.advertise("made", {.width = 64, .height = 48, .pixel_type = "Mono16"});
  const std::string zarr = b.runtime_dir() + "/made.ome.zarr";
  const std::string tiff = b.runtime_dir() + "/made.ome.tif";
  auto zs = fbsave_async(b, {"made", "-o", zarr});
  auto ts = fbsave_async(b, {"made", "-o", tiff});
  wait_subscribed(b, {zs.get(), ts.get()});
  pub.begin_sequence(SequenceSpec::parse("c=2,z=3", "cz"));
  for (uint32_t z = 0; z < 3; ++z)  // z outermost, although the sequence says c is
    for (uint32_t c = 0; c < 2; ++c) {
      auto loan = pub.loan(5s);
      ASSERT_TRUE(loan);
      const uint64_t id = c * 3 + z;  // the counter frame of the plane's acquisition place
      for (uint32_t y = 0; y < 48; ++y) {
        auto* row = reinterpret_cast<uint16_t*>(loan->pixels().data() + size_t(y) * pub.stride());
        for (uint32_t x = 0; x < 64; ++x) row[x] = uint16_t(id + y * 64 + x);
      }
      loan->commit({.camera_frame_id = id, .index = {c, z}});
    }
  finish(*zs);
  finish(*ts);
  auto place = [](uint32_t, uint32_t c, uint32_t z) { return c * 3 + z; };
  const json dz = read_back("zarr", zarr);
  EXPECT_EQ(dz["shape"], json({1, 2, 3, 48, 64}));
  ASSERT_EQ(dz["planes"].size(), 6u);
  expect_planes(dz, {}, place);
  EXPECT_TRUE(dz["sequence"]["missing"].empty());

  const json dt = read_back("tiff", tiff);
  ASSERT_EQ(dt["planes"].size(), 6u);
  // Arrival: (c, z) = (0,0) (1,0) (0,1) (1,1) (0,2) (1,2); pages go c-major, so (0,1) and (0,2)
  // come after their pages were passed.
  const std::set<std::vector<uint32_t>> unplaced = {{0, 0, 1}, {0, 0, 2}};
  EXPECT_EQ(missing_of(dt["sequence"]), unplaced);
  expect_planes(dt, unplaced, place);
  ASSERT_EQ(dt["summary"]["unplaced"].size(), 2u);
  EXPECT_EQ(dt["summary"]["unplaced"][0]["index"], json({0, 0, 1}));
  EXPECT_EQ(dt["summary"]["unplaced"][1]["index"], json({0, 0, 2}));
}
