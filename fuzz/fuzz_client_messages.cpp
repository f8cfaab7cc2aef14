// Fuzz target: the client library's parsing of what a broker sends (Welcome, Subscribed,
// Deliver with its nested FrameMeta, SequenceStarted/Finished, EndOfStream, Loaned, Error,
// Status, DiscoverReply, CameraReply), through the public API as programs use it.
//
// A fake broker on a thread of its own listens on a socket in a temporary directory. For each
// input the client connects; the fake broker answers Hello with a valid Welcome (request 1, no
// release lanes), writes the input once the client's next request came, and half-closes. The
// client, meanwhile, does what the input's first byte says (request 2 is the first after Hello, so
// a seed's reply to it uses request id 2):
//   0/1  subscribe to "cam" (every / latest) and take frames until the broker is lost
//   2    status(), then to_json() of it         3  discover_cameras()
//   4    camera("cam").properties() and get()
// Frames point into a real segment: an in-process daemon::Broker made stream "cam" (gen 1, 8 slots
// of a 64x48 Mono16 sim camera) for the fake broker's instance. The client must end every
// input with framebroker::Error (BrokerLost, at the latest) or normally; any other exception or a
// crash is a bug.
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "apply_config.hpp"
#include "broker.hpp"
#include "config.hpp"
#include "framebroker/client.hpp"
#include "framebroker/internal/wire.hpp"
#include "framebroker/status.hpp"

namespace fb = framebroker;
namespace fd = framebroker::daemon;
namespace wire = framebroker::wire;

namespace {

void write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // the client closed first: fine
    p += w;
    n -= size_t(w);
  }
}

// Reads one length-prefixed message the client sent; false when the client closed first.
bool read_message(int fd) {
  uint32_t len = 0;
  if (::recv(fd, &len, sizeof len, MSG_WAITALL) != ssize_t(sizeof len)) return false;
  std::vector<uint8_t> body(std::min<size_t>(len, wire::kMaxMessageBytes));
  return ::recv(fd, body.data(), body.size(), MSG_WAITALL) == ssize_t(body.size());
}

class FakeBroker {
 public:
  FakeBroker() {
    spdlog::set_level(spdlog::level::off);
    char tmpl[] = "/tmp/fb-fuzz-client-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    dir_ = tmpl;
    instance_ = "fuzzc" + std::to_string(::getpid());
    socket_path_ = dir_ + "/fake.sock";
    // The real broker only makes the segment the frames point into; it never listens.
    segments_ = std::make_unique<fd::Broker>(io_, instance_, dir_ + "/unused.sock");
    {
      auto state = segments_->lock_state();
      fd::add_camera(*segments_,
                     fd::parse_camera_spec("sim:name=cam,Width=64,Height=48,PixelType=Mono16,"
                                           "slots=8,start=false"));
    }
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path_.c_str(), sizeof addr.sun_path - 1);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 4) != 0)
      std::abort();
    flatbuffers::FlatBufferBuilder fbb;
    auto welcome = wire::CreateWelcome(fbb, wire::kProtocolVersion, fbb.CreateString("fuzz"),
                                       fbb.CreateString(instance_), 1, 0, 0);
    wire::finish(fbb, 1, wire::Message::Welcome, welcome);
    welcome_.assign(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
    thread_ = std::thread([this] { serve(); });
  }

  ~FakeBroker() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
    {
      auto state = segments_->lock_state();
      segments_->shutdown();
    }
    segments_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::string& socket_path() const { return socket_path_; }

  // The next connection gets `script` after its Welcome.
  void expect(const uint8_t* data, size_t size) {
    std::lock_guard lock(mu_);
    script_.assign(data, data + size);
    job_ = true;
    done_ = false;
  }
  // Waits until the fake broker saw that connection end.
  void wait_done() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  void serve() {
    for (;;) {
      const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      std::unique_lock lock(mu_);
      if (quit_) {
        if (c >= 0) ::close(c);
        return;
      }
      if (c < 0) continue;
      const std::vector<uint8_t> script = std::move(script_);
      job_ = false;
      lock.unlock();
      // As a broker would: Welcome after Hello, the rest after the client's first request (so
      // that it has, say, registered the subscription the frames are for).
      if (read_message(c)) write_all(c, welcome_.data(), welcome_.size());
      if (read_message(c)) write_all(c, script.data(), script.size());
      ::shutdown(c, SHUT_WR);
      uint8_t buf[4096];
      while (::recv(c, buf, sizeof buf, 0) > 0) {
      }
      ::close(c);
      lock.lock();
      done_ = true;
      cv_.notify_all();
    }
  }

  boost::asio::io_context io_{1};
  std::string dir_, instance_, socket_path_;
  std::unique_ptr<fd::Broker> segments_;
  std::vector<uint8_t> welcome_;
  int listen_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint8_t> script_;
  bool job_ = false, done_ = true, quit_ = false;
  std::thread thread_;
};

