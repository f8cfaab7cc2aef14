// Writes the seed corpora of the message fuzz targets: real messages built with the same
// FlatBuffers builders the broker and the client library use.
//   fb_fuzz_make_seeds OUT_DIR   ->  OUT_DIR/{broker_messages,client_messages,release_records,
//                                    fbview_http}/<name>
// (the config and replay_readers seeds are real files; see docs/fuzzing.md). Run it when the
// protocol changes, then minimize into the committed corpora with `tools/fuzz.sh --merge`.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "framebroker/internal/sequence_wire.hpp"
#include "framebroker/internal/wire.hpp"
#include "framebroker/sequence.hpp"

namespace fs = std::filesystem;
namespace wire = framebroker::wire;
namespace meta = framebroker::meta;
using Bytes = std::vector<uint8_t>;

namespace {

fs::path out_dir;

void save(const std::string& target, const std::string& name, const Bytes& bytes) {
  const fs::path dir = out_dir / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

Bytes bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

template <typename T>
Bytes message(uint32_t rid, wire::Message type,
              const std::function<flatbuffers::Offset<T>(flatbuffers::FlatBufferBuilder&)>& body) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, rid, type, body(fbb));
  return bytes_of(fbb);
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes prefix(uint8_t mode, const Bytes& rest) {
  return Bytes{mode} + rest;
}

framebroker::SequenceSpec spec() {
  auto s = framebroker::SequenceSpec::parse("t=2,c=2,z=3");
  s.channels = {"DAPI", "GFP"};
  s.z_step_um = 0.5;
  s.metadata = R"({"note":"seed"})";
  return s;
}

// ---- what a client sends (broker_messages); mode bit 0 makes the target send Hello first ----

Bytes subscribe(uint32_t rid, const char* stream, wire::Mode mode, uint32_t hold = 0) {
  return message<wire::Subscribe>(rid, wire::Message::Subscribe, [&](auto& fbb) {
    return wire::CreateSubscribe(fbb, fbb.CreateString(stream), mode, hold, 2, true);
  });
}

Bytes release(const char* stream, std::vector<wire::SlotRef> refs) {
  return message<wire::Release>(0, wire::Message::Release, [&](auto& fbb) {
    return wire::CreateRelease(fbb, fbb.CreateString(stream), fbb.CreateVectorOfStructs(refs));
  });
}

Bytes camera(uint32_t rid, wire::CameraOp op, const char* prop = "", const char* value = "",
             int64_t frames = -1, bool with_sequence = false) {
  return message<wire::CameraCommand>(rid, wire::Message::CameraCommand, [&](auto& fbb) {
    return wire::CreateCameraCommand(fbb, fbb.CreateString("cam"), op, fbb.CreateString(prop),
                                     fbb.CreateString(value), frames,
                                     with_sequence ? wire::to_wire(fbb, spec()) : 0);
  });
}

Bytes advertise(uint32_t rid, const char* stream) {
  return message<wire::Advertise>(rid, wire::Message::Advertise, [&](auto& fbb) {
    std::vector<flatbuffers::Offset<meta::Tag>> tags{
        meta::CreateTag(fbb, fbb.CreateString("objective"), fbb.CreateString("20x"))};
    return wire::CreateAdvertise(fbb, fbb.CreateString(stream), 32, 16, fbb.CreateString("Mono16"),
                                 0, 0, 4, 0, wire::PublishOverflow::Drop,
                                 fbb.CreateVectorOfSortedTables(&tags));
  });
}

Bytes commit(const char* stream, uint32_t gen, uint32_t slot) {
  return message<wire::Commit>(0, wire::Message::Commit, [&](auto& fbb) {
    std::vector<uint32_t> index{0, 1, 2};
    std::vector<flatbuffers::Offset<wire::FrameCommit>> frames{
        wire::CreateFrameCommit(fbb, gen, slot, 32 * 16 * 2, 32, 16, 7, 123456, true, 10.0,
                                fbb.CreateString("cam"), 3, 0, fbb.CreateVector(index))};
    return wire::CreateCommit(fbb, fbb.CreateString(stream), 0, fbb.CreateVector(frames));
  });
}

void broker_seeds() {
  const std::string t = "broker_messages";
  const Bytes status = message<wire::StatusRequest>(2, wire::Message::StatusRequest, [](auto& fbb) {
    return wire::CreateStatusRequest(fbb, fbb.CreateString("cam"));
  });
  const Bytes released =
      message<wire::ReleasesWritten>(0, wire::Message::ReleasesWritten,
                                     [](auto& fbb) { return wire::CreateReleasesWritten(fbb); });
  save(t, "hello_only", prefix(1, {}));
  save(t, "hello_lanes_status", prefix(3, status + released));
  save(t, "no_hello_status", prefix(0, status));
  save(t, "hello_twice", prefix(1, message<wire::Hello>(5, wire::Message::Hello, [](auto& fbb) {
                                  return wire::CreateHello(fbb, 99, fbb.CreateString("x"),
                                                           fbb.CreateString("saver"), false);
                                })));
  save(
      t, "subscribe_every_release",
      prefix(1, subscribe(2, "cam", wire::Mode::Every, 4) + release("cam", {{0, 1, 0}, {1, 1, 1}}) +
                    message<wire::Unsubscribe>(0, wire::Message::Unsubscribe, [](auto& fbb) {
                      return wire::CreateUnsubscribe(fbb, fbb.CreateString("cam"));
                    })));
  save(t, "subscribe_latest_lanes_split",
       prefix(7, subscribe(2, "cam", wire::Mode::Latest) + released));
  save(t, "subscribe_unknown_twice",
       prefix(1, subscribe(2, "nope", wire::Mode::Every) + subscribe(3, "cam", wire::Mode::Every) +
                     subscribe(4, "cam", wire::Mode::Every)));
  save(t, "camera_list_get_set",
       prefix(1, camera(2, wire::CameraOp::List) + camera(3, wire::CameraOp::Get, "Width") +
                     camera(4, wire::CameraOp::Set, "Exposure", "1000") +
                     camera(5, wire::CameraOp::Set, "Width", "abc")));
  save(t, "camera_start_snap_stop",
       prefix(1, subscribe(2, "cam", wire::Mode::Every) +
                     camera(3, wire::CameraOp::Start, "", "", 3) + camera(4, wire::CameraOp::Snap) +
                     camera(5, wire::CameraOp::Stop)));
  save(t, "camera_start_sequence",
       prefix(1, subscribe(2, "cam", wire::Mode::Latest) +
                     camera(3, wire::CameraOp::Start, "", "", 12, true) +
                     camera(4, wire::CameraOp::Stop)));
  save(t, "discover",
       prefix(1, message<wire::DiscoverRequest>(2, wire::Message::DiscoverRequest, [](auto& fbb) {
                return wire::CreateDiscoverRequest(fbb, false);
              })));
  // A client's own counters: a good object, one over 8 KiB, not JSON, an array; then status.
  const auto stats = [](uint32_t rid, std::string text) {
    return message<wire::ClientStats>(rid, wire::Message::ClientStats, [&](auto& fbb) {
      return wire::CreateClientStats(fbb, fbb.CreateString(text));
    });
  };
  save(t, "client_stats",
       prefix(1, stats(0, R"({"side":"import","link":"up","frames":12,"lag_us":400})") +
                     stats(3, "{\"pad\":\"" + std::string(8200, 'x') + "\"}") +
                     stats(4, "{\"open\": ") + stats(5, "[1,2]") + status));
  save(t, "advertise_commit",
       prefix(1, advertise(2, "pub") + commit("pub", 1, 0) + commit("pub", 1, 1) +
                     commit("pub", 9, 99)));
  save(t, "advertise_sequence",
       prefix(1, advertise(2, "pub") +
                     message<wire::BeginSequence>(3, wire::Message::BeginSequence,
                                                  [](auto& fbb) {
                                                    return wire::CreateBeginSequence(
                                                        fbb, fbb.CreateString("pub"),
                                                        wire::to_wire(fbb, spec()));
                                                  }) +
                     commit("pub", 1, 0) +
                     message<wire::EndSequence>(0, wire::Message::EndSequence, [](auto& fbb) {
                       return wire::CreateEndSequence(fbb, fbb.CreateString("pub"));
                     })));
  save(t, "advertise_subscribe_own",
       prefix(1, advertise(2, "pub") + subscribe(3, "pub", wire::Mode::Every) +
                     commit("pub", 1, 0) + release("pub", {{0, 1, 0}})));
  // Framing: a length over the limit, a length with too few bytes, a body that fails to verify.
  save(t, "too_large", prefix(1, Bytes{0x00, 0x00, 0x20, 0x00, 1, 2, 3}));
  save(t, "truncated", prefix(1, Bytes{0x40, 0, 0, 0, 1, 2, 3, 4}));
  Bytes bad = status;
  bad[8] ^= 0x7f;
  save(t, "corrupt_body", prefix(1, bad));
}

// ---- what a broker sends (client_messages): Welcome (request 1) comes from the target ----

Bytes frame_meta(uint64_t seq, uint32_t slot, uint64_t seq_id = 0) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint32_t> index{0, 1, uint32_t(seq % 3)};
  std::vector<flatbuffers::Offset<meta::Tag>> tags{
      meta::CreateTag(fbb, fbb.CreateString("a"), fbb.CreateString("b"))};
  auto m = meta::CreateFrameMeta(fbb, fbb.CreateString("cam"), seq + 100, seq, 1, slot, 5, true,
                                 1000 + seq, 2000 + seq, 64, 48, 128, 64 * 48 * 2,
                                 meta::PixelType::Mono16, 16, 0, 0, 64, 48, 1, 1, 100.0,
                                 fbb.CreateVectorOfSortedTables(&tags), fbb.CreateString("src"),
                                 int64_t(seq), seq_id, seq_id ? fbb.CreateString("tcz") : 0,
                                 seq_id ? fbb.CreateVector(index) : 0, seq_id ? int64_t(seq) : -1);
  fbb.Finish(m);
  return bytes_of(fbb);
}

