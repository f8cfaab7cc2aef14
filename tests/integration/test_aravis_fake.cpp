// The aravis driver in a real framebrokerd, on Aravis' in-process Fake camera, with real
// subscribers and fbctl.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "framebroker/client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

const std::vector<std::string> kFakeCamera = {
    "--no-default-camera", "--camera", "aravis:name=arv,device=Fake_1,FrameRate=200,slots=16"};

}  // namespace

TEST(AravisBroker, FramesReachASubscriberWithWidenedMonotonicIds) {
  Broker broker(kFakeCamera);
  auto client = framebroker::Client::connect({.socket_path = broker.socket()});
  auto sub = client.subscribe("arv", {});
  std::optional<uint64_t> last_id, last_seq;
  int frames = 0;
  for (; frames < 300; ++frames) {
    auto f = sub.next(5s);
    ASSERT_TRUE(f) << "after " << frames << " frames: " << broker.process().err();
    EXPECT_EQ(f->width(), 512u);
    EXPECT_EQ(f->height(), 512u);
    EXPECT_EQ(framebroker::to_string(f->pixel_type()), std::string("Mono8"));
    EXPECT_GE(f->pixels().size(), 512u * 512u);
    if (last_id) EXPECT_GT(f->camera_frame_id(), *last_id) << "ids must keep rising";
    if (last_seq) EXPECT_EQ(f->seq(), *last_seq + 1) << "an every subscriber misses nothing";
    EXPECT_TRUE(f->meta().has_hw_timestamp()) << "the camera's timestamp";
    last_id = f->camera_frame_id();
    last_seq = f->seq();
  }
  EXPECT_GT(*last_id, 65535u) << "the Fake starts near the 16-bit wrap; ids are widened";
  const json s = broker.status();
  EXPECT_EQ(s["cameras"][0]["driver"], "aravis");
}

