// Clients' own counters in the broker's status (issue 20): a client sends ClientStats (one JSON
// object, at most 8 KiB) and `fbctl status` lists it with the client's name, pid and role; bad
// ones are refused with a clear error while the connection, the broker and other clients go on.
// Then the real fbbridge: an exporter and an importer over tcp://127.0.0.1, each reporting its
// link to its broker, shown by `fbctl status --json` and the Bridges table.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace wire = framebroker::wire;

namespace {

// The status "clients" entry of the client named `name` (null when it is not listed).
json client_named(const json& status, const std::string& name) {
  for (const auto& c : status["clients"])
    if (c["client"] == name) return c;
  return nullptr;
}

json client_with_role(const json& status, const std::string& role) {
  for (const auto& c : status["clients"])
    if (c["role"] == role) return c;
  return nullptr;
}

void send_stats(RawClient& c, const std::string& text, uint32_t rid) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, rid, wire::Message::ClientStats,
               wire::CreateClientStats(fbb, fbb.CreateString(text)));
  c.send(fbb);
}

// The broker's answer to a refused ClientStats: its Error's text (empty when none came).
std::string refusal(RawClient& c) {
  auto reply = c.receive_reply();
  if (!reply) return {};
  const auto* err = reply->envelope()->message_as_Error();
  if (!err) return {};
  EXPECT_EQ(err->code(), wire::ErrorCode::InvalidValue);
  return err->message() ? err->message()->str() : std::string("(no text)");
}

}  // namespace

