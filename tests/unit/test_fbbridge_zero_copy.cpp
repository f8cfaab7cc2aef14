// fbbridge export sends the pixels from the slot, without a copy (issue 20): the real exporter
// (run_exporter, on a thread) serves a camera of an in-process broker to a bare ZeroMQ DEALER
// that plays the importer (Hello, then a Credit per frame). Counted meanwhile, in this process:
// - every memcpy call of our code (broker, client library, exporter) of a frame or more
//   (-Wl,--wrap=memcpy): none may happen;
// - every zmq_msg_init_data of a frame or more (-Wl,--wrap=zmq_msg_init_data): its data must lie
//   in a mapping of the broker's shared-memory segment, i.e. be a slot's pixels.
// libzmq's own copies are not ours to count (it is a shared library; for large messages it
// sends from the message's buffer), and the importer's receive is not the exporter's.
//
// Built as fb_fbbridge_tests (tests/CMakeLists.txt), not into fb_unit_tests: that executable
// already wraps memcpy for the Aravis test, and a wrapper can be defined once per executable.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "../support/broker_thread.hpp"
#include "apply_config.hpp"
#include "broker.hpp"
#include "config.hpp"
#include "fbbridge/bridge_wire.hpp"
#include "fbbridge/exporter.hpp"
#include "framebroker/client.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<size_t> g_frame_bytes{~size_t(0)};
std::atomic<uint64_t> g_frame_copies{0};
std::mutex g_sends_mu;
std::vector<const void*> g_sends;  // data of frame-sized zmq_msg_init_data calls (reserved)
}  // namespace

extern "C" void* __real_memcpy(void* dst, const void* src, size_t n);
extern "C" void* __wrap_memcpy(void* dst, const void* src, size_t n) {
  if (g_counting.load(std::memory_order_relaxed) && n >= g_frame_bytes.load()) ++g_frame_copies;
  return __real_memcpy(dst, src, n);
}
extern "C" int __real_zmq_msg_init_data(zmq_msg_t* msg, void* data, size_t size, zmq_free_fn* ffn,
                                        void* hint);
extern "C" int __wrap_zmq_msg_init_data(zmq_msg_t* msg, void* data, size_t size, zmq_free_fn* ffn,
                                        void* hint) {
  if (g_counting.load(std::memory_order_relaxed) && size >= g_frame_bytes.load()) {
    std::lock_guard lock(g_sends_mu);
    if (g_sends.size() < g_sends.capacity()) g_sends.push_back(data);
  }
  return __real_zmq_msg_init_data(msg, data, size, ffn, hint);
}