TEST(AravisBroker, PropertiesAndGenicamFeaturesThroughFbctl) {
  Broker broker(kFakeCamera);
  EXPECT_EQ(broker.fbctl({"get", "arv", "genicam.DeviceVendorName"}).out, "Aravis\n");
  EXPECT_EQ(broker.fbctl({"set", "arv", "genicam.AcquisitionFrameRate", "50"}).exit_code, 0);
  EXPECT_EQ(broker.fbctl({"get", "arv", "FrameRate"}).out, "50\n");
  Result busy = broker.fbctl({"set", "arv", "Width", "256"});
  EXPECT_NE(busy.exit_code, 0) << "format change while running";
  Result unknown = broker.fbctl({"get", "arv", "genicam.NoSuchThing"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no GenICam feature 'NoSuchThing'"), std::string::npos) << unknown.err;

  ASSERT_EQ(broker.fbctl({"stop", "arv"}).exit_code, 0);
  ASSERT_EQ(broker.fbctl({"set", "arv", "Width", "256"}).exit_code, 0);
  ASSERT_EQ(broker.fbctl({"set", "arv", "PixelType", "Mono16"}).exit_code, 0);
  ASSERT_EQ(broker.fbctl({"start", "arv"}).exit_code, 0);
  auto client = framebroker::Client::connect({.socket_path = broker.socket()});
  auto sub = client.subscribe("arv", {});
  auto f = sub.next(5s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->width(), 256u);
  EXPECT_EQ(framebroker::to_string(f->pixel_type()), std::string("Mono16"));
}

TEST(AravisBroker, StartStopCyclesLeaveNoSlotBehind) {
  Broker broker(kFakeCamera);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(broker.fbctl({"stop", "arv"}).exit_code, 0);
    ASSERT_EQ(broker.fbctl({"start", "arv"}).exit_code, 0);
    ASSERT_TRUE(broker.wait_status([&](const json& s) {
      return stream_of(s, "arv")["published"].get<uint64_t>() > uint64_t(20 * (i + 1));
    }));
  }
  ASSERT_EQ(broker.fbctl({"stop", "arv"}).exit_code, 0);
  const json s = broker.status();
  const json& st = stream_of(s, "arv");
  EXPECT_EQ(st["writing"], 0) << st;
  EXPECT_LE(st["ready"].get<int>(), 1) << "only the latest cache";
  EXPECT_TRUE(slot_invariant_holds(s));
  EXPECT_EQ(s["cameras"][0]["state"], "idle");
}

// fbctl asks the broker, which owns the cameras and scans with its own Aravis.
TEST(AravisBroker, FbctlDiscoversTheDevicesThroughTheBroker) {
  Broker broker({"--no-default-camera"});
  Result r = broker.fbctl({"cameras", "--discover", "--include-fake", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  bool fake = false;
  for (const auto& d : json::parse(r.out))
    fake = fake || (d["id"] == "Fake_1" && d["protocol"] == "Fake" && d.contains("physical_id"));
  EXPECT_TRUE(fake) << r.out;
  EXPECT_NE(broker.process().err().find("discovery found"), std::string::npos)
      << "the broker scanned, not fbctl:\n"
      << broker.process().err();
  Result table = broker.fbctl({"cameras", "--discover", "--include-fake"});
  EXPECT_NE(table.out.find("DEVICE"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("Fake_1"), std::string::npos) << table.out;
  // The broker's Aravis keeps the Fake interface on once used; without the flag it stays out.
  Result plain = broker.fbctl({"cameras", "--discover", "--json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  for (const auto& d : json::parse(plain.out)) EXPECT_NE(d["id"], "Fake_1") << plain.out;
}

TEST(AravisBroker, DiscoverWithoutABrokerSaysToStartOne) {
  Result r = run({FB_FBCTL_BIN, "cameras", "--discover", "--include-fake", "--socket",
                  "/tmp/fbtest-no-broker-" + std::to_string(getpid()) + ".sock"});
  EXPECT_EQ(r.exit_code, 3) << "exit code for no broker\n" << r.out << r.err;
  EXPECT_EQ(r.out, "") << "fbctl must not scan by itself";
  EXPECT_NE(r.err.find("Start it with `framebrokerd`"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--discover asks the broker"), std::string::npos) << r.err;
}

// A scan waits for GigE answers; the socket thread must not wait with it. A StatusRequest sent
// after a DiscoverRequest on the same connection is answered first, the devices after.
TEST(AravisBroker, DiscoveryDoesNotHoldUpTheSocketThread) {
  namespace wire = framebroker::wire;
  Broker broker(kFakeCamera);
  RawClient c(broker.socket());
  c.hello();
  auto welcome = c.receive_reply();
  ASSERT_TRUE(welcome && welcome->envelope()->message_type() == wire::Message::Welcome);
  {
    flatbuffers::FlatBufferBuilder fbb;
    wire::finish(fbb, 7, wire::Message::DiscoverRequest, wire::CreateDiscoverRequest(fbb, true));
    c.send(fbb);
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    wire::finish(fbb, 8, wire::Message::StatusRequest, wire::CreateStatusRequest(fbb));
    c.send(fbb);
  }
  auto first = c.receive_reply(30s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->envelope()->message_type(), wire::Message::Status)
      << "got " << wire::EnumNameMessage(first->envelope()->message_type()) << " first";
  EXPECT_EQ(first->envelope()->request_id(), 8u);
  auto second = c.receive_reply(30s);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->envelope()->message_type(), wire::Message::DiscoverReply);
  EXPECT_EQ(second->envelope()->request_id(), 7u);
  bool fake = false;
  for (const auto* d : *second->envelope()->message_as_DiscoverReply()->devices())
    fake = fake || d->id()->str() == "Fake_1";
  EXPECT_TRUE(fake);
  EXPECT_TRUE(broker.process().running());
}

// SIGTERM while a scan runs: the broker waits for the scan, answers nobody, and exits cleanly.
TEST(AravisBroker, AStopDuringAScanIsClean) {
  namespace wire = framebroker::wire;
  Broker broker({"--no-default-camera"});
  RawClient c(broker.socket());
  c.hello();
  ASSERT_TRUE(c.receive_reply());
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, 7, wire::Message::DiscoverRequest, wire::CreateDiscoverRequest(fbb, true));
  c.send(fbb);
  std::this_thread::sleep_for(100ms);  // the scan waits about a second for GigE answers
  broker.process().signal(SIGTERM);
  const auto st = broker.process().wait(20s);
  ASSERT_TRUE(st) << "framebrokerd did not stop";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << broker.process().err();
}

TEST(AravisBroker, AnUnknownDeviceIsAClearStartupError) {
  Result r = run({FB_BROKER_BIN, "--runtime-dir", "/tmp", "--instance", "arv-missing",
                  "--no-default-camera", "--camera", "aravis:name=x,device=NoSuchCamera-42"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot open device 'NoSuchCamera-42'"), std::string::npos) << r.err;
  Result no_device = run({FB_BROKER_BIN, "--runtime-dir", "/tmp", "--instance", "arv-missing",
                          "--no-default-camera", "--camera", "aravis:name=x"});
  EXPECT_EQ(no_device.exit_code, 1);
  EXPECT_NE(no_device.err.find("needs device ="), std::string::npos) << no_device.err;
  ::unlink("/dev/shm/fb.arv-missing.lock");
  ::unlink("/tmp/arv-missing.lock");
}
