// Publishing clients: a stream a client makes, seen like a camera's; lossless with Block; a
// killed producer frees its loans and ends the stream; hostile producers change nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace wire = framebroker::wire;

namespace {

const std::vector<std::string> kNoCamera = {"--no-default-camera", "--camera",
                                            "sim:name=cam,Width=64,Height=64,FrameRate=100"};

uint16_t first_pixel(const framebroker::Frame& f) {
  return *reinterpret_cast<const uint16_t*>(f.pixels().data());
}

framebroker::PublishOptions small() {
  return {.width = 64, .height = 64, .pixel_type = "Mono16", .slots = 8};
}

// Sends a hand-made Commit on a raw connection.
void raw_commit(RawClient& raw, const std::string& stream, uint32_t gen, uint32_t slot,
                uint64_t bytes, uint32_t width = 0) {
  flatbuffers::FlatBufferBuilder fbb;
  auto f = wire::CreateFrameCommit(fbb, gen, slot, bytes, width);
  wire::finish(fbb, 0, wire::Message::Commit,
               wire::CreateCommit(fbb, fbb.CreateString(stream), 0, fbb.CreateVector(&f, 1)));
  raw.send(fbb);
}

void raw_advertise(RawClient& raw, const std::string& stream, uint32_t width, uint32_t slots,
                   uint32_t rid = 7) {
  flatbuffers::FlatBufferBuilder fbb;
  auto a = wire::CreateAdvertise(fbb, fbb.CreateString(stream), width, 64,
                                 fbb.CreateString("Mono16"), 0, 0, slots);
  wire::finish(fbb, rid, wire::Message::Advertise, a);
  raw.send(fbb);
}

std::optional<wire::Received> next_of(RawClient& raw, wire::Message type) {
  for (int i = 0; i < 20; ++i) {
    auto m = raw.receive(5s);
    if (!m) return std::nullopt;
    if (m->envelope()->message_type() == type) return m;
  }
  return std::nullopt;
}

}  // namespace

TEST(Publish, EveryFrameReachesAnEverySubscriberInOrderWithProvenance) {
  Broker b(kNoCamera);
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto pub = client.advertise("derived", small());
  auto sub = client.subscribe("derived", {.mode = framebroker::Mode::Every, .max_hold = 2});
  constexpr int kFrames = 300;
  std::thread producer([&] {
    for (int i = 0; i < kFrames; ++i) {
      auto loan = pub.loan(10s);
      ASSERT_TRUE(loan) << "no loan for frame " << i;
      auto* p = reinterpret_cast<uint16_t*>(loan->pixels().data());
      std::fill(p, p + 64 * 64, uint16_t(i));
      loan->commit(
          {.camera_frame_id = uint64_t(i), .source_stream = "cam", .source_seq = 1000 + i});
    }
  });
  for (int i = 0; i < kFrames; ++i) {
    auto f = sub.next(10s);
    ASSERT_TRUE(f) << "frame " << i << " never came";
    EXPECT_EQ(f->seq(), uint64_t(i));
    EXPECT_EQ(first_pixel(*f), uint16_t(i));
    EXPECT_EQ(f->width(), 64u);
    ASSERT_NE(f->meta().source_stream(), nullptr);
    EXPECT_EQ(f->meta().source_stream()->str(), "cam");
    EXPECT_EQ(f->meta().source_seq(), 1000 + i);
    if (i % 50 == 0) std::this_thread::sleep_for(20ms);  // a slow moment: the producer waits
  }
  producer.join();
  const json s = b.status();
  const json& st = stream_of(s, "derived");
  EXPECT_EQ(st["published"], kFrames);
  EXPECT_EQ(st["dropped"], 0);
  EXPECT_EQ(st["format"]["width"], 64);
  EXPECT_EQ(st["producer"]["kind"], "client");
  EXPECT_EQ(st["state"], "live");
  for (const auto& x : subscribers(s)) EXPECT_EQ(x["missed"], 0);
  EXPECT_TRUE(slot_invariant_holds(s));
}

