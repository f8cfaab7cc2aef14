#include "fbbench/fb_runs.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <filesystem>
#include <functional>
#include <thread>

#include "fbbench/process.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbbench {

Client connect_to(const BenchBroker& broker, const std::string& name) {
  ConnectOptions co;
  co.socket_path = broker.socket();
  co.client_name = name;
  return Client::connect(co);
}

namespace {

constexpr const char* kCamera = kBenchCamera;
constexpr auto kPoll = std::chrono::milliseconds(100);

struct Geometry {
  uint32_t width = 8, height = 8;
  uint64_t bytes() const { return uint64_t(width) * height * 2; }
};

// Nearly square, with a power-of-two width, so that 64K, 1M and 8M come out exact (8..4096 a
// side, as the sim allows).
Geometry geometry_for(uint64_t bytes) {
  const uint64_t pixels = std::max<uint64_t>(bytes / 2, 64);
  Geometry g;
  g.width =
      uint32_t(std::clamp<uint64_t>(std::bit_floor(uint64_t(std::sqrt(double(pixels)))), 8, 4096));
  g.height = uint32_t(std::clamp<uint64_t>(pixels / g.width, 8, 4096));
  return g;
}

std::string camera_spec(uint64_t bytes, double rate) {
  const Geometry g = geometry_for(bytes);
  return "sim:name=" + std::string(kCamera) + ",Width=" + std::to_string(g.width) +
         ",Height=" + std::to_string(g.height) +
         ",PixelType=Mono16,Pattern=empty,FrameRate=" + fmt("%.6g", rate) +
         ",slots=" + std::to_string(bench_slots(g.bytes())) + ",start=false";
}

std::string tag_for(const char* what, uint64_t bytes, int subscribers) {
  return std::string(what) + "-" + std::to_string(bytes) + "-" + std::to_string(subscribers);
}

// Runs one body per subscriber on its own thread, pinned, each with its own connection and
// subscription; returns once every one has subscribed. join() rethrows the first failure.
class SubscriberThreads {
 public:
  using Body = std::function<void(int index, Subscription& sub)>;

  SubscriberThreads(const BenchBroker& broker, int count, int cpu,
                    const std::function<Mode(int)>& mode_of, Body body)
      : body_(std::move(body)), errors_(size_t(count)) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, &broker, i, cpu, mode = mode_of(i)] {
        try {
          pin_this_thread(cpu);
          Client client = connect_to(broker, "fbbench-sub" + std::to_string(i));
          SubscribeOptions so;
          so.mode = mode;
          Subscription sub = client.subscribe(kCamera, so);
          ++subscribed_;
          body_(i, sub);
        } catch (const std::exception& e) {
          errors_[size_t(i)] = e.what();
          ++subscribed_;
        }
      });
    }
    while (subscribed_.load() < count) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (const auto& e : errors_)
      if (!e.empty()) {
        join();
        throw std::runtime_error("subscriber: " + e);
      }
  }
  ~SubscriberThreads() { join(); }

  void join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    for (const auto& e : errors_)
      if (!e.empty()) throw std::runtime_error("subscriber: " + e);
  }

 private:
  Body body_;
  std::atomic<int> subscribed_{0};
  std::vector<std::string> errors_;
  std::vector<std::thread> threads_;
};

bool camera_running(Client& control) {
  for (const auto& c : control.status().cameras)
    if (c.name == kCamera) return c.running;
  return false;
}

// Waits until `done` holds, the camera has stopped and the stragglers had `grace`.
void wait_for(Client& control, const std::function<bool()>& done, std::chrono::seconds grace) {
  Clock::time_point stopped_at{};
  while (!done()) {
    check_interrupted();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (stopped_at == Clock::time_point{}) {
      if (!camera_running(control)) stopped_at = Clock::now();
    } else if (Clock::now() - stopped_at > grace) {
      return;
    }
  }
}

StreamStatus stream_status(Client& control) {
  for (auto& s : control.status().streams)
    if (s.name == kCamera) return s;
  throw std::runtime_error("the benchmark broker lost its stream");
}

}  // namespace

BenchSetup::BenchSetup(const std::vector<std::string>& size_labels, const std::string& broker_exe)
    : runtime(make_temp_dir(std::filesystem::temp_directory_path().string(), "fbbench-run")),
      broker{find_broker(broker_exe), runtime.path} {
  for (const auto& label : size_labels) sizes.push_back(mono16_frame_bytes(parse_size(label)));
}

uint32_t bench_slots(uint64_t frame_bytes) {
  return uint32_t(
      std::clamp<uint64_t>((uint64_t(256) << 20) / std::max<uint64_t>(frame_bytes, 1), 32, 4096));
}

std::string bench_camera_spec(uint64_t bytes, double rate) {
  return camera_spec(bytes, rate);
}

std::pair<uint32_t, uint32_t> bench_frame_size(uint64_t bytes) {
  const Geometry g = geometry_for(bytes);
  return {g.width, g.height};
}

uint64_t mono16_frame_bytes(uint64_t bytes) {
  return geometry_for(bytes).bytes();
}

