// Bad input gets its documented error, never crashes the broker, and costs
// the other clients nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace wire = framebroker::wire;

namespace {

const std::vector<std::string> kCamera = {
    "--no-default-camera", "--camera",
    "sim:name=cam,Width=128,Height=128,Pattern=counter,FrameRate=200,slots=32"};

wire::ErrorCode error_code(const std::optional<wire::Received>& m) {
  if (!m) return wire::ErrorCode::None;
  const auto* err = m->envelope()->message_as_Error();
  return err ? err->code() : wire::ErrorCode::None;
}

void subscribe(RawClient& c, const std::string& stream, uint32_t rid = 2) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, rid, wire::Message::Subscribe,
               wire::CreateSubscribe(fbb, fbb.CreateString(stream), wire::Mode::Every));
  c.send(fbb);
}

void release(RawClient& c, const std::string& stream, const wire::SlotRef& ref) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<wire::SlotRef> refs{ref};
  wire::finish(fbb, 0, wire::Message::Release,
               wire::CreateRelease(fbb, fbb.CreateString(stream), fbb.CreateVectorOfStructs(refs)));
  c.send(fbb);
}

// The first frame delivered to a raw subscriber.
std::optional<wire::SlotRef> first_delivered(RawClient& c) {
  for (int i = 0; i < 100; ++i) {
    auto m = c.receive(5s);
    if (!m) return std::nullopt;
    if (const auto* d = m->envelope()->message_as_Deliver(); d && d->frames()->size() > 0) {
      const auto* f = d->frames()->Get(0);
      return wire::SlotRef(f->seq(), f->gen(), f->slot());
    }
  }
  return std::nullopt;
}

}  // namespace

TEST(BadInput, DoubleReleaseAndForeignSlotsAreRefusedWithoutChangingCounts) {
  Broker b(kCamera);
  others_lose_nothing(b, [&] {
    RawClient c(b.socket());
    c.hello();
    ASSERT_TRUE(c.receive_reply());
    subscribe(c, "cam");
    auto sub = c.receive_reply();
    ASSERT_TRUE(sub && sub->envelope()->message_type() == wire::Message::Subscribed);
    auto ref = first_delivered(c);
    ASSERT_TRUE(ref);
    release(c, "cam", *ref);
    release(c, "cam", *ref);  // double release
    EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::NotHeld);
    release(c, "cam", wire::SlotRef(ref->seq() + 1000000, ref->gen(), (ref->slot() + 7) % 32));
    EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::NotHeld);
    release(c, "cam", wire::SlotRef(ref->seq(), ref->gen(), 4000000000u));  // no such slot
    EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::NotHeld);
    release(c, "nope", *ref);
    EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::UnknownStream);
    EXPECT_FALSE(c.closed());  // refused, not disconnected
  });
}

TEST(BadInput, ReleaseOfAnotherClientsFrameIsRefused) {
  Broker b(kCamera);
  RawClient owner(b.socket()), thief(b.socket());
  owner.hello();
  thief.hello();
  ASSERT_TRUE(owner.receive_reply());
  ASSERT_TRUE(thief.receive_reply());
  subscribe(owner, "cam");
  ASSERT_TRUE(owner.receive_reply());
  auto ref = first_delivered(owner);
  ASSERT_TRUE(ref);
  auto held_by_owner = [&] {
    const json s = b.status();
    for (const auto& sub : s["subscribers"]) return sub["held"].get<int>();
    return -1;
  };
  const int before = held_by_owner();
  ASSERT_GT(before, 0);
  release(thief, "cam", *ref);  // the thief holds nothing of cam
  EXPECT_EQ(error_code(thief.receive_reply()), wire::ErrorCode::NotHeld);
  EXPECT_GE(held_by_owner(), 1);
  EXPECT_TRUE(slot_invariant_holds(b.status()));
  release(owner, "cam", *ref);  // while the owner's own release still works
  EXPECT_EQ(error_code(owner.receive(300ms)), wire::ErrorCode::None);
}