TEST(Publish, FbctlListsThePublishedStreamAndItEndsAfterItsLastFrame) {
  Broker b(kNoCamera);
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  std::optional<framebroker::Subscription> sub;
  {
    auto pub = client.advertise("made", small());
    // Nobody reads until the end: the subscriber must have room for all 5 (Block would wait).
    sub.emplace(client.subscribe("made", {.mode = framebroker::Mode::Every, .max_hold = 6}));
    for (int i = 0; i < 5; ++i) {
      auto loan = pub.loan(5s);
      ASSERT_TRUE(loan);
      loan->commit();
    }
    ASSERT_TRUE(b.wait_status([](const json& s) {
      for (const auto& st : s["streams"])
        if (st["name"] == "made") return st["published"] == 5;
      return false;
    }));
    const auto r = b.fbctl({"status"});
    EXPECT_NE(r.out.find("made"), std::string::npos) << r.out;
  }  // the publisher goes: the stream ends after its 5 frames
  int got = 0;
  while (auto f = sub->next(5s)) ++got;
  EXPECT_EQ(got, 5);
  EXPECT_TRUE(sub->ended());
  // Nobody holds a frame: the stream and its segment are gone.
  EXPECT_TRUE(b.wait_status([](const json& s) {
    for (const auto& st : s["streams"])
      if (st["name"] == "made") return false;
    return true;
  }));
  for (const auto& seg : b.segments()) EXPECT_EQ(seg.find(".made."), std::string::npos) << seg;
}

TEST(Publish, SigkillOfAProducerFreesItsLoansAndEndsTheStream) {
  Broker b(kNoCamera);
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  Process producer({FB_PUBLISHER_BIN, b.socket(), "held", "hold"}, b.runtime_dir() + "/pub");
  ASSERT_TRUE(b.wait_status([](const json& s) {
    for (const auto& st : s["streams"])
      if (st["name"] == "held") return true;
    return false;
  }));
  // Late joiner: from_latest gets the newest of the 3 frames.
  auto sub = client.subscribe("held", {.mode = framebroker::Mode::Every, .from_latest = true});
  auto held = sub.next(5s);
  ASSERT_TRUE(held);
  const uint16_t value = first_pixel(*held);
  for (int i = 0; i < 100 && producer.out().find("holding") == std::string::npos; ++i)
    std::this_thread::sleep_for(50ms);
  ASSERT_NE(producer.out().find("holding"), std::string::npos) << producer.err();
  EXPECT_GT(stream_of(b.status(), "held")["writing"].get<int>(), 0);

  producer.signal(SIGKILL);
  ASSERT_TRUE(producer.wait(5s).has_value());
  ASSERT_TRUE(b.wait_status([](const json& s) {
    const auto& st = stream_of(s, "held");
    return st["writing"] == 0 && st["state"] == "ended";
  }));
  EXPECT_TRUE(slot_invariant_holds(b.status()));
  EXPECT_FALSE(sub.next(2s).has_value());
  EXPECT_TRUE(sub.ended());
  EXPECT_EQ(first_pixel(*held), value);  // what it holds stays readable
  // Subscribing to an ended stream is refused.
  auto other = framebroker::Client::connect({.socket_path = b.socket()});
  EXPECT_THROW(other.subscribe("held"), framebroker::Error);
  held->release();
  client.flush();
  EXPECT_TRUE(b.wait_status([](const json& s) {
    for (const auto& st : s["streams"])
      if (st["name"] == "held") return false;
    return true;
  }));
  EXPECT_TRUE(b.process().running());
}

TEST(Publish, AdvertisingAgainMakesANewGeneration) {
  Broker b(kNoCamera);
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  uint32_t first_gen;
  {
    auto pub = client.advertise("again", small());
    first_gen = pub.gen();
  }
  auto pub = client.advertise("again", {.width = 128, .height = 32, .pixel_type = "Mono8"});
  EXPECT_GE(pub.gen(), first_gen);
  auto sub = client.subscribe("again");
  auto loan = pub.loan(5s);
  ASSERT_TRUE(loan);
  loan->commit();
  auto f = sub.next(5s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->width(), 128u);
  EXPECT_EQ(f->gen(), pub.gen());
}