const bool verbose = std::getenv("FB_FUZZ_VERBOSE") != nullptr;  // how each input ended

FakeBroker& fake() {
  static FakeBroker f;
  return f;
}

// Looks at everything a frame offers, as a program would.
uint64_t touch(const fb::Frame& f) {
  uint64_t sum = f.seq() + f.camera_frame_id() + f.width() + f.height() + f.stride() + f.gen() +
                 f.slot() + uint64_t(f.pixel_type()) + f.stream().size();
  for (const std::byte b : f.pixels()) sum += uint8_t(b);
  if (auto sq = f.sequence()) sum += sq->id + uint64_t(f.sequence_position());
  for (const char axis : {'t', 'c', 'z', 'p'})
    if (auto i = f.index(axis)) sum += *i;
  return sum;
}

void scenario(uint8_t mode) {
  auto client = fb::Client::connect({.socket_path = fake().socket_path(), .client_name = "fuzz"});
  switch (mode % 5) {
    case 0:
    case 1: {
      fb::SubscribeOptions o;
      o.mode = mode % 5 == 0 ? fb::Mode::Every : fb::Mode::Latest;
      auto sub = client.subscribe("cam", o);
      volatile uint64_t sink = 0;
      auto async_errors = [&] {
        for (const auto& e : client.take_async_errors())
          if (verbose) std::fprintf(stderr, "  async error: %s\n", e.c_str());
      };
      try {
        for (int i = 0; i < 100000; ++i) {  // ends with BrokerLost once the input is used up
          auto f = sub.next(std::chrono::milliseconds(2000));
          if (!f) continue;
          sink = sink + touch(*f);
          if (verbose) std::fprintf(stderr, "  frame %llu\n", (unsigned long long)f->seq());
          if (sub.ended()) break;
        }
      } catch (const fb::Error&) {
        async_errors();
        throw;
      }
      async_errors();
      break;
    }
    case 2: {
      const fb::Status s = client.status();
      (void)fb::to_json(s);
      if (s.slot_map) (void)fb::to_json(*s.slot_map);
      break;
    }
    case 3:
      (void)client.discover_cameras(true);
      break;
    case 4: {
      auto cam = client.camera("cam");
      for (const auto& p : cam.properties()) (void)p.name.size();
      (void)cam.get("Width");
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t mode = size > 0 ? data[0] : 0;
  if (size > 0) ++data, --size;
  FakeBroker& f = fake();
  f.expect(data, size);
  try {
    scenario(mode);
  } catch (const fb::Error& e) {
    // Refused, BrokerLost, Timeout...: how a client learns of a bad or vanished broker.
    if (verbose) std::fprintf(stderr, "  error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_client_messages: a %s escaped the client library: %s\n",
                 typeid(e).name(), e.what());
    std::abort();
  }
  f.wait_done();
  return 0;
}
