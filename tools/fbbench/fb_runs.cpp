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

// The camera's frame: as asked (WxH), else nearly square for `bytes`.
FrameShape shape_of(uint64_t bytes, uint32_t width, uint32_t height) {
  if (width == 0 || height == 0) return frame_shape_for(bytes);
  FrameShape f;
  f.width = width;
  f.height = height;
  return f;
}

std::string camera_spec(const FrameShape& f, double rate) {
  return "sim:name=" + std::string(kCamera) + ",Width=" + std::to_string(f.width) +
         ",Height=" + std::to_string(f.height) +
         ",PixelType=Mono16,Pattern=empty,FrameRate=" + fmt("%.6g", rate) +
         ",slots=" + std::to_string(bench_slots(f.bytes())) + ",start=false";
}

std::string tag_for(const char* what, uint64_t bytes, int subscribers) {
  return std::string(what) + "-" + std::to_string(bytes) + "-" + std::to_string(subscribers);
}

std::string subscriber_name(int i) {
  return "fbbench-sub" + std::to_string(i);
}

// Runs one body per subscriber on its own thread, pinned, each with its own connection and
// subscription; returns once every one has subscribed. join() rethrows the first failure.
class SubscriberThreads {
 public:
  using Body = std::function<void(int index, Subscription& sub)>;