Bytes subscribed(uint32_t rid, wire::Mode mode) {
  return message<wire::Subscribed>(rid, wire::Message::Subscribed, [&](auto& fbb) {
    return wire::CreateSubscribed(fbb, fbb.CreateString("cam"), fbb.CreateString("fb.x.cam.1"), 1,
                                  8, 64 * 48 * 2, mode, 4, 1, 0, 0);
  });
}

Bytes deliver(std::vector<std::pair<uint64_t, uint32_t>> frames, uint64_t seq_id = 0,
              uint32_t gen = 1) {
  return message<wire::Deliver>(0, wire::Message::Deliver, [&](auto& fbb) {
    std::vector<flatbuffers::Offset<wire::FrameReady>> ready;
    for (const auto& [seq, slot] : frames) {
      const Bytes m = frame_meta(seq, slot, seq_id);
      auto nested = fbb.CreateVector(m);
      ready.push_back(wire::CreateFrameReady(fbb, fbb.CreateString("cam"), gen, slot, seq, nested));
    }
    return wire::CreateDeliver(fbb, fbb.CreateVector(ready));
  });
}

Bytes sequence_started(uint64_t id) {
  return message<wire::SequenceStarted>(0, wire::Message::SequenceStarted, [&](auto& fbb) {
    return wire::CreateSequenceStarted(fbb, fbb.CreateString("cam"), id, wire::to_wire(fbb, spec()),
                                       0);
  });
}

