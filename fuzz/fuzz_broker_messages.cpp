// Fuzz target: the broker's handling of what a client sends. A real daemon::Broker (one sim
// camera, "cam", idle) lives for the whole run; each input is one client connection, a
// socketpair whose far end the broker adopts as if it had accepted it. The input's first byte
// chooses how it is sent:
//   bit 0: a valid Hello goes first (so the fuzzer reaches the handlers behind the handshake)
//   bit 1: that Hello asks for release lanes (the broker makes and passes a memfd)
//   bit 2: the bytes go in 7-byte pieces with the broker polled between (partial framing)
// The rest is written as is (length-prefixed Envelopes, wire::FrameReader splits and verifies
// them). Then the client half-closes, the broker's replies are read and dropped until the broker
// closes its end. The broker must never crash, hang or keep the connection: after each input
// no client is left and the camera is back to how it was.
#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "apply_config.hpp"
#include "broker.hpp"
#include "config.hpp"
#include "framebroker/internal/wire.hpp"
#include "socket_feed.hpp"

namespace fd = framebroker::daemon;
using fbfuzz::pump;
namespace wire = framebroker::wire;

namespace {

struct World {
  boost::asio::io_context io{1};
  std::string dir;
  std::unique_ptr<fd::Broker> broker;

  World() {
    spdlog::set_level(spdlog::level::off);
    char tmpl[] = "/tmp/fb-fuzz-broker-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    dir = tmpl;
    const std::string instance = "fuzzb" + std::to_string(::getpid());
    broker = std::make_unique<fd::Broker>(io, instance, dir + "/broker.sock");
    auto state = broker->lock_state();
    // A client may ask for a published ring: keep those small (the default is a quarter of RAM).
    broker->set_publish_limits(-1, "", 16 << 20, -1);
    fd::add_camera(*broker, fd::parse_camera_spec(
                                "sim:name=cam,Width=64,Height=48,PixelType=Mono16,FrameRate=2000,"
                                "slots=8,start=false"));
  }
  ~World() {
    {
      auto state = broker->lock_state();
      broker->shutdown();
    }
    pump(io);
    broker.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // The camera as the next input expects it: idle, small.
  void reset_camera() {
    auto state = broker->lock_state();
    auto* s = broker->find_stream("cam");
    if (!s) std::abort();  // nothing a client sends may remove a camera
    s->stop();
    for (const auto& [k, v] : {std::pair{"Width", "64"},
                               {"Height", "48"},
                               {"PixelType", "Mono16"},
                               {"FrameRate", "2000"}}) {
      try {
        if (s->camera().get(k) != v) s->camera().set(k, v);
      } catch (const std::exception&) {
      }
    }
  }
};

World& world() {
  static World w;
  return w;
}

std::vector<uint8_t> hello_message(bool lanes) {
  flatbuffers::FlatBufferBuilder fbb;
  auto hello = wire::CreateHello(fbb, wire::kProtocolVersion, fbb.CreateString("fuzz"),
                                 fbb.CreateString("fuzz"), lanes);
  wire::finish(fbb, 1, wire::Message::Hello, hello);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

const bool verbose = std::getenv("FB_FUZZ_VERBOSE") != nullptr;  // what the broker answered

// Reads and drops what the broker sent; false once it closed its end.
bool drain(int fd) {
  alignas(8) uint8_t buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0 && verbose) {
      for (size_t at = 0; at + 8 <= size_t(n);) {  // message types, when the read is whole ones
        uint32_t len;
        std::memcpy(&len, buf + at, 4);
        if (at + 4 + len > size_t(n) || !wire::verify_envelope(buf + at, 4 + len)) break;
        const auto* env = wire::GetSizePrefixedEnvelope(buf + at);
        std::fprintf(stderr, "  reply %s", wire::EnumNameMessage(env->message_type()));
        if (const auto* e = env->message_as_Error())
          std::fprintf(stderr, ": %s", e->message() ? e->message()->c_str() : "");
        std::fprintf(stderr, "\n");
        at += 4 + len;
      }
    }
    if (n > 0) continue;
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    return false;  // ECONNRESET: closed too
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  const uint8_t mode = size > 0 ? data[0] : 0;
  if (size > 0) ++data, --size;

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  w.broker->adopt(fd::Connection::Socket(w.io, boost::asio::local::stream_protocol(), sv[1]));
  const int me = sv[0];
  ::fcntl(me, F_SETFL, O_NONBLOCK);

  std::vector<uint8_t> out;
  if (mode & 1) out = hello_message(mode & 2);
  out.insert(out.end(), data, data + size);
  const size_t piece = (mode & 4) ? 7 : out.size();
  fbfuzz::feed_and_close(me, out.data(), out.size(), piece, w.io, drain, "fuzz_broker_messages");
  w.reset_camera();
  pump(w.io);
  return 0;
}
