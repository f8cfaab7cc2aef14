// fbbench chain: what one processing hop and a published stream cost, measured in one run.
//
// Latency, per size: the direct camera path (fb_latency, one `every` subscriber, a broker of its
// own), then a broker with the same camera, `fbproc --from bench --to bench.copy --op OP` as a
// process of its own, and two subscribers in this process: one on the camera (it records each
// source frame's commit time, FrameMeta.mono_ns, by seq, and is also the direct path with a
// processor beside it) and one on bench.copy (it records when each output frame arrived, by its
// source_seq). A chain sample is arrival - the source's commit: the processor's wake-up, its
// work, its commit and the second delivery. fbproc passes the source's hardware timestamp on,
// but the simulated camera has none, hence the lookup by source_seq.
//
// Throughput, per size: a publishing process (this binary's hidden `chain-publisher` command)
// commits frames as fast as it is lent slots, without touching their pixels; the subscribers
// (every, latest, ...) do not read them either. Beside it, copy-over-socket with the same
// subscribers, as `fbbench throughput` does for cameras.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/table.hpp"
#include "fbbench/bench_commands.hpp"
#include "fbbench/fb_runs.hpp"
#include "fbbench/process.hpp"
#include "fbbench/socket_baselines.hpp"

namespace framebroker::fbbench {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tools::fixed;

constexpr double kHopTarget = 1.5;          // chain p50 / direct p50, at 8 MiB
constexpr double kThroughputTarget = 50;    // published fps / copy-over-socket fps
constexpr uint64_t kTargetBytes = 8 << 20;  // where the hop target applies
constexpr auto kPoll = std::chrono::milliseconds(100);
// The chain's warmup at least: more than an 8M camera ring (32 slots) and fbproc's (16).
constexpr uint64_t kChainWarmup = 64;
constexpr const char* kPublished = "published";

struct ChainLatency {
  LatencyStats chain;        // the source's commit -> the output frame is in our hands
  LatencyStats beside;       // the direct path with the processor subscribed beside it
  uint64_t chain_lost = 0;   // measured source frames whose output never came
  uint64_t beside_lost = 0;  // measured source frames the camera subscriber did not get
  double memcpy_us = 0;      // one memcpy of a frame in this process (what `copy` must do)
};

struct LatencyRow {
  uint64_t bytes = 0;
  LatencyRun direct;
  ChainLatency chain;
  double ratio() const {
    return direct.receive.p50_us > 0 ? chain.chain.p50_us / direct.receive.p50_us : 0;
  }
  // Against the direct subscriber of the chain run itself (same moment, same load); shown
  // beside the judged ratio, which uses the quiet direct run.
  double ratio_to_beside() const {
    return chain.beside.p50_us > 0 ? chain.chain.p50_us / chain.beside.p50_us : 0;
  }
  bool at_target_size() const { return bytes == kTargetBytes; }
};

struct PublishedRun {
  ThroughputRun run;
  uint64_t missed = 0;  // frames the `every` subscriber missed (0 with Block)
  double broker_cpu_us_per_frame = 0;
};

struct ThroughputRow {
  uint64_t bytes = 0;
  int subscribers = 0;
  PublishedRun published;
  ThroughputRun copy;
  double ratio() const { return copy.fps() > 0 ? published.run.fps() / copy.fps() : 0; }
};

std::string exe_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  return {};
}

// --fbproc, else beside fbbench (installed: /usr/bin; build tree: tools/fbproc/), else PATH.
std::string find_fbproc(const std::string& requested) {
  if (!requested.empty()) return find_tool(requested, {}, "fbproc", "--fbproc");
  const std::string here = self_dir();
  for (const std::string& c :
       {here + "/fbproc", here + "/fbproc/fbproc", here + "/../fbproc/fbproc"})
    if (::access(c.c_str(), X_OK) == 0 && !fs::is_directory(c))
      return fs::weakly_canonical(c).string();
  if (auto p = exe_in_path("fbproc"); !p.empty()) return p;
  throw std::runtime_error("cannot find fbproc (looked beside fbbench in " + here +
                           " and in PATH): build the fbproc target, install it, or pass --fbproc");
}