Bytes sequence_finished(uint64_t id) {
  return message<wire::SequenceFinished>(0, wire::Message::SequenceFinished, [&](auto& fbb) {
    return wire::CreateSequenceFinished(fbb, fbb.CreateString("cam"), id, 12, 0, true);
  });
}

Bytes end_of_stream() {
  return message<wire::EndOfStream>(0, wire::Message::EndOfStream, [](auto& fbb) {
    return wire::CreateEndOfStream(fbb, fbb.CreateString("cam"), fbb.CreateString("producer gone"));
  });
}

Bytes error(uint32_t rid, wire::ErrorCode code) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::build_error(fbb, rid, code, "seed error");
  return bytes_of(fbb);
}

void client_seeds() {
  const std::string t = "client_messages";
  save(t, "every_frames",
       prefix(0, subscribed(2, wire::Mode::Every) + deliver({{0, 0}, {1, 1}, {2, 2}}) +
                     deliver({{3, 3}})));
  save(t, "latest_frames", prefix(1, subscribed(2, wire::Mode::Latest) + deliver({{7, 5}})));
  save(t, "every_sequence_end",
       prefix(0, subscribed(2, wire::Mode::Every) + sequence_started(4) +
                     deliver({{0, 0}, {1, 1}}, 4) + sequence_finished(4) + deliver({{2, 2}}) +
                     end_of_stream()));
  save(t, "every_bad_slot_gen",
       prefix(0, subscribed(2, wire::Mode::Every) + deliver({{0, 200}}) + deliver({{1, 1}}, 0, 7)));
  save(t, "every_async_errors",
       prefix(0, subscribed(2, wire::Mode::Every) + error(0, wire::ErrorCode::NotHeld) +
                     message<wire::Loaned>(0, wire::Message::Loaned,
                                           [](auto& fbb) {
                                             std::vector<uint32_t> s{1, 2};
                                             return wire::CreateLoaned(fbb, fbb.CreateString("cam"),
                                                                       1, fbb.CreateVector(s));
                                           }) +
                     deliver({{0, 0}}) + error(0, wire::ErrorCode::SlowReader)));
  save(t, "subscribe_refused", prefix(0, error(2, wire::ErrorCode::UnknownStream)));
  save(t, "subscribe_wrong_reply",
       prefix(0, end_of_stream() + deliver({{0, 0}}) +
                     message<wire::Status>(2, wire::Message::Status,
                                           [](auto& fbb) { return wire::CreateStatus(fbb); })));
  const Bytes status = message<wire::Status>(2, wire::Message::Status, [](auto& fbb) {
    auto broker =
        wire::CreateBrokerInfo(fbb, fbb.CreateString("x"), 42, fbb.CreateString("0.1.0"), 12.5, 3);
    std::vector<uint32_t> last{1, 0, 2};
    auto seq = wire::CreateSequenceStatus(fbb, 4, wire::to_wire(fbb, spec()), 6, 1,
                                          fbb.CreateVector(last), true, false);
    auto format = wire::CreateFrameFormat(fbb, 64, 48, fbb.CreateString("Mono16"));
    std::vector<flatbuffers::Offset<wire::StreamInfo>> streams{wire::CreateStreamInfo(
        fbb, fbb.CreateString("cam"), fbb.CreateString("sim"), 1, 8, 6144, 5, 1, 2, 100, 3, 30.0,
        99, format, fbb.CreateString("drop"), fbb.CreateString("fb.x.cam.1"), 1, 2, 6144, 0.2, 0,
        90, 10, 20, 30, 40, fbb.CreateString("camera"), 0, 0, fbb.CreateString("live"), seq)};
    std::vector<flatbuffers::Offset<wire::SubscriberInfo>> subs{wire::CreateSubscriberInfo(
        fbb, 1, fbb.CreateString("fbsave"), 77, 1000, fbb.CreateString("cam"), wire::Mode::Every, 4,
        0, 1, 0, 100, 0, 0, 99, 0, 1700000000000, 1000, fbb.CreateString("saver"))};
    std::vector<flatbuffers::Offset<wire::CameraInfo>> cams{
        wire::CreateCameraInfo(fbb, fbb.CreateString("cam"), fbb.CreateString("sim"), true, 100,
                               fbb.CreateString("running"), fbb.CreateString(""), 30.0)};
    std::vector<flatbuffers::Offset<wire::SlotHolder>> holders{
        wire::CreateSlotHolder(fbb, 1, fbb.CreateString("fbsave"), 77, false)};
    std::vector<flatbuffers::Offset<wire::SlotInfo>> slots{
        wire::CreateSlotInfo(fbb, 0, fbb.CreateString("ready"), 99, 1.5, fbb.CreateVector(holders)),
        wire::CreateSlotInfo(fbb, 1, fbb.CreateString("free"))};
    auto map = wire::CreateSlotMap(fbb, fbb.CreateString("cam"), 1, fbb.CreateVector(slots));
    return wire::CreateStatus(fbb, broker, fbb.CreateVector(streams), fbb.CreateVector(subs),
                              fbb.CreateVector(cams), map);
  });
  save(t, "status", prefix(2, status));
  save(t, "discover",
       prefix(3, message<wire::DiscoverReply>(2, wire::Message::DiscoverReply, [](auto& fbb) {
                std::vector<flatbuffers::Offset<wire::DeviceInfo>> d{wire::CreateDeviceInfo(
                    fbb, fbb.CreateString("Aravis-Fake-1"), fbb.CreateString("00:11"),
                    fbb.CreateString("Aravis"), fbb.CreateString("Fake"), fbb.CreateString("1"),
                    fbb.CreateString("Fake"), fbb.CreateString("-"))};
                return wire::CreateDiscoverReply(fbb, fbb.CreateVector(d));
              })));
  auto camera_reply = [](uint32_t rid, bool props) {
    return message<wire::CameraReply>(rid, wire::Message::CameraReply, [props](auto& fbb) {
      std::vector<flatbuffers::Offset<flatbuffers::String>> allowed{fbb.CreateString("Mono8"),
                                                                    fbb.CreateString("Mono16")};
      std::vector<flatbuffers::Offset<wire::PropertyInfo>> p{
          wire::CreatePropertyInfo(fbb, fbb.CreateString("PixelType"), wire::PropertyType::Enum,
                                   fbb.CreateString("Mono16"), 0, 0, 0, false,
                                   fbb.CreateVector(allowed)),
          wire::CreatePropertyInfo(fbb, fbb.CreateString("Width"), wire::PropertyType::Int,
                                   fbb.CreateString("64"), fbb.CreateString("px"), 1, 8192, true)};
      return wire::CreateCameraReply(fbb, fbb.CreateString("cam"), fbb.CreateString("64"),
                                     props ? fbb.CreateVector(p) : 0, false);
    });
  };
  save(t, "camera_properties_get", prefix(4, camera_reply(2, true) + camera_reply(3, false)));
  save(t, "camera_refused", prefix(4, error(2, wire::ErrorCode::PermissionDenied)));
}