TEST(BridgeStatus, ClientStatsAreListedAndBadOnesRefused) {
  // A running counter camera: others_lose_nothing watches it while bad stats arrive.
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=32,Height=16,Pattern=counter,FrameRate=500,slots=64"});
  auto probe = framebroker::Client::connect(
      {.socket_path = b.socket(), .client_name = "probe", .role = "probe"});
  auto quiet = connect_to(b);  // connected, never reports: not listed

  probe.report_stats(R"({"answer": 42, "name": "first"})");
  probe.report_stats(R"({"answer": 43, "name": "second"})");  // replaces the first
  // Refused by the library before anything is sent.
  EXPECT_THROW(probe.report_stats(std::string(9000, ' ') + "{}"), framebroker::Error);
  EXPECT_THROW(probe.report_stats("not json"), framebroker::Error);
  EXPECT_THROW(probe.report_stats("[1, 2]"), framebroker::Error);
  EXPECT_THROW(probe.report_stats(""), framebroker::Error);
  try {
    probe.report_stats(R"({"open": )");
  } catch (const framebroker::Error& e) {
    EXPECT_EQ(e.code(), framebroker::Errc::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("not a JSON object"), std::string::npos) << e.what();
  }

  // The probe's own status comes after its stats on its connection.
  const auto own = probe.status();
  ASSERT_EQ(own.clients.size(), 1u);
  EXPECT_EQ(own.clients[0].client, "probe");
  EXPECT_EQ(own.clients[0].role, "probe");
  EXPECT_EQ(own.clients[0].pid, int(getpid()));
  EXPECT_EQ(json::parse(own.clients[0].stats)["name"], "second");
  EXPECT_TRUE(probe.take_async_errors().empty());

  // A raw peer skips the library's checks: the broker refuses, says why, keeps the connection
  // and the last good stats.
  RawClient raw(b.socket());
  raw.hello();
  ASSERT_TRUE(raw.receive_reply());  // Welcome
  send_stats(raw, R"({"raw": "good"})", 0);
  send_stats(raw, "{\"pad\": \"" + std::string(9000, 'x') + "\"}", 11);
  const std::string too_large = refusal(raw);
  EXPECT_NE(too_large.find("at most 8192 bytes"), std::string::npos) << too_large;
  send_stats(raw, "{\"unterminated\": ", 12);
  const std::string not_json = refusal(raw);
  EXPECT_NE(not_json.find("not a JSON object"), std::string::npos) << not_json;
  send_stats(raw, "[\"an\", \"array\"]", 13);
  EXPECT_NE(refusal(raw).find("not a JSON object"), std::string::npos);
  send_stats(raw, "", 14);
  EXPECT_NE(refusal(raw).find("not a JSON object"), std::string::npos);
  EXPECT_FALSE(raw.closed());

  // fbctl sees both reporters, each with its stats as an object; the quiet client is not listed.
  auto s = b.status();
  ASSERT_EQ(s["clients"].size(), 2u) << s["clients"].dump();
  const json p = client_named(s, "probe");
  ASSERT_FALSE(p.is_null());
  EXPECT_EQ(p["role"], "probe");
  EXPECT_EQ(p["pid"], int(getpid()));
  EXPECT_EQ(p["stats"]["answer"], 43);
  bool raw_listed = false;
  for (const auto& c : s["clients"])
    if (c["stats"].contains("raw")) raw_listed = c["stats"]["raw"] == "good";
  EXPECT_TRUE(raw_listed) << "the raw client's last good stats were lost: " << s["clients"].dump();
  // Keys that were there before stay.
  for (const char* key : {"broker", "streams", "subscribers", "cameras"})
    EXPECT_TRUE(s.contains(key)) << key;

  // The text view lists a non-bridge reporter verbatim; no Bridges table without a bridge.
  auto text = b.fbctl({"status"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("probe (pid " + std::to_string(getpid()) + ", probe)"), std::string::npos)
      << text.out;
  EXPECT_EQ(text.out.find("Bridges"), std::string::npos) << text.out;
  auto bridges = b.fbctl({"bridges"});
  ASSERT_EQ(bridges.exit_code, 0) << bridges.err;
  EXPECT_NE(bridges.out.find("(no bridges)"), std::string::npos) << bridges.out;

  // Bad stats while a lossless subscriber runs: it loses nothing, the broker goes on.
  others_lose_nothing(b, [&] {
    for (int i = 0; i < 50; ++i) {
      send_stats(raw, i % 2 ? std::string(20000, '{') : std::string("}{"), 100 + uint32_t(i));
      EXPECT_FALSE(refusal(raw).empty()) << "no refusal for bad stats " << i;
    }
  });
  EXPECT_FALSE(raw.closed());
  EXPECT_TRUE(b.process().running());

  // A client that goes away is no longer listed.
  { auto gone = std::move(probe); }
  EXPECT_TRUE(b.wait_status([](const json& st) { return client_named(st, "probe").is_null(); }));
}

#ifdef FB_FBBRIDGE_BIN

// An exporter and an importer on one host over loopback (no namespaces: the link itself is
// test_fbbridge's subject): each broker lists its bridge with its role, and the importer's link
// state, frames and rates; when the exporter goes, the importer reports its link down.
TEST(BridgeStatus, FbctlShowsExporterAndImporter) {
  Broker a(idle_counter_camera(200)), b;
  const int port = 20000 + int((getpid() * 7 + 13) % 20000);
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
  auto ex = std::make_unique<Process>(
      std::vector<std::string>{FB_FBBRIDGE_BIN, "export", "--bind", ep, "--stream", "cam", "--mode",
                               "every", "--socket", a.socket(), "--stats-interval-ms", "200"},
      a.runtime_dir() + "/export");
  Process im({FB_FBBRIDGE_BIN, "import", "--connect", ep, "--prefix", "R.", "--socket", b.socket(),
              "--stats-interval-ms", "200"},
             b.runtime_dir() + "/import");
  ASSERT_EQ(a.fbctl({"start", "cam"}).exit_code, 0);

  json imp;
  ASSERT_TRUE(b.wait_status(
      [&](const json& s) {
        imp = client_with_role(s, "bridge-import");
        return !imp.is_null() && imp["stats"]["link"] == "up" && imp["stats"]["frames"] > 0 &&
               imp["stats"]["frames_per_s"] > 0;
      },
      20s))
      << "importer: " << imp.dump() << "\n"
      << im.err();
  EXPECT_EQ(imp["stats"]["side"], "import");
  EXPECT_EQ(imp["stats"]["peer"], ep);
  EXPECT_EQ(imp["stats"]["stream_names"], json::array({"R.cam"}));
  EXPECT_GT(imp["stats"]["bytes_per_s"].get<double>(), 0);
  EXPECT_GE(imp["stats"]["lag_us"].get<int64_t>(), 0);
  EXPECT_EQ(imp["pid"], im.pid());

  json exp;
  ASSERT_TRUE(a.wait_status(
      [&](const json& s) {
        exp = client_with_role(s, "bridge-export");
        return !exp.is_null() && exp["stats"]["peers"] == 1 && exp["stats"]["frames"] > 0;
      },
      20s))
      << "exporter: " << exp.dump() << "\n"
      << ex->err();
  EXPECT_EQ(exp["stats"]["side"], "export");
  EXPECT_EQ(exp["stats"]["mode"], "every");
  EXPECT_EQ(exp["stats"]["stream_names"], json::array({"cam"}));
  ASSERT_EQ(exp["stats"]["peer_list"].size(), 1u);
  EXPECT_GE(exp["stats"]["peer_list"][0]["window"].get<int>(), 1);
  EXPECT_EQ(exp["pid"], ex->pid());

  // The tables.
  auto tb = b.fbctl({"status"});
  ASSERT_EQ(tb.exit_code, 0) << tb.err;
  EXPECT_NE(tb.out.find("Bridges"), std::string::npos) << tb.out;
  EXPECT_NE(tb.out.find("bridge-import"), std::string::npos) << tb.out;
  EXPECT_NE(tb.out.find(ep + " -> R.cam"), std::string::npos) << tb.out;
  auto ta = a.fbctl({"bridges"});
  ASSERT_EQ(ta.exit_code, 0) << ta.err;
  EXPECT_NE(ta.out.find("bridge-export"), std::string::npos) << ta.out;
  EXPECT_NE(ta.out.find("cam @ " + ep), std::string::npos) << ta.out;
  auto tj = a.fbctl({"bridges", "--json"});
  ASSERT_EQ(tj.exit_code, 0) << tj.err;
  EXPECT_EQ(json::parse(tj.out).at(0)["role"], "bridge-export") << tj.out;

  // The exporter goes: the importer, still connected to its broker, reports the link down.
  ex->signal(SIGTERM);
  EXPECT_TRUE(ex->wait(10s).has_value()) << "the exporter did not stop";
  EXPECT_TRUE(b.wait_status(
      [&](const json& s) {
        imp = client_with_role(s, "bridge-import");
        return !imp.is_null() && imp["stats"]["link"] == "down";
      },
      20s))
      << imp.dump();
  EXPECT_TRUE(
      a.wait_status([](const json& s) { return client_with_role(s, "bridge-export").is_null(); }));
  im.signal(SIGTERM);
  EXPECT_TRUE(im.wait(10s).has_value());
}

#else

TEST(BridgeStatus, FbctlShowsExporterAndImporter) {
  GTEST_SKIP() << "fbbridge is not built (libzmq not found: install libzmq3-dev)";
}

#endif