TEST(Publish, HostileProducersGetErrorsAndChangeNothingForOthers) {
  Broker b(kNoCamera);
  b.fbctl({"start", "cam"});
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto watcher = client.subscribe("cam", {.mode = framebroker::Mode::Every});
  auto refused = [&](const framebroker::PublishOptions& o, const std::string& name, int code) {
    try {
      client.advertise(name, o);
      ADD_FAILURE() << "advertise of " << name << " was accepted";
    } catch (const framebroker::Error& e) {
      EXPECT_EQ(e.broker_code(), code) << e.what();
    }
  };
  refused(small(), "cam", int(wire::ErrorCode::NameTaken));  // a camera's name
  {
    auto pub = client.advertise("mine", small());
    refused(small(), "mine", int(wire::ErrorCode::NameTaken));  // another client's
  }
  refused({.width = 64, .height = 64, .pixel_type = "Mono16", .slots = 1}, "tiny",
          int(wire::ErrorCode::InvalidValue));
  refused({.width = 60000, .height = 60000, .pixel_type = "Mono16", .slots = 4000}, "huge",
          int(wire::ErrorCode::InvalidValue));
  refused({.width = 64, .height = 64, .pixel_type = "Mono99"}, "odd",
          int(wire::ErrorCode::InvalidValue));
  refused(small(), "bad/name", int(wire::ErrorCode::InvalidValue));

  RawClient raw(b.socket());
  raw.hello();
  raw_advertise(raw, "raw", 64, 8);
  auto adv = next_of(raw, wire::Message::Advertised);
  ASSERT_TRUE(adv);
  auto loaned = next_of(raw, wire::Message::Loaned);
  ASSERT_TRUE(loaned);
  const auto* l = loaned->envelope()->message_as_Loaned();
  ASSERT_GT(l->slots()->size(), 1u);
  const uint32_t gen = l->gen(), slot = l->slots()->Get(0);
  const uint32_t other_slot = l->slots()->Get(1);
  uint32_t not_lent = 0;
  while (std::find(l->slots()->begin(), l->slots()->end(), not_lent) != l->slots()->end())
    ++not_lent;
  auto expect_error = [&](wire::ErrorCode code) {
    auto e = next_of(raw, wire::Message::Error);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->envelope()->message_as_Error()->code(), code)
        << e->envelope()->message_as_Error()->message()->str();
  };
  raw_commit(raw, "raw", gen, not_lent, 64 * 64 * 2);
  expect_error(wire::ErrorCode::NotLoaned);
  raw_commit(raw, "raw", gen, slot, 1 << 30);
  expect_error(wire::ErrorCode::InvalidValue);
  raw_commit(raw, "raw", gen, slot, 64 * 64 * 2, 32);
  expect_error(wire::ErrorCode::FormatMismatch);
  raw_commit(raw, "raw", gen, slot, 64 * 64 * 2);  // good
  raw_commit(raw, "raw", gen, slot, 64 * 64 * 2);  // twice
  expect_error(wire::ErrorCode::NotLoaned);
  raw_commit(raw, "cam", gen, other_slot, 64);  // a stream it does not publish
  expect_error(wire::ErrorCode::NotLoaned);

  const json s = b.status();
  EXPECT_EQ(stream_of(s, "raw")["published"], 1);
  EXPECT_TRUE(slot_invariant_holds(s));
  EXPECT_TRUE(b.process().running());
  // The camera's subscriber lost nothing meanwhile.
  for (const auto& x : subscribers(s)) EXPECT_EQ(x["missed"], 0);
  EXPECT_TRUE(watcher.next(2s).has_value());
}

TEST(Publish, SubscribersCannotWriteAPublishedStreamsSlots) {
  Broker b(kNoCamera);
  Process producer({FB_PUBLISHER_BIN, b.socket(), "ro", "hold"}, b.runtime_dir() + "/pub");
  ASSERT_TRUE(b.wait_status([](const json& s) {
    for (const auto& st : s["streams"])
      if (st["name"] == "ro" && st["published"] == 3) return true;
    return false;
  }));
  Process probe({FB_PROBE_BIN, b.socket(), "ro", "write"}, b.runtime_dir() + "/probe",
                {"ASAN_OPTIONS=handle_segv=0:detect_leaks=0"});
  auto st = probe.wait(20s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(probe.out().find("write succeeded"), std::string::npos);
  ASSERT_TRUE(WIFSIGNALED(*st)) << probe.err();
  EXPECT_TRUE(WTERMSIG(*st) == SIGSEGV || WTERMSIG(*st) == SIGBUS);
  // The file itself stays the broker's, 0640.
  for (const auto& seg : b.segments()) {
    if (seg.find(".ro.") == std::string::npos) continue;
    const auto perms = std::filesystem::status("/dev/shm/" + seg).permissions();
    EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_read |
                                                       std::filesystem::perms::owner_write |
                                                       std::filesystem::perms::group_read);
  }
}