  SubscriberThreads(const BenchBroker& broker, int count, int cpu,
                    const std::function<SubscribeOptions(int)>& options_of, Body body)
      : body_(std::move(body)), errors_(size_t(count)) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, &broker, i, cpu, so = options_of(i)] {
        try {
          pin_this_thread(cpu);
          Client client = connect_to(broker, subscriber_name(i));
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

const StreamStatus& stream_of(const Status& st) {
  for (auto& s : st.streams)
    if (s.name == kCamera) return s;
  throw std::runtime_error("the benchmark broker lost its stream");
}

StreamStatus stream_status(Client& control) {
  return stream_of(control.status());
}

// The broker at one moment: frames published so far and each thread's counters.
struct Probe {
  Clock::time_point t;
  uint64_t published = 0;
  std::vector<ThreadSample> threads;
};

Probe probe(const BenchBroker& broker, const Status& st) {
  return {Clock::now(), stream_of(st).published, thread_samples(broker.pid())};
}

uint64_t cpu_ns(const std::vector<ThreadSample>& threads) {
  uint64_t ns = 0;
  for (const ThreadSample& t : threads) ns += t.cpu_ns;
  return ns;
}

// The broker's CPU µs (all threads) per frame it published between a and b.
double cpu_us_per_frame(const Probe& a, const Probe& b) {
  const uint64_t frames = b.published - a.published;
  return frames > 0 ? double(cpu_ns(thread_deltas(a.threads, b.threads))) / 1e3 / double(frames)
                    : 0;
}

// What the broker spent between a and b: each thread's switches and CPU time.
void account(BrokerCost& cost, const BenchBroker& broker, const Probe& a, const Probe& b) {
  cost.pid = broker.pid();
  cost.frames = b.published - a.published;
  cost.threads = thread_deltas(a.threads, b.threads);
  cost.cpu_us_per_frame = cpu_us_per_frame(a, b);
}

}  // namespace

BenchSetup::BenchSetup(const std::vector<std::string>& size_labels, const std::string& broker_exe)
    : runtime(make_temp_dir(std::filesystem::temp_directory_path().string(), "fbbench-run")),
      broker{find_broker(broker_exe), runtime.path} {
  for (const auto& label : size_labels) sizes.push_back(parse_frame_shape(label));
}

uint32_t bench_slots(uint64_t frame_bytes) {
  return uint32_t(
      std::clamp<uint64_t>((uint64_t(256) << 20) / std::max<uint64_t>(frame_bytes, 1), 32, 4096));
}

std::string bench_camera_spec(uint64_t bytes, double rate) {
  return camera_spec(frame_shape_for(bytes), rate);
}

std::pair<uint32_t, uint32_t> bench_frame_size(uint64_t bytes) {
  const FrameShape f = frame_shape_for(bytes);
  return {f.width, f.height};
}

uint64_t mono16_frame_bytes(uint64_t bytes) {
  return frame_shape_for(bytes).bytes();
}

LatencyRun fb_latency(const BrokerSide& side, const LatencyParams& p, BrokerCost& cost) {
  BenchBroker broker(side.exe, side.runtime_dir, tag_for("lat", p.frame_bytes, p.subscribers),
                     camera_spec(shape_of(p.frame_bytes, p.width, p.height), p.rate),
                     producer_cpu(p.pin));
  Client control = connect_to(broker, "fbbench");
  auto camera = control.camera(kCamera);
  const auto wait_stopped = [&] {
    while (camera_running(control)) {
      check_interrupted();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  // The camera thread ends with a counted run, and its counters with it: a measured run asks for
  // more frames than it measures and is stopped once the broker has been probed, so that every
  // thread is still there at the end of the window.
  const uint64_t tail = std::max<uint64_t>(100, uint64_t(p.rate * 5));

  // First a warmup's worth of frames with nobody subscribed: the camera's own cost per frame.
  {
    const Probe a = probe(broker, control.status());
    camera.start(p.warmup + tail);
    Probe b = a;
    const auto give_up = Clock::now() + std::chrono::seconds(10) +
                         std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(double(p.warmup) / p.rate));
    while ((b = probe(broker, control.status())).published < a.published + p.warmup) {
      check_interrupted();
      if (Clock::now() > give_up)
        throw std::runtime_error("the benchmark camera published " +
                                 std::to_string(b.published - a.published) + " of " +
                                 std::to_string(p.warmup) + " frames");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    cost.cpu_us_per_frame_alone = cpu_us_per_frame(a, b);
    camera.stop();
    wait_stopped();
  }

  const uint64_t first_seq = uint64_t(stream_status(control).latest_seq + 1);
  const uint64_t measured_from = first_seq + p.warmup, last_seq = measured_from + p.frames - 1;
  std::vector<std::vector<double>> samples(size_t(p.subscribers));
  for (auto& s : samples) s.reserve(p.frames);
  std::vector<std::atomic<uint64_t>> received(size_t(p.subscribers));  // up to last_seq
  std::atomic<bool> stop{false};

  SubscriberThreads subs(
      broker, p.subscribers, consumer_cpu(p.pin),
      [&](int) {
        SubscribeOptions so;
        so.mode = Mode::Every;
        so.spin = std::chrono::microseconds(p.spin_us);
        return so;
      },
      [&](int i, Subscription& sub) {
        while (!stop.load()) {
          auto f = sub.next(kPoll);
          if (!f) continue;
          const uint64_t now = now_ns();
          const uint64_t seq = f->seq();
          if (seq >= measured_from && seq <= last_seq)
            samples[size_t(i)].push_back(double(now - f->meta().mono_ns()) / 1e3);
          if (seq <= last_seq) received[size_t(i)].fetch_add(1);
          f->release();  // the tail's frames too, until the camera stops
        }
      });

  const auto all_received = [&](uint64_t n) {
    return [&, n] {
      return std::all_of(received.begin(), received.end(), [n](auto& r) { return r >= n; });
    };
  };
  // The warmup is a run of its own, so the broker's round-trip count starts with the measured
  // frames (a start clears it).
  camera.start(p.warmup);
  wait_for(control, all_received(p.warmup), std::chrono::seconds(2));
  wait_stopped();
  const Probe from = probe(broker, control.status());
  camera.start(p.frames + tail);
  wait_for(control, all_received(p.warmup + p.frames), std::chrono::seconds(2));
  account(cost, broker, from, probe(broker, control.status()));
  camera.stop();
  wait_stopped();
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
                     camera_spec(shape_of(p.frame_bytes, p.width, p.height), rate),
                     producer_cpu(p.pin));
  Client control = connect_to(broker, "fbbench");
  const size_t n = size_t(p.subscribers);
  struct Snapshot {
    Probe broker;
    std::vector<uint64_t> received, missed;
    uint64_t dropped = 0;
  };
  std::vector<std::atomic<uint64_t>> received(n);
  const auto snapshot = [&] {
    const Status st = control.status();
    Snapshot s{probe(broker, st), {}, std::vector<uint64_t>(n, 0), stream_of(st).dropped};
    for (auto& r : received) s.received.push_back(r.load());
    for (const auto& sub : st.subscribers)
      for (size_t i = 0; i < n; ++i)
        if (sub.client == subscriber_name(int(i))) s.missed[i] = sub.missed;
    return s;
  };
  const auto sleep_until = [](Clock::time_point end) {
    while (Clock::now() < end && !interrupted())
      std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(), kPoll));
  };

  // First the camera alone: what the broker spends per frame with nobody to deliver to (the
  // simulated camera's pacing, the commit and the latest-frame cache).
  control.camera(kCamera).start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const Snapshot alone_from = snapshot();
  sleep_until(alone_from.broker.t + std::chrono::seconds(1));
  cost.cpu_us_per_frame_alone = cpu_us_per_frame(alone_from.broker, snapshot().broker);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checksum{0};
  SubscriberThreads subs(
      broker, p.subscribers, consumer_cpu(p.pin),
      [](int i) {
        SubscribeOptions so;
        so.mode = i % 2 == 0 ? Mode::Every : Mode::Latest;
        return so;
      },
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
  sleep_until(a.broker.t + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(p.seconds)));
  const Snapshot b = snapshot();
  cost.rss_end_kb = rss_kb(broker.pid());
  control.camera(kCamera).stop();
  stop = true;
  subs.join();
  check_interrupted();

  ThroughputRun run;
  run.seconds = std::chrono::duration<double>(b.broker.t - a.broker.t).count();
  run.published = b.broker.published - a.broker.published;
  run.dropped = b.dropped - a.dropped;
  for (size_t i = 0; i < n; ++i) {
    run.delivered_by_subscriber.push_back(b.received[i] - a.received[i]);
    run.missed_by_subscriber.push_back(b.missed[i] - a.missed[i]);
    run.delivered += run.delivered_by_subscriber.back();
  }
  run.frames = run.delivered_by_subscriber.front();
  account(cost, broker, a.broker, b.broker);
  return run;
}

}  // namespace framebroker::fbbench