// ---- release_records: scripts (see fuzz_release_records.cpp) ----

void release_seeds() {
  const std::string t = "release_records";
  // assign 1, hold {1,2,3}, release it properly, drain; assign 2, hold, release, drain_all.
  save(t, "assign_release_drain",
       {0, 0, 3, 0, 1, 2, 3, 8, 0, 0, 6, 0, 0, 1, 3, 1, 1, 1, 1, 8, 1, 0, 7});
  // a release of a frame not held (a double release): the lane dies.
  save(t, "double_release", {0, 0, 3, 0, 1, 2, 3, 8, 0, 0, 8, 0, 0, 6, 0, 6, 0});
  // head moved backwards, then too far.
  save(t, "head_backwards", {0, 0, 5, 0, 9, 6, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0});
  save(t, "head_too_far", {0, 0, 5, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 7});
  // a raw record of a future epoch; an old epoch after unassign and assign again.
  Bytes raw{0, 0, 4, 0, 0};
  for (int i = 0; i < 24; ++i) raw.push_back(i == 16 ? 9 : 0);
  save(t, "future_epoch", raw + Bytes{5, 0, 2, 6, 0});
  save(t, "stale_epoch", {0, 0, 3, 0, 1, 1, 1, 8, 0, 0, 1, 0, 0, 0, 2, 0, 1, 7, 6, 0});
  save(t, "wake_and_full", {0, 0, 2, 0, 1, 0, 1, 2, 1, 1, 0, 2, 0, 3, 5, 0, 255, 6, 1, 7});
}

