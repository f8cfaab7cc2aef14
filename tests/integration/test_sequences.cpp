// Acquisition sequences through the real broker: SequenceStarted before the first frame (also
// for a late joiner), an index on every frame from its position (a lost frame keeps its
// index), SequenceFinished after the last, publishers' explicit indices, and clear refusals.
#include <gtest/gtest.h>

#include <thread>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using framebroker::SequenceSpec;
using nlohmann::json;

namespace {

// Takes frames until the next sequence finishes; returns them as (position, t, c, z).
std::vector<std::array<int64_t, 4>> take_sequence(framebroker::Subscription& sub) {
  std::vector<std::array<int64_t, 4>> got;
  const uint64_t finished_before = sub.sequence_end() ? sub.sequence_end()->id : 0;
  for (int idle = 0; idle < 50;) {
    if (auto f = sub.next(100ms)) {
      got.push_back({f->sequence_position(), f->index('t').value_or(-1), f->index('c').value_or(-1),
                     f->index('z').value_or(-1)});
      continue;
    }
    if (sub.sequence_end() && sub.sequence_end()->id != finished_before) break;
    ++idle;
  }
  return got;
}

}  // namespace

TEST(Sequences, EveryFrameCarriesItsIndexBetweenStartedAndFinished) {
  Broker b(idle_counter_camera());
  auto client = connect_to(b);
  auto sub = client.subscribe("cam", {.mode = framebroker::Mode::Every, .max_hold = 32});
  EXPECT_EQ(sub.sequence(), nullptr);
  auto spec = SequenceSpec::parse("t=3,c=2,z=4", "tcz");
  spec.channels = {"488", "561"};
  spec.z_step_um = 0.5;
  spec.metadata = R"({"axis_order": "tcz", "note": "from a test"})";
  client.camera("cam").start(spec);

  auto got = take_sequence(sub);
  ASSERT_TRUE(sub.sequence_end()) << "no SequenceFinished";
  const auto sq = sub.sequence();
  ASSERT_NE(sq, nullptr) << "no SequenceStarted before the frames";
  EXPECT_EQ(sq->spec, spec);
  EXPECT_EQ(sq->stream, "cam");
  EXPECT_EQ(sub.sequence_end()->id, sq->id);
  EXPECT_TRUE(sub.sequence_end()->complete);
  EXPECT_EQ(sub.sequence_end()->frames + sub.sequence_end()->missed, 24u);
  ASSERT_EQ(got.size(), sub.sequence_end()->frames);
  for (size_t i = 0; i < got.size(); ++i) {
    const int64_t p = got[i][0];
    EXPECT_EQ(got[i][1], p / 8) << "t of position " << p;
    EXPECT_EQ(got[i][2], p / 4 % 2) << "c of position " << p;
    EXPECT_EQ(got[i][3], p % 4) << "z of position " << p;
  }
  const json st = stream_of(b.status(), "cam");
  EXPECT_EQ(st["sequence"]["id"], sq->id);
  EXPECT_EQ(st["sequence"]["axes"], "t=3,c=2,z=4");
  EXPECT_EQ(st["sequence"]["running"], false);
}

TEST(Sequences, ALostFrameKeepsItsIndexAndCountsAsMissed) {
  Broker b(idle_counter_camera(200, 8));
  auto client = connect_to(b);
  // Two subscribers that hold what they get and do not read yet, one joining after the other
  // filled its holds: between them they hold more slots than the ring has, and the camera finds
  // it full.
  auto first = client.subscribe("cam", {.mode = framebroker::Mode::Every, .max_hold = 6});
  client.camera("cam").start(SequenceSpec::parse("t=5,z=40"));
  ASSERT_TRUE(wait_held(b, 6));
  auto other = connect_to(b);
  auto second = other.subscribe("cam", {.mode = framebroker::Mode::Every, .max_hold = 6});
  ASSERT_TRUE(wait_sequence_over(b, "cam"));
  const json seq = stream_of(b.status(), "cam")["sequence"];
  EXPECT_GT(seq["missed"].get<int>(), 0) << seq.dump();
  EXPECT_EQ(seq["positions"], 200);
  std::vector<int64_t> positions;
  for (auto got = take_sequence(first); const auto& g : got) {
    positions.push_back(g[0]);
    EXPECT_EQ(g[1], g[0] / 40);
    EXPECT_EQ(g[3], g[0] % 40);
  }
  ASSERT_TRUE(first.sequence_end());
  EXPECT_EQ(first.sequence_end()->missed, seq["missed"].get<uint64_t>());
  EXPECT_EQ(first.sequence_end()->frames + first.sequence_end()->missed, 200u);
  ASSERT_FALSE(positions.empty());
  EXPECT_LT(positions.size(), 200u);  // the losses are gaps in the positions, not shifts
  for (size_t i = 1; i < positions.size(); ++i) EXPECT_LT(positions[i - 1], positions[i]);
}

TEST(Sequences, ALateJoinerGetsSequenceStartedFirst) {
  Broker b(idle_counter_camera(200, 32));
  auto client = connect_to(b);
  client.camera("cam").start(SequenceSpec::parse("t=400"));
  ASSERT_TRUE(b.wait_status([](const json& s) { return stream_of(s, "cam")["published"] > 20; }));
  auto late = client.subscribe("cam", {.mode = framebroker::Mode::Every});
  auto f = late.next(5s);
  ASSERT_TRUE(f);
  ASSERT_NE(late.sequence(), nullptr) << "the late joiner's first frame came before the start";
  EXPECT_EQ(f->sequence(), late.sequence());
  EXPECT_GT(*f->index('t'), 20u);
  EXPECT_EQ(late.sequence()->spec.order(), "t");
  client.camera("cam").stop();
  // Stopped early: it finishes, incomplete.
  for (int i = 0; i < 500 && !late.sequence_end(); ++i) late.next(20ms);
  ASSERT_TRUE(late.sequence_end());
  EXPECT_FALSE(late.sequence_end()->complete);
}