std::string read_log(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return trim(ss.str());
}

// A child process (fbproc or the publisher), stopped and reaped when it goes out of scope.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log, int cpu) : log_(log) {
    pin_this_thread(cpu);  // the child inherits the spawning thread's CPU mask
    try {
      pid_ = spawn_logged(argv, log_);
    } catch (...) {
      pin_this_thread(-1);
      throw;
    }
    pin_this_thread(-1);
  }
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Throws, with what it printed, when the child has exited.
  void check_running(const std::string& what) {
    if (pid_ <= 0) return;
    if (auto st = exit_status(pid_)) {
      pid_ = -1;
      throw std::runtime_error(what + " exited (status " + std::to_string(*st) +
                               "): " + read_log(log_));
    }
  }
  void stop() {
    if (pid_ > 0) stop_process(pid_);
    pid_ = -1;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

int64_t camera_latest_seq(Client& control) {
  for (const auto& s : control.status().streams)
    if (s.name == kBenchCamera) return s.latest_seq;
  throw std::runtime_error("the benchmark broker lost its stream");
}

bool has_stream(Client& control, const std::string& name) {
  for (const auto& s : control.status().streams)
    if (s.name == name) return true;
  return false;
}

void wait_for_stream(Client& control, const std::string& name, Child& producer,
                     const std::string& what) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!has_stream(control, name)) {
    check_interrupted();
    producer.check_running(what);
    if (Clock::now() > deadline)
      throw std::runtime_error(what + " did not publish " + name + " within 10 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A thread with a connection and subscription of its own; join() rethrows what it threw.
class SubscriberThread {
 public:
  template <class Body>
  SubscriberThread(const BenchBroker& broker, const std::string& stream, Mode mode, int cpu,
                   const std::string& name, Body body) {
    std::atomic<bool> ready{false};
    thread_ = std::thread([&, stream, mode, cpu, name, body] {
      try {
        pin_this_thread(cpu);
        Client client = connect_to(broker, name);
        SubscribeOptions so;
        so.mode = mode;
        Subscription sub = client.subscribe(stream, so);
        ready = true;
        body(sub);
      } catch (const std::exception& e) {
        error_ = e.what();
        ready = true;
      }
    });
    while (!ready.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (!error_.empty()) join();
  }
  ~SubscriberThread() {
    if (thread_.joinable()) thread_.join();
  }
  void join() {
    if (thread_.joinable()) thread_.join();
    if (!error_.empty()) throw std::runtime_error("subscriber: " + error_);
  }

 private:
  std::string error_;
  std::thread thread_;
};

double memcpy_us(uint64_t bytes) {
  std::vector<uint8_t> a(bytes, 1), b(bytes, 2);
  std::vector<double> t;
  for (int i = 0; i < 21; ++i) {
    const uint64_t t0 = now_ns();
    std::memcpy(b.data(), a.data(), bytes);
    t.push_back(double(now_ns() - t0) / 1e3);
    a[size_t(i) % bytes] = b[(size_t(i) * 7) % bytes];  // keep the copies
  }
  return summarize(std::move(t)).p50_us;
}

ChainLatency chain_latency(const BrokerSide& side, const std::string& fbproc, const std::string& op,
                           const LatencyParams& p) {
  BenchBroker broker(side.exe, side.runtime_dir, "chain-" + std::to_string(p.frame_bytes),
                     bench_camera_spec(p.frame_bytes, p.rate), producer_cpu(p.pin));
  const std::string out = std::string(kBenchCamera) + "." + op.substr(0, op.find('='));
  Child proc({fbproc, "--socket", broker.socket(), "--from", kBenchCamera, "--to", out, "--op", op,
              "--quiet"},
             side.runtime_dir + "/fbproc-" + std::to_string(p.frame_bytes) + ".log",
             consumer_cpu(p.pin));
  Client control = connect_to(broker, "fbbench");
  wait_for_stream(control, out, proc, "fbproc");

  // Indexed by seq - first (source_seq - first for the output): filled by the two threads, read
  // after join. Frames before `first` (the warmup) are only counted.
  std::vector<uint64_t> committed(p.frames, 0), received(p.frames, 0), arrived(p.frames, 0);
  std::atomic<uint64_t> first{UINT64_MAX}, outputs{0}, measured_outputs{0};
  std::atomic<bool> stop{false};
  SubscriberThread camera_sub(broker, kBenchCamera, Mode::Every, consumer_cpu(p.pin),
                              "fbbench-direct", [&](Subscription& sub) {
                                while (!stop.load()) {
                                  auto f = sub.next(kPoll);
                                  if (!f) continue;
                                  const uint64_t now = now_ns(), seq = f->seq(),
                                                 from = first.load();
                                  if (seq < from || seq - from >= p.frames) continue;
                                  committed[seq - from] = f->meta().mono_ns();
                                  received[seq - from] = now;
                                }
                              });
  SubscriberThread chain_sub(
      broker, out, Mode::Every, consumer_cpu(p.pin), "fbbench-chain", [&](Subscription& sub) {
        while (!stop.load()) {
          auto f = sub.next(kPoll);
          if (!f) continue;
          const uint64_t now = now_ns(), from = first.load();
          const int64_t src = f->meta().source_seq();
          outputs.fetch_add(1);
          if (src < 0 || uint64_t(src) < from || uint64_t(src) - from >= p.frames) continue;
          arrived[uint64_t(src) - from] = now;
          measured_outputs.fetch_add(1);
        }
      });
  auto camera = control.camera(kBenchCamera);
  const auto camera_running = [&] {
    for (const auto& c : control.status().cameras)
      if (c.name == kBenchCamera) return c.running;
    return false;
  };
  // Until `done`, or the camera stopped and no output came for `quiet` (some frame was lost).
  const auto wait_until = [&](const std::function<bool()>& done, std::chrono::milliseconds quiet) {
    Clock::time_point since{};
    uint64_t seen = outputs.load();
    while (!done()) {
      check_interrupted();
      proc.check_running("fbproc");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (camera_running() || outputs.load() != seen) {
        since = {}, seen = outputs.load();
        continue;
      }
      if (since == Clock::time_point{}) since = Clock::now();
      if (Clock::now() - since > quiet) return;
    }
  };
  // The warmup is a run of its own and covers both rings (the camera's and fbproc's output), so
  // that fbproc and the subscribers have mapped every slot (a first touch of 8 MiB costs
  // milliseconds) before anything is measured.
  camera.start(std::max<uint64_t>(p.warmup, kChainWarmup));
  wait_until([] { return false; }, std::chrono::milliseconds(300));
  first = uint64_t(camera_latest_seq(control) + 1);
  camera.start(p.frames);
  wait_until([&] { return measured_outputs.load() >= p.frames; }, std::chrono::seconds(2));
  stop = true;
  camera_sub.join();
  chain_sub.join();
  proc.check_running("fbproc");
  proc.stop();

  ChainLatency r;
  std::vector<double> chain, beside;
  chain.reserve(p.frames);
  beside.reserve(p.frames);
  for (uint64_t s = 0; s < p.frames; ++s) {
    if (committed[s] == 0) {
      ++r.beside_lost, ++r.chain_lost;
      continue;
    }
    beside.push_back(double(received[s] - committed[s]) / 1e3);
    if (arrived[s] == 0)
      ++r.chain_lost;
    else
      chain.push_back(double(arrived[s] - committed[s]) / 1e3);
  }
  r.chain = summarize(std::move(chain));
  r.beside = summarize(std::move(beside));
  r.memcpy_us = memcpy_us(p.frame_bytes);
  return r;
}

PublishedRun published_throughput(const BrokerSide& side, const ThroughputParams& p) {
  BenchBroker broker(side.exe, side.runtime_dir, "pub-" + std::to_string(p.frame_bytes),
                     bench_camera_spec(p.frame_bytes, 1), producer_cpu(p.pin));
  const auto [width, height] = bench_frame_size(p.frame_bytes);
  Child pub({self_exe(), "chain-publisher", "--socket", broker.socket(), "--stream", kPublished,
             "--width", std::to_string(width), "--height", std::to_string(height), "--slots",
             std::to_string(bench_slots(p.frame_bytes)), "--seconds", fmt("%.3f", p.seconds + 30)},
            side.runtime_dir + "/publisher-" + std::to_string(p.frame_bytes) + ".log",
            producer_cpu(p.pin));
  Client control = connect_to(broker, "fbbench");
  wait_for_stream(control, kPublished, pub, "the publishing process");

  std::vector<std::atomic<uint64_t>> received(size_t(p.subscribers));
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<SubscriberThread>> subs;
  for (int i = 0; i < p.subscribers; ++i)
    subs.push_back(std::make_unique<SubscriberThread>(
        broker, kPublished, i % 2 == 0 ? Mode::Every : Mode::Latest, consumer_cpu(p.pin),
        "fbbench-sub" + std::to_string(i), [&, i](Subscription& sub) {
          while (!stop.load(std::memory_order_relaxed)) {
            auto f = sub.next(kPoll);  // notify only: the pixels are never touched
            if (f) received[size_t(i)].fetch_add(1, std::memory_order_relaxed);
          }
        }));
  struct Snapshot {
    Clock::time_point t;
    std::vector<uint64_t> received;
    uint64_t published = 0, missed = 0, cpu_ticks = 0;
  };
  const auto snapshot = [&] {
    Snapshot s;
    const Status st = control.status();
    s.t = Clock::now();
    for (auto& r : received) s.received.push_back(r.load());
    for (const auto& sm : st.streams)
      if (sm.name == kPublished) s.published = sm.published;
    for (const auto& sub : st.subscribers)
      if (sub.client == "fbbench-sub0") s.missed = sub.missed;
    s.cpu_ticks = cpu_ticks(broker.pid());
    return s;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const Snapshot a = snapshot();
  const auto end =
      a.t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(p.seconds));
  while (Clock::now() < end && !interrupted()) {
    pub.check_running("the publishing process");
    std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(), kPoll));
  }
  const Snapshot b = snapshot();
  pub.stop();
  stop = true;
  for (auto& s : subs) s->join();
  check_interrupted();

  PublishedRun r;
  r.run.seconds = std::chrono::duration<double>(b.t - a.t).count();
  r.run.frames = b.received[0] - a.received[0];
  for (size_t i = 0; i < received.size(); ++i) r.run.delivered += b.received[i] - a.received[i];
  r.missed = b.missed - a.missed;
  r.run.dropped = r.missed;
  const double cpu_us = double(b.cpu_ticks - a.cpu_ticks) * 1e6 / double(::sysconf(_SC_CLK_TCK));
  r.broker_cpu_us_per_frame =
      b.published > a.published ? cpu_us / double(b.published - a.published) : 0;
  return r;
}

std::string us(double v) {
  return fixed(v, v < 10 ? 1 : 0);
}

json to_json(const LatencyRow& r) {
  json j{{"size", size_label(r.bytes)},
         {"frame_bytes", r.bytes},
         {"direct_frames", r.direct.receive.count},
         {"direct_lost", r.direct.lost},
         {"direct_p50_us", r.direct.receive.p50_us},
         {"direct_p99_us", r.direct.receive.p99_us},
         {"chain_frames", r.chain.chain.count},
         {"chain_lost", r.chain.chain_lost},
         {"chain_p50_us", r.chain.chain.p50_us},
         {"chain_p99_us", r.chain.chain.p99_us},
         {"chain_max_us", r.chain.chain.max_us},
         {"beside_p50_us", r.chain.beside.p50_us},
         {"beside_p99_us", r.chain.beside.p99_us},
         {"beside_lost", r.chain.beside_lost},
         {"hop_p50_us", r.chain.chain.p50_us - r.direct.receive.p50_us},
         {"memcpy_us", r.chain.memcpy_us},
         {"chain_vs_direct_p50", r.ratio()},
         {"chain_vs_beside_p50", r.ratio_to_beside()},
         {"target", kHopTarget}};
  if (r.at_target_size()) j["meets_target"] = r.ratio() <= kHopTarget;
  return j;
}

json to_json(const ThroughputRow& r) {
  return {{"size", size_label(r.bytes)},
          {"frame_bytes", r.bytes},
          {"slots", bench_slots(r.bytes)},
          {"subscribers", r.subscribers},
          {"seconds", r.published.run.seconds},
          {"fps", r.published.run.fps()},
          {"gbps", r.published.run.gbps(r.bytes)},
          {"missed", r.published.missed},
          {"broker_cpu_us_per_frame", r.published.broker_cpu_us_per_frame},
          {"copy_fps", r.copy.fps()},
          {"copy_gbps", r.copy.gbps(r.bytes)},
          {"fps_vs_copy", r.ratio()},
          {"target", kThroughputTarget},
          {"meets_target", r.ratio() >= kThroughputTarget}};
}

void print_tables(const std::vector<LatencyRow>& lat, const std::vector<ThroughputRow>& tput,
                  const std::string& op) {
  if (!lat.empty()) {
    tools::Table t({"size", "direct p50", "direct p99", "chain p50", "chain p99", "beside p50",
                    "hop p50", "memcpy", "chain/direct", "<= 1.5", "chain/beside", "lost"});
    for (const auto& r : lat)
      t.row({size_label(r.bytes), us(r.direct.receive.p50_us), us(r.direct.receive.p99_us),
             us(r.chain.chain.p50_us), us(r.chain.chain.p99_us), us(r.chain.beside.p50_us),
             us(r.chain.chain.p50_us - r.direct.receive.p50_us), us(r.chain.memcpy_us),
             fixed(r.ratio(), 2),
             r.at_target_size() ? (r.ratio() <= kHopTarget ? "yes" : "NO") : "-",
             fixed(r.ratio_to_beside(), 2),
             std::to_string(r.direct.lost) + "/" + std::to_string(r.chain.chain_lost)});
    t.print(std::cout);
    std::cout
        << "Times in us. direct: the camera's commit -> an `every` subscriber has the frame.\n"
           "chain: the camera's commit of the source frame -> a subscriber of its output\n"
           "through `fbproc --op " +
               op +
               "`. beside: the direct path in the chain run (fbproc\n"
               "subscribed too). hop: chain - direct. memcpy: one copy of a frame here. The\n"
               "target (chain p50 <= 1.5 x direct p50) is judged at 8M. chain/beside: against\n"
               "the direct path of the same run. lost: direct/chain.\n";
  }
  if (!tput.empty()) {
    if (!lat.empty()) std::cout << "\n";
    tools::Table t({"size", "subs", "published fps", "GB/s", "missed", "broker us/frame",
                    "copy fps", "copy GB/s", "x copy", ">= 50x"});
    for (const auto& r : tput)
      t.row({size_label(r.bytes), std::to_string(r.subscribers), fixed(r.published.run.fps(), 0),
             fixed(r.published.run.gbps(r.bytes), 2), std::to_string(r.published.missed),
             fixed(r.published.broker_cpu_us_per_frame, 2), fixed(r.copy.fps(), 0),
             fixed(r.copy.gbps(r.bytes), 2), fixed(r.ratio(), 1),
             r.ratio() >= kThroughputTarget ? "yes" : "NO"});
    t.print(std::cout);
    std::cout << "published: a client process committing as fast as it is lent slots (Block),\n"
                 "pixels untouched; fps: frames the first (every) subscriber got per second.\n"
                 "copy: each frame written through each subscriber's Unix socket.\n";
  }
}

}  // namespace