TEST(BadInput, UnknownStreamIsRefusedWithTheListOfStreams) {
  Broker b(kCamera);
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  try {
    client.subscribe("nope");
    FAIL() << "subscribed to a stream that does not exist";
  } catch (const framebroker::Error& e) {
    EXPECT_EQ(e.code(), framebroker::Errc::UnknownStream);
    EXPECT_NE(std::string(e.what()).find("cam"), std::string::npos) << e.what();
  }
  auto sub = client.subscribe("cam");  // the connection still works
  EXPECT_TRUE(sub.next(5s).has_value());
  auto r = b.fbctl({"watch", "nope", "--frames", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no stream named 'nope'"), std::string::npos) << r.err;
}

TEST(BadInput, GarbageBytesGetMalformedAndTheConnectionCloses) {
  Broker b(kCamera);
  others_lose_nothing(b, [&] {
    RawClient c(b.socket());
    c.hello();
    ASSERT_TRUE(c.receive_reply());
    const uint8_t garbage[] = {16, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1,  2,
                               3,  4, 5, 6, 7,    8,    9,    10,   11, 12};
    c.send_bytes(garbage, sizeof garbage);
    EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::Malformed);
    EXPECT_TRUE(c.wait_closed());
  });
}

TEST(BadInput, GarbageBeforeHelloIsRefused) {
  Broker b(kCamera);
  RawClient c(b.socket());
  const uint8_t garbage[] = {8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  c.send_bytes(garbage, sizeof garbage);
  EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::Malformed);
  EXPECT_TRUE(c.wait_closed());
  EXPECT_EQ(b.fbctl({"status"}).exit_code, 0);
}

TEST(BadInput, OversizedLengthPrefixGetsTooLargeAndTheConnectionCloses) {
  Broker b(kCamera);
  others_lose_nothing(b, [&] {
    RawClient c(b.socket());
    c.hello();
    ASSERT_TRUE(c.receive_reply());
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
    c.send_bytes(huge, sizeof huge);
    EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::TooLarge);
    EXPECT_TRUE(c.wait_closed());
  });
}

TEST(BadInput, WrongProtocolVersionGetsProtocolMismatch) {
  Broker b(kCamera);
  others_lose_nothing(b, [&] {
    RawClient c(b.socket());
    c.hello(wire::kProtocolVersion + 41);
    auto m = c.receive_reply();
    EXPECT_EQ(error_code(m), wire::ErrorCode::ProtocolMismatch);
    EXPECT_TRUE(c.wait_closed());
  });
}

TEST(BadInput, MessagesOnlyTheBrokerSendsAreRefused) {
  Broker b(kCamera);
  RawClient c(b.socket());
  c.hello();
  ASSERT_TRUE(c.receive_reply());
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, 9, wire::Message::Deliver, wire::CreateDeliver(fbb));
  c.send(fbb);
  EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::Malformed);
  EXPECT_TRUE(b.process().running());
}

TEST(BadInput, BadConfigurationExitsWithAClearMessage) {
  auto r = run({FB_BROKER_BIN, "--runtime-dir", "/tmp/fbtest-badcfg", "--instance", "bad",
                "--camera", "sim:name=cam,Width=banana"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Width"), std::string::npos) << r.err;
  r = run({FB_BROKER_BIN, "--runtime-dir", "/tmp/fbtest-badcfg", "--instance", "bad", "--camera",
           "nodriver:name=cam"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown camera driver"), std::string::npos) << r.err;
  std::filesystem::remove_all("/tmp/fbtest-badcfg");
  std::filesystem::remove("/dev/shm/fb.bad.lock");  // the broker locked the instance before failing
}

TEST(BadInput, ATypeWithNoBodyGetsMalformedAndTheBrokerLives) {
  Broker b(kCamera);
  others_lose_nothing(b, [&] {
    for (auto type : {wire::Message::Hello, wire::Message::Subscribe, wire::Message::Release,
                      wire::Message::StatusRequest, wire::Message::CameraCommand}) {
      RawClient c(b.socket());
      if (type != wire::Message::Hello) {
        c.hello();
        ASSERT_TRUE(c.receive_reply());
      }
      flatbuffers::FlatBufferBuilder fbb;
      wire::EnvelopeBuilder env(fbb);
      env.add_request_id(7);
      env.add_message_type(type);  // and no message
      fbb.FinishSizePrefixed(env.Finish());
      c.send(fbb);
      EXPECT_EQ(error_code(c.receive_reply()), wire::ErrorCode::Malformed)
          << wire::EnumNameMessage(type);
      EXPECT_TRUE(c.wait_closed());
    }
  });
}

TEST(BadInput, SubscribingTwiceToOneStreamIsRefusedAndTheFirstSubscriptionLives) {
  Broker b(kCamera);
  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  auto sub = client.subscribe("cam");
  try {
    client.subscribe("cam");
    FAIL() << "second subscription accepted";
  } catch (const framebroker::Error& e) {
    EXPECT_EQ(e.code(), framebroker::Errc::InvalidArgument);
  }
  EXPECT_TRUE(sub.next(5s).has_value());
}