TEST(Sequences, APublisherSetsIndicesAndBadOnesAreRefused) {
  Broker b({"--no-default-camera"});
  auto client = connect_to(b);
  auto pub = client.advertise("made", {.width = 16, .height = 16, .pixel_type = "Mono16"});
  auto sub = client.subscribe("made", {.mode = framebroker::Mode::Every, .max_hold = 8});
  const uint64_t id = pub.begin_sequence(SequenceSpec::parse("c=2,z=3"));
  EXPECT_GT(id, 0u);
  auto bad = pub.loan(5s);
  ASSERT_TRUE(bad);
  bad->commit({.index = {2, 0}});  // c=2 is outside c=2: refused, it uses no position
  // Channel-major from the producer's point of view, but it says which plane each frame is.
  // The sixth position used ends the sequence by itself.
  for (uint32_t z = 0; z < 3; ++z)
    for (uint32_t c = 0; c < 2; ++c) {
      auto loan = pub.loan(5s);
      ASSERT_TRUE(loan);
      loan->commit({.index = {c, z}});
    }
  auto got = take_sequence(sub);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0][0], 0);  // c=0, z=0
  EXPECT_EQ(got[1][0], 3);  // c=1, z=0
  EXPECT_EQ(got[1][2], 1);
  ASSERT_TRUE(sub.sequence_end());
  EXPECT_EQ(sub.sequence_end()->id, id);
  bool refused = false;
  std::string errors;
  for (int i = 0; i < 50 && !refused; ++i) {
    for (const auto& e : pub.take_async_errors()) {
      errors += e + "\n";
      refused = refused || e.find("outside the axes c=2,z=3") != std::string::npos;
    }
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(refused) << "the out-of-range index was not refused: " << errors;

  // A sequence the publisher ends early finishes incomplete, after its frames.
  const uint64_t second = pub.begin_sequence(SequenceSpec::parse("t=10"));
  for (int i = 0; i < 2; ++i) pub.loan(5s)->commit();
  pub.end_sequence();
  EXPECT_EQ(take_sequence(sub).size(), 2u);
  ASSERT_TRUE(sub.sequence_end());
  EXPECT_EQ(sub.sequence_end()->id, second);
  EXPECT_FALSE(sub.sequence_end()->complete);
  EXPECT_EQ(sub.sequence_end()->frames, 2u);
}

TEST(Sequences, BadSequencesGetClearErrors) {
  Broker b(idle_counter_camera());
  auto client = connect_to(b);
  auto expect_refused = [&](const std::string& axes, const std::string& order,
                            const std::string& why) {
    try {
      client.camera("cam").start(SequenceSpec::parse(axes, order));
      ADD_FAILURE() << axes << " was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  expect_refused("t=3,q=2", "", "unknown axis 'q'");
  expect_refused("t=3,t=2", "", "given twice");
  expect_refused("t=3,c=2", "ct z", "must name each of the axes");
  expect_refused("t=0", "", "size 0");
  SequenceSpec big = SequenceSpec::parse("t=2");
  big.metadata = "{\"x\": \"" + std::string(70000, 'a') + "\"}";
  EXPECT_THROW(client.camera("cam").start(big), framebroker::Error);
  SequenceSpec not_object = SequenceSpec::parse("t=2");
  not_object.metadata = "[1, 2]";
  EXPECT_THROW(client.camera("cam").start(not_object), framebroker::Error);

  // The broker checks too: a hand-made command with a bad spec and a wrong frame count.
  RawClient raw(b.socket());
  raw.hello();
  ASSERT_TRUE(raw.receive());  // Welcome
  namespace wire = framebroker::wire;
  auto send_start = [&](const std::string& axis, uint32_t size, int64_t frames) {
    flatbuffers::FlatBufferBuilder fbb;
    auto ax = wire::CreateSequenceAxis(fbb, fbb.CreateString(axis), size);
    auto spec = wire::CreateSequenceSpec(fbb, fbb.CreateVector(&ax, 1));
    auto cmd = wire::CreateCameraCommand(fbb, fbb.CreateString("cam"), wire::CameraOp::Start, 0, 0,
                                         frames, spec);
    wire::finish(fbb, 9, wire::Message::CameraCommand, cmd);
    raw.send(fbb);
    auto reply = raw.receive_reply();
    EXPECT_TRUE(reply);
    const auto* err = reply ? reply->envelope()->message_as_Error() : nullptr;
    return err && err->message() ? err->message()->str() : std::string("(no error)");
  };
  EXPECT_NE(send_start("w", 3, -1).find("unknown axis 'w'"), std::string::npos);
  EXPECT_NE(send_start("t", 3, 5).find("make 3 frames, not 5"), std::string::npos);
  // Nothing broke: a good one still runs.
  auto sub = client.subscribe("cam", {.mode = framebroker::Mode::Every, .max_hold = 8});
  client.camera("cam").start(SequenceSpec::parse("t=4"));
  EXPECT_EQ(
      take_sequence(sub).size() + sub.sequence_end().value_or(framebroker::SequenceEnd{}).missed,
      4u);
}
