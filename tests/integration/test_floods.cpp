// Floods of connections and malformed messages, and the configured limits: a lossless subscriber
// beside them loses nothing, `fbctl status` keeps answering, and each refusal says which limit.
#include <gtest/gtest.h>

#include <fstream>

#include "framebroker/client.hpp"
#include "framebroker/error.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace wire = framebroker::wire;

namespace {

std::vector<std::string> counter_camera(const std::string& name, int fps) {
  return {"--camera", "sim:name=" + name + ",Width=128,Height=128,Pattern=counter,FrameRate=" +
                          std::to_string(fps) + ",slots=64"};
}

}  // namespace

// The flood, by fbbench flood: 1000 connections opened and dropped (half mid-prefix) and
// 10,000 malformed messages (garbage, over the size limit, cut short) while a lossless
// subscriber takes a 500 fps counter stream and another client asks for status all along. How
// fast status answers is the report's business (docs/reliability.md); here: it always answers,
// nothing is missed, and no flooding connection stays.
TEST(Floods, ConnectionsAndMalformedMessagesCostALosslessSubscriberNothing) {
  const Result r = run(
      {FB_FBBENCH_BIN, "flood", "--connections", "1000", "--malformed", "10000", "--json"}, 240s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  SCOPED_TRACE(j.dump());
  EXPECT_EQ(j.at("missed"), 0);
  EXPECT_EQ(j.at("camera_dropped"), 0);
  EXPECT_GT(j.at("frames").get<int>(), 0);
  EXPECT_EQ(j.at("status_failures"), 0);
  EXPECT_GT(j.at("status_answers").get<int>(), 0);
  EXPECT_EQ(j.at("refused_connects"), 0);
  EXPECT_EQ(j.at("subscribers_left"), 1);
}

// max_clients, max_subscriptions and max_queued_mb: each refusal is a LimitReached error that
// names its key, and the refused client costs the others nothing.
TEST(Floods, LimitsRefuseWithAnErrorThatNamesTheKey) {
  std::vector<std::string> args{"--no-default-camera",
                                "--max-clients",
                                "3",
                                "--max-subscriptions",
                                "2",
                                "--max-queued-mb",
                                "1"};
  for (const char* cam : {"a", "b", "c"})
    for (auto& x : counter_camera(cam, 100)) args.push_back(x);
  Broker b(args);

  auto first = connect_to(b);
  auto second = connect_to(b);
  {
    auto third = connect_to(b);  // the limit is 3: this one is the last allowed
    try {
      auto fourth = connect_to(b);
      ADD_FAILURE() << "a fourth client was let in";
    } catch (const framebroker::Error& e) {
      EXPECT_EQ(e.broker_code(), int(wire::ErrorCode::LimitReached)) << e.what();
      EXPECT_NE(std::string(e.what()).find("max_clients"), std::string::npos) << e.what();
    }
  }
  // The third went: a new one fits again.
  // (status lists the fbctl that asks, too)
  EXPECT_TRUE(b.wait_status([](const json& s) { return s["broker"]["clients"] == 3; }))
      << b.status().dump();
  std::optional<framebroker::Client> again = connect_to(b);

  auto sa = first.subscribe("a");
  auto sb = first.subscribe("b");
  try {
    auto sc = first.subscribe("c");
    ADD_FAILURE() << "a third subscription was let in";
  } catch (const framebroker::Error& e) {
    EXPECT_EQ(e.broker_code(), int(wire::ErrorCode::LimitReached)) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_subscriptions"), std::string::npos) << e.what();
  }
  // The client that was refused still works, and so does the other on the same stream.
  EXPECT_TRUE(sa.next(std::chrono::seconds(5)).has_value());
  auto other = second.subscribe("c");
  EXPECT_TRUE(other.next(std::chrono::seconds(5)).has_value());
  again.reset();  // leaves room for the raw client below

  // A client that asks for status again and again and never reads its replies fills its queue
  // past 1 MiB and is disconnected; the broker goes on.
  RawClient hog(b.socket());
  hog.hello();
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, 7, wire::Message::StatusRequest, wire::CreateStatusRequest(fbb));
  bool refused = false;
  for (int i = 0; i < 20'000 && !refused; ++i) {
    try {
      hog.send(fbb);
    } catch (const std::exception&) {
      refused = true;  // the broker closed the connection
    }
  }
  EXPECT_TRUE(refused || hog.wait_closed(10s)) << "a client 1 MiB behind stays connected";
  EXPECT_TRUE(b.process().running());
  EXPECT_NE(b.process().err().find("stopped reading"), std::string::npos);
  EXPECT_TRUE(sb.next(std::chrono::seconds(5)).has_value());
}

// A bad limit in the config file is a clear error at start, naming the key.
TEST(Floods, ABadLimitInTheConfigIsAClearError) {
  const std::string path = "/tmp/fbtest-limits-" + std::to_string(::getpid()) + ".toml";
  std::ofstream(path) << "max_clients = 0\n";
  const Result r = run({FB_BROKER_BIN, "--config", path, "--runtime-dir", "/tmp", "--instance",
                        "limits" + std::to_string(::getpid())});
  std::remove(path.c_str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("max_clients must be a whole number from 1"), std::string::npos) << r.err;
}