LatencyRun fb_latency(const BrokerSide& side, const LatencyParams& p) {
  BenchBroker broker(side.exe, side.runtime_dir, tag_for("lat", p.frame_bytes, p.subscribers),
                     camera_spec(p.frame_bytes, p.rate), producer_cpu(p.pin));
  const uint64_t last_seq = p.warmup + p.frames - 1;
  std::vector<std::vector<double>> samples(size_t(p.subscribers));
  for (auto& s : samples) s.reserve(p.frames);
  std::vector<std::atomic<uint64_t>> received(size_t(p.subscribers));
  std::atomic<bool> stop{false};

  SubscriberThreads subs(
      broker, p.subscribers, consumer_cpu(p.pin), [](int) { return Mode::Every; },
      [&](int i, Subscription& sub) {
        while (!stop.load()) {
          auto f = sub.next(kPoll);
          if (!f) continue;
          const uint64_t now = now_ns();
          const uint64_t seq = f->seq();
          if (seq >= p.warmup)
            samples[size_t(i)].push_back(double(now - f->meta().mono_ns()) / 1e3);
          received[size_t(i)].fetch_add(1);
          f->release();
          if (seq >= last_seq) break;
        }
      });

  Client control = connect_to(broker, "fbbench");
  auto camera = control.camera(kCamera);
  const auto all_received = [&](uint64_t n) {
    return [&, n] {
      return std::all_of(received.begin(), received.end(), [n](auto& r) { return r >= n; });
    };
  };
  // The warmup is a run of its own, so the broker's round-trip count starts with the measured
  // frames (a start clears it).
  camera.start(p.warmup);
  wait_for(control, all_received(p.warmup), std::chrono::seconds(2));
  while (camera_running(control)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  camera.start(p.frames);
  wait_for(control, all_received(p.warmup + p.frames), std::chrono::seconds(2));
  stop = true;
  subs.join();

  LatencyRun run;
  std::vector<double> pooled;
  for (const auto& s : samples) {
    run.p50_by_subscriber_us.push_back(summarize(s).p50_us);
    pooled.insert(pooled.end(), s.begin(), s.end());
    run.lost = std::max<uint64_t>(run.lost, p.frames - std::min<uint64_t>(p.frames, s.size()));
  }
  run.receive = summarize(std::move(pooled));
  const StreamStatus st = stream_status(control);
  run.round_trip = {st.recycled, st.recycle_p50_us, st.recycle_p99_us, st.recycle_p999_us,
                    st.recycle_max_us};
  return run;
}

ThroughputRun fb_throughput(const BrokerSide& side, const ThroughputParams& p, double rate,
                            BrokerCost& cost) {
  BenchBroker broker(side.exe, side.runtime_dir, tag_for("tput", p.frame_bytes, p.subscribers),
                     camera_spec(p.frame_bytes, rate), producer_cpu(p.pin));
  Client control = connect_to(broker, "fbbench");
  struct Snapshot {
    Clock::time_point t;
    std::vector<uint64_t> received;
    uint64_t published = 0, dropped = 0, missed = 0, cpu_ticks = 0;
  };
  std::vector<std::atomic<uint64_t>> received(size_t(p.subscribers));
  const auto snapshot = [&] {
    Snapshot s;
    const Status st = control.status();
    s.t = Clock::now();
    for (auto& r : received) s.received.push_back(r.load());
    for (const auto& sm : st.streams)
      if (sm.name == kCamera) s.published = sm.published, s.dropped = sm.dropped;
    for (const auto& sub : st.subscribers)
      if (sub.client == "fbbench-sub0") s.missed = sub.missed;
    s.cpu_ticks = cpu_ticks(broker.pid());
    return s;
  };
  const auto sleep_until = [](Clock::time_point end) {
    while (Clock::now() < end && !interrupted())
      std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(), kPoll));
  };
  const auto cpu_us_per_frame = [](const Snapshot& a, const Snapshot& b) {
    const double us = double(b.cpu_ticks - a.cpu_ticks) * 1e6 / double(::sysconf(_SC_CLK_TCK));
    return b.published > a.published ? us / double(b.published - a.published) : 0.0;
  };

  // First the camera alone: what the broker spends per frame with nobody to deliver to (the
  // simulated camera's pacing, the commit and the latest-frame cache).
  control.camera(kCamera).start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const Snapshot alone_from = snapshot();
  sleep_until(alone_from.t + std::chrono::seconds(1));
  cost.cpu_us_per_frame_alone = cpu_us_per_frame(alone_from, snapshot());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checksum{0};
  SubscriberThreads subs(
      broker, p.subscribers, consumer_cpu(p.pin),
      [](int i) { return i % 2 == 0 ? Mode::Every : Mode::Latest; },
      [&](int i, Subscription& sub) {
        uint64_t sum = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          auto f = sub.next(kPoll);
          if (!f) continue;
          if (p.read_all) sum += sum_pixels(f->pixels().data(), f->pixels().size());
          received[size_t(i)].fetch_add(1, std::memory_order_relaxed);
        }
        checksum += sum;
      });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  cost.rss_start_kb = rss_kb(broker.pid());
  const Snapshot a = snapshot();
  sleep_until(
      a.t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(p.seconds)));
  const Snapshot b = snapshot();
  cost.rss_end_kb = rss_kb(broker.pid());
  control.camera(kCamera).stop();
  stop = true;
  subs.join();
  check_interrupted();

  ThroughputRun run;
  run.seconds = std::chrono::duration<double>(b.t - a.t).count();
  run.frames = b.received[0] - a.received[0];
  for (size_t i = 0; i < received.size(); ++i) run.delivered += b.received[i] - a.received[i];
  run.dropped = (b.dropped - a.dropped) + (b.missed - a.missed);
  cost.cpu_us_per_frame = cpu_us_per_frame(a, b);
  return run;
}

}  // namespace framebroker::fbbench
