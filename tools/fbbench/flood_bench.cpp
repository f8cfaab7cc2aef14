#include "fbbench/flood_bench.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "fbbench/bench_common.hpp"
#include "fbbench/process.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbbench {
using namespace std::chrono_literals;

namespace {

constexpr const char* kStream = "flood";
constexpr uint32_t kMaxMessageBytes = 1 << 20;  // the protocol's limit (docs/DESIGN.md)

// A raw connection to the broker's socket; -1 when the broker refused it (e.g. at max_clients).
int connect_raw(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

// Malformed message number `i`: random bytes under a valid length prefix, a length over the
// limit, or a prefix promising more than ever comes.
std::vector<uint8_t> malformed(uint64_t i, std::mt19937& rng) {
  std::vector<uint8_t> m;
  auto le32 = [&](uint32_t v) {
    for (int b = 0; b < 4; ++b) m.push_back(uint8_t(v >> (8 * b)));
  };
  switch (i % 3) {
    case 0: {
      const uint32_t n = 8 + rng() % 256;
      le32(n);
      for (uint32_t k = 0; k < n; ++k) m.push_back(uint8_t(rng()));
      break;
    }
    case 1:
      le32(kMaxMessageBytes + 1 + rng() % 4096);
      break;
    default:
      le32(4096);
      for (int k = 0; k < 16; ++k) m.push_back(uint8_t(rng()));
  }
  return m;
}

struct StatusTimes {
  std::vector<double> idle_us, flood_us;
  uint64_t failures = 0;
};

}  // namespace

int run_flood(const FloodOptions& o) {
  return run_guarded([&] {
    TempDir runtime(make_temp_dir("/tmp", "fbbench-flood"));
    BenchBroker broker(find_broker(o.broker), runtime.path, "flood",
                       std::string("sim:name=") + kStream +
                           ",Width=128,Height=128,PixelType=Mono16,Pattern=counter,FrameRate=" +
                           fmt("%g", o.rate) + ",start=true");  // the default ring: 1 s

    // The lossless subscriber: every seq, in order.
    std::atomic<bool> stop{false}, flooding{false};
    std::atomic<uint64_t> frames{0}, missed{0};
    Client subscriber_client = broker.connect();
    Subscription sub = subscriber_client.subscribe(kStream, SubscribeOptions{});
    std::thread subscriber([&] {
      int64_t last = -1;
      while (!stop) {
        auto f = sub.next(100ms);
        if (!f) continue;
        const auto seq = int64_t(f->seq());
        if (last >= 0 && seq != last + 1) missed += uint64_t(seq - last - 1);
        last = seq;
        ++frames;
      }
    });

    // `status` from a client of its own, timed, before and during the flood.
    StatusTimes times;
    Client prober = broker.connect();
    std::thread status_thread([&] {
      while (!stop) {
        const auto t0 = Clock::now();
        try {
          (void)prober.status();
        } catch (const std::exception&) {
          ++times.failures;
        }
        const double us = seconds_since(t0) * 1e6;
        (flooding ? times.flood_us : times.idle_us).push_back(us);
        std::this_thread::sleep_for(5ms);
      }
    });

    std::this_thread::sleep_for(1s);  // the baseline: the same broker, no flood
    flooding = true;
    const auto t0 = Clock::now();
    std::mt19937 rng(18);
    uint64_t refused = 0;
    for (uint64_t i = 0; i < o.connections; ++i) {
      check_interrupted();
      const int fd = connect_raw(broker.socket());
      if (fd < 0) {
        ++refused;
        continue;
      }
      if (i % 2) (void)!::send(fd, "\x40\x00", 2, MSG_NOSIGNAL);  // half a length prefix
      ::close(fd);
    }
    for (uint64_t i = 0; i < o.malformed; ++i) {
      check_interrupted();
      const int fd = connect_raw(broker.socket());
      if (fd < 0) {
        ++refused;
        continue;
      }
      const auto m = malformed(i, rng);
      (void)!::send(fd, m.data(), m.size(), MSG_NOSIGNAL);
      ::close(fd);
    }
    const double flood_s = seconds_since(t0);
    std::this_thread::sleep_for(500ms);  // frames sent during the flood arrive
    flooding = false;
    stop = true;
    subscriber.join();
    status_thread.join();

    const Status end = prober.status();
    const size_t clients_left = end.subscribers.size();  // the subscriber's own, and no other
    uint64_t dropped = 0;
    for (const auto& st : end.streams)
      if (st.name == kStream) dropped = st.dropped;
    const LatencyStats idle = summarize(times.idle_us), flood = summarize(times.flood_us);
    const double ms = 1e-3;
    if (o.json) {
      std::cout << nlohmann::json{{"mode", "flood"},
                                  {"connections", o.connections},
                                  {"malformed", o.malformed},
                                  {"refused_connects", refused},
                                  {"flood_s", flood_s},
                                  {"rate", o.rate},
                                  {"frames", frames.load()},
                                  {"missed", missed.load()},
                                  {"camera_dropped", dropped},
                                  {"status_answers", flood.count},
                                  {"status_failures", times.failures},
                                  {"status_idle_p50_ms", idle.p50_us * ms},
                                  {"status_idle_p99_ms", idle.p99_us * ms},
                                  {"status_flood_p50_ms", flood.p50_us * ms},
                                  {"status_flood_p99_ms", flood.p99_us * ms},
                                  {"status_flood_max_ms", flood.max_us * ms},
                                  {"subscribers_left", clients_left}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << "flood            " << o.connections << " connections and " << o.malformed
                << " malformed messages in " << fmt("%.1f", flood_s) << " s\n"
                << "subscriber       " << frames.load() << " frames, " << missed.load()
                << " missed (camera dropped " << dropped << ")\n"
                << "status p50/p99   " << fmt("%.2f", flood.p50_us * ms) << " / "
                << fmt("%.2f", flood.p99_us * ms) << " ms during the flood (" << flood.count
                << " answers, " << times.failures << " failed), " << fmt("%.2f", idle.p50_us * ms)
                << " / " << fmt("%.2f", idle.p99_us * ms) << " ms before it\n";
    }
    if (missed || times.failures || flood.count == 0)
      throw std::runtime_error("the flood cost the subscriber frames or status answers");
  });
}

}  // namespace framebroker::fbbench