namespace {

namespace fb = framebroker;
namespace fd = framebroker::daemon;
namespace fbb = framebroker::fbbridge;
using namespace std::chrono_literals;

constexpr uint32_t kWidth = 1024, kHeight = 512;  // Mono16: 1 MiB frames
constexpr size_t kFrameBytes = size_t(kWidth) * kHeight * 2;
constexpr int kFrames = 40;

using fbtest::BrokerThread;

// The address ranges of this process's mappings of the instance's shared-memory segments.
std::vector<std::pair<uintptr_t, uintptr_t>> segment_mappings(const std::string& instance) {
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  const std::string needle = "/dev/shm/fb." + instance + ".";
  for (std::string line; std::getline(maps, line);) {
    if (line.find(needle) == std::string::npos) continue;
    uintptr_t lo = 0, hi = 0;
    char dash;
    std::istringstream(line) >> std::hex >> lo >> dash >> hi;
    out.emplace_back(lo, hi);
  }
  return out;
}

bool recv_part(void* s, zmq_msg_t& m) {
  return zmq_msg_recv(&m, s, 0) >= 0;
}

TEST(FbbridgeZeroCopy, ExporterSendsTheSlotsPixelsWithoutACopy) {
  spdlog::set_level(spdlog::level::warn);
  BrokerThread broker(
      "zc", "sim:name=cam,Width=" + std::to_string(kWidth) + ",Height=" + std::to_string(kHeight) +
                ",PixelType=Mono16,Pattern=empty,FrameRate=200,slots=16,start=false");
  // A port of its own (per process) on loopback.
  const int port = 20000 + int(::getpid() % 20000);
  fbb::ExportOptions eo;
  eo.bind = "tcp://127.0.0.1:" + std::to_string(port);
  eo.streams = {"cam"};
  eo.stats_interval = 0ms;
  eo.connect.socket_path = broker.socket();
  eo.connect.client_name = "zc-exporter";
  fbb::BridgeCounters counters;
  std::atomic<bool> stop{false};
  const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(wake, 0);
  std::string exporter_error;
  std::thread exporter([&] {
    try {
      fbb::run_exporter(eo, counters, stop, wake);
    } catch (const std::exception& e) {
      exporter_error = e.what();
    }
  });
  struct Stop {
    std::atomic<bool>& stop;
    int wake;
    std::thread& t;
    ~Stop() {
      stop = true;
      const uint64_t one = 1;
      [[maybe_unused]] auto r = ::write(wake, &one, sizeof one);
      t.join();
      ::close(wake);
    }
  } stopper{stop, wake, exporter};

  g_sends.reserve(4 * kFrames);
  g_frame_bytes = kFrameBytes;
  g_counting = true;
  bool counter_works;
  {  // does the counter see a frame-sized memcpy of our code? (Not under ASan, which
     // intercepts memcpy before the wrapper.)
    std::vector<char> a(kFrameBytes + size_t(::getpid() % 2)), b(a.size());
    std::memcpy(b.data(), a.data(), a.size());
    counter_works = g_frame_copies.exchange(0) == 1;
  }

  // The importer's side: Hello, then a Credit for every frame.
  void* ctx = zmq_ctx_new();
  void* dealer = zmq_socket(ctx, ZMQ_DEALER);
  const int linger = 0, timeout_ms = 10000;
  zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
  ASSERT_EQ(zmq_connect(dealer, eo.bind.c_str()), 0);
  flatbuffers::FlatBufferBuilder fbb;
  const uint64_t session = 0x5eed;
  fbb::build_hello(fbb, 42, session, 4, "zero-copy test");
  // The exporter binds once it has subscribed; ZeroMQ queues the Hello until it connects.
  ASSERT_GE(zmq_send(dealer, fbb.GetBufferPointer(), fbb.GetSize(), 0), 0);

  // The camera starts once the exporter has taken the Hello (a peer with credit): its `every`
  // subscription would otherwise miss what the ring cannot hold meanwhile.
  for (int i = 0; i < 1000 && counters.peers.load() == 0 && exporter_error.empty(); ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(exporter_error.empty()) << exporter_error;
  ASSERT_GT(counters.peers.load(), 0u) << "the exporter never took the Hello";
  {
    auto control = fb::Client::connect({.socket_path = broker.socket(), .client_name = "zc"});
    control.camera("cam").start(uint64_t(kFrames));
  }
  int got = 0;
  size_t pixel_bytes = 0;
  for (; got < kFrames; ++got) {
    zmq_msg_t header, pixels;
    zmq_msg_init(&header);
    zmq_msg_init(&pixels);
    const bool ok = recv_part(dealer, header) && zmq_msg_more(&header) && recv_part(dealer, pixels);
    if (ok) pixel_bytes = zmq_msg_size(&pixels);
    zmq_msg_close(&header);
    zmq_msg_close(&pixels);
    if (!ok) break;
    fbb::build_credit(fbb, session, uint64_t(got + 1), 4);
    zmq_send(dealer, fbb.GetBufferPointer(), fbb.GetSize(), 0);
  }
  // Which mappings of the segment this process has: the broker's and the exporter's client's.
  const auto mappings = segment_mappings(broker.instance());
  g_counting = false;
  zmq_close(dealer);
  zmq_ctx_term(ctx);

  ASSERT_TRUE(exporter_error.empty()) << exporter_error;
  ASSERT_EQ(got, kFrames) << "frames received from the exporter";
  EXPECT_EQ(pixel_bytes, kFrameBytes);
  if (counter_works)
    EXPECT_EQ(g_frame_copies.load(), 0u) << "a whole frame was memcpy'd";
  else
    std::cout << "[   info   ] memcpy is intercepted here (sanitizer build): copies not counted\n";

  // Every frame-sized message the exporter made points into the shared-memory segment.
  std::lock_guard lock(g_sends_mu);
  ASSERT_GE(g_sends.size(), size_t(kFrames))
      << "the exporter made fewer pixel messages than frames";
  ASSERT_FALSE(mappings.empty()) << "no mapping of /dev/shm/fb." << broker.instance() << ".*";
  const auto in_segment = [&](const void* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    return std::any_of(mappings.begin(), mappings.end(),
                       [&](const auto& m) { return a >= m.first && a + kFrameBytes <= m.second; });
  };
  {  // the check tells a copy from a slot: a frame-sized heap buffer is not in the segment
    std::vector<std::byte> copy(kFrameBytes);
    EXPECT_FALSE(in_segment(copy.data()));
  }
  for (const void* p : g_sends)
    EXPECT_TRUE(in_segment(p)) << "a pixel message's data at " << p
                               << " is not in the broker's shared memory: a copy";
}

}  // namespace
