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

namespace fd = framebroker::daemon;
namespace wire = framebroker::wire;

namespace {

// Runs what is ready (an io_context with no work left stops; it is restarted here).
size_t pump(boost::asio::io_context& io) {
  if (io.stopped()) io.restart();
  return io.poll();
}

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
  bool open = true;
  for (size_t at = 0; at < out.size() && open;) {
    const ssize_t n = ::send(me, out.data() + at, std::min(piece, out.size() - at), MSG_NOSIGNAL);
    if (n > 0)
      at += size_t(n);
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
      break;  // the broker closed: fine
    pump(w.io);
    open = drain(me);
  }
  ::shutdown(me, SHUT_WR);
  // Until the broker closes its end (it must: the client said no more).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (drain(me)) {
    if (pump(w.io) == 0) {
      pollfd p{me, POLLIN, 0};
      ::poll(&p, 1, 1);
    }
    if (std::chrono::steady_clock::now() > give_up) {
      std::fprintf(stderr, "fuzz_broker_messages: the broker kept a half-closed client 20 s\n");
      std::abort();
    }
  }
  ::close(me);
  pump(w.io);
  w.reset_camera();
  pump(w.io);
  return 0;
}