int run_chain_bench(const ChainOptions& o) {
  return run_guarded([&] {
    const Pin pin = parse_pin(o.pin);
    if (o.op.empty() || o.op.find_first_of("/ ") != std::string::npos)
      throw std::invalid_argument("--op '" + o.op + "' is not an fbproc operation");
    std::vector<std::string> tput_labels = o.throughput_sizes;
    if (tput_labels.size() == 1 && tput_labels[0] == "none") tput_labels.clear();
    const BenchSetup setup(o.sizes, o.broker);
    std::vector<uint64_t> tput_sizes;
    for (const auto& label : tput_labels)
      tput_sizes.push_back(mono16_frame_bytes(parse_size(label)));
    const std::string fbproc = o.sizes.empty() ? "" : find_fbproc(o.fbproc);

    std::vector<LatencyRow> lat;
    for (const FrameShape& frame : setup.sizes) {
      const uint64_t bytes = frame.bytes();  // nearly square, for the direct and the chain run
      LatencyParams p;
      p.frame_bytes = bytes;
      p.subscribers = 1;
      p.rate = o.rate;
      p.frames = o.frames;
      p.warmup = o.warmup;
      p.pin = pin;
      LatencyRow row{bytes};
      std::cerr << "chain latency " << size_label(bytes) << " at " << o.rate << " fps, pin "
                << o.pin << ":\n";
      BrokerCost direct_cost;  // not reported: the chain's broker cost is the hop's
      row.direct = fb_latency(setup.broker, p, direct_cost);
      std::cerr << "  direct: p50 " << us(row.direct.receive.p50_us) << " us, p99 "
                << us(row.direct.receive.p99_us) << " us (" << row.direct.lost << " lost)\n";
      check_interrupted();
      row.chain = chain_latency(setup.broker, fbproc, o.op, p);
      std::cerr << "  chain (fbproc --op " << o.op << "): p50 " << us(row.chain.chain.p50_us)
                << " us, p99 " << us(row.chain.chain.p99_us) << " us (" << row.chain.chain_lost
                << " lost)\n";
      check_interrupted();
      lat.push_back(row);
    }
    std::vector<ThroughputRow> tput;
    for (const uint64_t bytes : tput_sizes) {
      ThroughputParams p;
      p.frame_bytes = bytes;
      p.subscribers = o.subscribers;
      p.seconds = o.seconds;
      p.pin = pin;
      ThroughputRow row{bytes, o.subscribers};
      std::cerr << "published-stream throughput " << size_label(bytes) << " x " << o.subscribers
                << ", pin " << o.pin << ":\n";
      row.published = published_throughput(setup.broker, p);
      std::cerr << "  published: " << fixed(row.published.run.fps(), 0) << " fps\n";
      check_interrupted();
      row.copy = copy_throughput(p);
      std::cerr << "  copy: " << fixed(row.copy.fps(), 0) << " fps\n";
      check_interrupted();
      tput.push_back(row);
    }
    if (o.json) {
      json j{{"mode", "chain"},
             {"op", o.op},
             {"rate", o.rate},
             {"frames", o.frames},
             {"warmup", o.warmup},
             {"seconds", o.seconds},
             {"pin", o.pin},
             {"fbproc", fbproc},
             {"load", load_average()},
             {"latency", json::array()},
             {"throughput", json::array()}};
      for (const auto& r : lat) j["latency"].push_back(to_json(r));
      for (const auto& r : tput) j["throughput"].push_back(to_json(r));
      std::cout << j.dump(2) << "\n";
    } else {
      print_tables(lat, tput, o.op);
      std::cout << "load average: " << load_average() << "\n";
    }
  });
}

int run_chain_publisher(const ChainPublisherOptions& o) {
  try {
    ConnectOptions co;
    co.socket_path = o.socket;
    co.client_name = "fbbench-publisher";
    Client client = Client::connect(co);
    PublishOptions po;
    po.width = o.width;
    po.height = o.height;
    po.pixel_type = "Mono16";
    po.slots = o.slots;
    po.overflow = Overflow::Block;
    Publisher pub = client.advertise(o.stream, po);
    CommitInfo info;
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o.seconds));
    for (uint64_t i = 0; Clock::now() < end; ++i) {
      auto loan = pub.loan(std::chrono::milliseconds(200));
      if (!loan) continue;
      info.camera_frame_id = i;
      loan->commit(info);
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "fbbench chain-publisher: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace framebroker::fbbench