// ---- fbview_http: requests as browsers and scripts send them ----

Bytes text(const std::string& s) {
  return {s.begin(), s.end()};
}

// A client WebSocket frame (masked, as a browser sends it).
Bytes ws_frame(uint8_t opcode, const std::string& payload) {
  Bytes f{uint8_t(0x80 | opcode)};
  const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  if (payload.size() < 126) {
    f.push_back(uint8_t(0x80 | payload.size()));
  } else {
    f.push_back(0x80 | 126);
    f.push_back(uint8_t(payload.size() >> 8));
    f.push_back(uint8_t(payload.size()));
  }
  f.insert(f.end(), mask, mask + 4);
  for (size_t i = 0; i < payload.size(); ++i) f.push_back(uint8_t(payload[i]) ^ mask[i % 4]);
  return f;
}

void fbview_seeds() {
  const std::string t = "fbview_http";
  save(t, "get_index", text("GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"));
  save(t, "get_streams_keepalive",
       text("GET /api/streams HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"
            "HEAD /favicon.ico HTTP/1.1\r\nHost: localhost\r\n\r\n"
            "GET /nope?x=%41%zz+1 HTTP/1.0\r\n\r\n"));
  save(t, "post_refused",
       text("POST /api/streams HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"));
  save(t, "chunked",
       text("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\n\r\n"));
  const std::string upgrade =
      "GET /ws?stream=cam&channel=GFP HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n";
  save(t, "ws_foreign_origin", text(upgrade + "Origin: http://evil.example\r\n\r\n"));
  save(t, "ws_allowed_origin", text(upgrade + "Origin: http://example.org:8080/\r\n\r\n"));
  save(t, "ws_ipv6_origin", text(upgrade + "Origin: http://[::1]:8080\r\n\r\n"));
  save(
      t, "ws_not_ws_path",
      text("GET /other HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  save(t, "ws_messages",
       text(upgrade + "\r\n") +
           ws_frame(1, R"({"type":"ready","max_width":640,"max_height":480,"region":[0,0,32,32],)"
                       R"("auto":"minmax","black":0,"white":65535,"gamma":1.5,"channel":"DAPI"})") +
           ws_frame(1, R"({"type":"restyle","auto":"manual","black":10,"white":1e40,"gamma":0})") +
           ws_frame(1, R"({"type":"probe","x":3,"y":4})") +
           ws_frame(1, R"({"type":"ready","region":[1e300,-5,"a",null],"channel":7})") +
           ws_frame(2, "binary") + ws_frame(1, "not json") + ws_frame(1, R"({"type":"other"})") +
           ws_frame(9, "ping") + ws_frame(8, ""));
  save(t, "ws_no_stream",
       text("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: "
            "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  save(t, "garbage", text("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n  e.g. %s /tmp/seeds\n", argv[0], argv[0]);
    return 2;
  }
  out_dir = argv[1];
  broker_seeds();
  client_seeds();
  release_seeds();
  fbview_seeds();
  std::printf("seeds written under %s\n", out_dir.c_str());
  return 0;
}
