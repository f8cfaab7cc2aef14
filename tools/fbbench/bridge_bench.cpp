#include "fbbench/bridge_bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/table.hpp"
#include "common/veth_pair.hpp"
#include "fbbench/bench_report.hpp"
#include "fbbench/fb_runs.hpp"
#include "fbbench/process.hpp"
#include "framebroker/frame_meta_generated.h"

namespace framebroker::fbbench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kIp = tools::VethPair::kIp;
constexpr const char* kAddrA = "10.93.0.1";  // the exporter's side
constexpr const char* kAddrB = "10.93.0.2";  // the importer's (and iperf3's server)
constexpr const char* kPrefix = "P.";
constexpr const char* kRemoteTimeTag = "bridge.remote_realtime_ns";  // docs/fbbridge.md

// The two namespaces: kAddrA in a, kAddrB in b.
class NetPair : public tools::VethPair {
 public:
  NetPair()
      : VethPair("fbn" + std::to_string(::getpid()), kAddrA, kAddrB,
                 [](const std::vector<std::string>& argv) {
                   const ProcResult r = run_capture(argv);
                   return r.ok() ? std::string() : trim(r.err);
                 }) {}
};

// The exporter's camera: exactly f (Mono16, pattern `empty`: it commits without writing a pixel)
// at `rate` (0 free-runs), the ring `fbbench throughput` gives such frames, not started.
std::string camera_for(const FrameShape& f, double rate) {
  return std::string("sim:name=") + kBenchCamera + ",Width=" + std::to_string(f.width) +
         ",Height=" + std::to_string(f.height) +
         ",PixelType=Mono16,Pattern=empty,FrameRate=" + fmt("%.6g", rate) +
         ",slots=" + std::to_string(bench_slots(f.bytes())) + ",start=false";
}

uint64_t realtime_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

uint64_t thread_cpu_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

// Every thread's CPU time of `pid`, in ns.
uint64_t process_cpu_ns(pid_t pid) {
  uint64_t sum = 0;
  for (const ThreadSample& t : thread_samples(pid)) sum += t.cpu_ns;
  return sum;
}

// CPU seconds per GB (1e9 bytes) of memcpy of `bytes`-sized blocks, source and destination
// distinct and prefaulted, on this thread: the cost a copying exporter would pay per GB.
double memcpy_cpu_s_per_gb(uint64_t bytes) {
  std::vector<std::byte> a(bytes), b(bytes);
  prefault(a.data(), a.size());
  prefault(b.data(), b.size());
  const uint64_t t0 = thread_cpu_ns();
  uint64_t copied = 0;
  while (copied < (uint64_t(1) << 30) && thread_cpu_ns() - t0 < 300'000'000u) {
    std::memcpy(b.data(), a.data(), bytes);
    a[copied % bytes] = b[(copied + 1) % bytes];  // keep the copies from being elided
    copied += bytes;
  }
  return double(thread_cpu_ns() - t0) / 1e9 / (double(copied) / 1e9);
}

struct Iperf {
  bool ran = false;
  double gb_per_s = 0;
  uint64_t retransmits = 0;
  std::string why_not;  // when it did not run
};

// iperf3's single-stream TCP throughput from a to b over the pair: a one-off server in b, the
// client in a with -J.
Iperf run_iperf_once(const NetPair& net, const std::string& exe, double seconds,
                     const std::string& log) {
  Iperf out;
  const pid_t server =
      spawn_logged(NetPair::in(net.b(), {exe, "-s", "-1", "-B", kAddrB, "-p", "5201"}), log);
  ProcResult r;
  for (int attempt = 0; attempt < 50; ++attempt) {  // until the server listens
    check_interrupted();
    r = run_capture(NetPair::in(net.a(), {exe, "-c", kAddrB, "-p", "5201", "-t",
                                          fmt("%.0f", std::max(1.0, seconds)), "-J"}));
    if (r.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!exit_status(server)) stop_process(server);
  try {
    const json j = json::parse(r.out);
    if (!r.ok() || !j.contains("end")) {
      out.why_not = "iperf3 failed: " + j.value("error", trim(r.err));
      return out;
    }
    out.gb_per_s = j["end"]["sum_received"]["bits_per_second"].get<double>() / 8e9;
    out.retransmits = j["end"]["sum_sent"].value("retransmits", uint64_t(0));
    out.ran = true;
  } catch (const std::exception& e) {
    out.why_not = std::string("iperf3's output could not be read (") + e.what() +
                  "): " + trim(r.err) + " " + r.out.substr(0, 300);
  }
  return out;
}

// The same, tried up to 3 times: now and then the one-off server and the client's first
// connect race, and the client reports nothing.
Iperf run_iperf(const NetPair& net, const std::string& exe, double seconds,
                const std::string& log) {
  Iperf out;
  for (int attempt = 0; attempt < 3 && !out.ran; ++attempt) {
    if (attempt > 0) std::cerr << "  iperf3 again (" << out.why_not << ")\n";
    out = run_iperf_once(net, exe, seconds, log);
  }
  return out;
}

// What the subscriber on the importer's broker saw; written by its thread only.
struct Receiver {
  std::atomic<uint64_t> frames{0}, bytes{0};
  std::atomic<int64_t> first_source_seq{-1}, last_source_seq{-1};
  std::atomic<bool> measuring{false}, stop{false};
  double settle_us = 0;  // paced runs: a frame this late is not caught up yet (set before start)
  std::atomic<uint64_t> settled{0};  // frames in a row that came within settle_us
  std::vector<double> latency_us;    // commit on the exporter's side -> here, while measuring
  std::string error;
};

// The remote commit time the importer passes on (docs/fbbridge.md); 0 when absent.
uint64_t remote_realtime_ns(const meta::FrameMeta& m) {
  if (!m.tags()) return 0;
  for (const auto* t : *m.tags())
    if (t->key() && t->value() && t->key()->string_view() == kRemoteTimeTag)
      return std::strtoull(t->value()->c_str(), nullptr, 10);
  return 0;
}

void receive(const std::string& socket, const std::string& stream, Receiver& r) {
  try {
    ConnectOptions co;
    co.socket_path = socket;
    co.client_name = "fbbench-bridge-sub";
    Client client = Client::connect(co);
    SubscribeOptions so;
    so.mode = Mode::Every;
    auto sub = client.subscribe(stream, so);
    while (!r.stop.load()) {
      auto f = sub.next(std::chrono::milliseconds(100));
      if (!f) {
        if (sub.ended()) break;
        continue;
      }
      const uint64_t now = realtime_ns();
      const auto& m = f->meta();
      if (const uint64_t t = remote_realtime_ns(m); t > 0 && now >= t) {
        const double us = double(now - t) / 1e3;
        if (r.measuring.load(std::memory_order_relaxed)) r.latency_us.push_back(us);
        r.settled = us < r.settle_us ? r.settled.load() + 1 : 0;
      }
      if (r.first_source_seq.load() < 0) r.first_source_seq = m.source_seq();
      r.last_source_seq = m.source_seq();
      r.bytes += f->pixels().size();
      r.frames.fetch_add(1);  // last: the main thread reads the others once this moves
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
}

struct LinkRun {
  double seconds = 0;
  uint64_t received = 0, missed = 0, bytes = 0, published = 0;
  double exporter_cpu_s = 0;
  std::vector<double> latency_us;
  double fps() const { return seconds > 0 ? double(received) / seconds : 0; }
  double gb_per_s() const { return seconds > 0 ? double(bytes) / 1e9 / seconds : 0; }
  double camera_fps() const { return seconds > 0 ? double(published) / seconds : 0; }
  double cpu_s_per_gb() const { return bytes > 0 ? exporter_cpu_s / (double(bytes) / 1e9) : 0; }
};

class BridgeRuns {
 public:
  BridgeRuns(const BridgeOptions& o, const NetPair& net)
      : o_(o),
        exe_(find_broker(o.broker)),
        fbbridge_(find_tool(o.fbbridge,
                            {self_dir() + "/fbbridge/fbbridge", self_dir() + "/fbbridge"},
                            "fbbridge", "--fbbridge")),
        net_(net),
        runtime_(make_temp_dir(fs::temp_directory_path().string(), "fbbench-bridge")) {}

  const std::string& runtime_dir() const { return runtime_.path; }

  // One export -> import run: camera A at `rate` (0: free-running), `seconds` measured after
  // the first frames arrived and a short warm-up.
  LinkRun run(const FrameShape& f, bool latest, double rate, double seconds) {
    const int n = ++runs_;
    const std::string tag = "bridge" + std::to_string(n);
    BenchBroker a(exe_, runtime_.path, tag + "a", camera_for(f, rate));
    BenchBroker b(exe_, runtime_.path, tag + "b",
                  "sim:name=idle,Width=8,Height=8,PixelType=Mono16,Pattern=empty,start=false");
    const std::string port = std::to_string(5600 + n);
    const std::string elog = runtime_.path + "/" + tag + "-export.log",
                      ilog = runtime_.path + "/" + tag + "-import.log";
    Child exporter(
        spawn_logged(NetPair::in(net_.a(), {fbbridge_, "export", "--bind",
                                            "tcp://" + std::string(kAddrA) + ":" + port, "--stream",
                                            kBenchCamera, "--mode", latest ? "latest" : "every",
                                            "--socket", a.socket(), "--stats-interval-ms", "0"}),
                     elog),
        "fbbridge export", elog);
    Child importer(spawn_logged(NetPair::in(net_.b(), {fbbridge_, "import", "--connect",
                                                       "tcp://" + std::string(kAddrA) + ":" + port,
                                                       "--prefix", kPrefix, "--socket", b.socket(),
                                                       "--stats-interval-ms", "0"}),
                                ilog),
                   "fbbridge import", ilog);
    Client control = connect_to(a, "fbbench");
    control.camera(kBenchCamera).start();
    const std::string remote = std::string(kPrefix) + kBenchCamera;
    Client watch = connect_to(b, "fbbench");
    wait_for(
        [&] {
          for (const auto& s : watch.status().streams)
            if (s.name == remote) return true;
          return false;
        },
        "the imported stream " + remote + " to appear", {&exporter, &importer});

    Receiver r;
    r.settle_us = rate > 0 ? 1e6 / rate : 1e18;
    r.latency_us.reserve(size_t(std::max(1.0, seconds * std::max(rate, 1000.0))) + 1024);
    std::thread t(receive, b.socket(), remote, std::ref(r));
    struct Join {
      Receiver& r;
      std::thread& t;
      ~Join() {
        r.stop = true;
        if (t.joinable()) t.join();
      }
    } join{r, t};
    wait_for([&] { return r.frames.load() > 0 || !r.error.empty(); }, "a first imported frame",
             {&exporter, &importer});
    if (!r.error.empty()) throw std::runtime_error("subscriber on the importer: " + r.error);
    // Warm-up: the importer's first commits touch fresh pages of its new ring, and the frames
    // made meanwhile arrive late (docs/fbbridge.md). The measured window starts once the ring
    // went round and, paced, once 10 frames in a row came within a frame period of their commit
    // (at least 0.5 s, at most 10 s).
    uint64_t ring = 0;
    for (const auto& s : watch.status().streams)
      if (s.name == remote) ring = s.slots;
    const auto warm_from = Clock::now();
    while (Clock::now() - warm_from < std::chrono::milliseconds(500) ||
           ((r.frames.load() < ring + 8 || r.settled.load() < 10) &&
            Clock::now() - warm_from < std::chrono::seconds(10))) {
      check_interrupted();
      exporter.check();
      importer.check();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }

    const auto take = [&] {
      struct S {
        uint64_t frames, bytes, cpu;
        int64_t seq;
        Clock::time_point t;
      };
      const uint64_t frames = r.frames.load();
      return S{frames, r.bytes.load(), process_cpu_ns(exporter.pid), r.last_source_seq.load(),
               Clock::now()};
    };
    if (r.settled.load() < 10 && rate > 0)
      std::cerr << "  (the link did not catch up within 10 s of warm-up: measuring anyway)\n";
    const auto s0 = take();
    r.measuring = true;
    const auto end =
        s0.t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end) {
      check_interrupted();
      exporter.check();
      importer.check();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto s1 = take();
    r.measuring = false;
    r.stop = true;
    t.join();
    LinkRun out;
    out.seconds = std::chrono::duration<double>(s1.t - s0.t).count();
    out.received = s1.frames - s0.frames;
    out.bytes = s1.bytes - s0.bytes;
    out.published = s1.seq > s0.seq ? uint64_t(s1.seq - s0.seq) : 0;
    out.missed = out.published > out.received ? out.published - out.received : 0;
    out.exporter_cpu_s = double(s1.cpu - s0.cpu) / 1e9;
    out.latency_us = std::move(r.latency_us);
    return out;
  }

 private:
  // A bridge process; check() throws (with its log) once it has exited.
  struct Child {
    Child(pid_t p, std::string w, std::string l) : pid(p), what(std::move(w)), log(std::move(l)) {}
    ~Child() {
      if (pid > 0 && !exit_status(pid)) stop_process(pid);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    void check() {
      if (const auto st = exit_status(pid)) {
        pid = -1;
        throw std::runtime_error(what + " exited (" + std::to_string(*st) + "): " + read_text(log));
      }
    }
    pid_t pid;
    std::string what, log;
  };

  template <class Done>
  void wait_for(Done done, const std::string& what, std::initializer_list<Child*> children) {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (!done()) {
      check_interrupted();
      for (Child* c : children) c->check();
      if (Clock::now() > deadline) {
        std::string logs;
        for (Child* c : children) logs += "\n" + c->what + ": " + read_text(c->log);
        throw std::runtime_error("timed out waiting for " + what + logs);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  const BridgeOptions& o_;
  std::string exe_, fbbridge_;
  const NetPair& net_;
  TempDir runtime_;
  int runs_ = 0;
};

// The 8 MiB-or-larger every-mode row decides the goal (>= 0.80 of iperf3).
constexpr double kGoal = 0.80;

}  // namespace

int run_bridge_bench(const BridgeOptions& o) {
  return run_guarded([&] {
    if (::geteuid() != 0)
      throw std::runtime_error(
          "fbbench bridge makes network namespaces and a veth pair, which needs root "
          "(CAP_SYS_ADMIN and CAP_NET_ADMIN): run it as root, e.g. with sudo");
    if (run_capture({kIp, "-V"}).status != 0)
      throw std::runtime_error("fbbench bridge needs `ip` (iproute2) at " + std::string(kIp));
    std::vector<FrameShape> shapes;
    for (const auto& s : o.sizes) shapes.push_back(parse_frame_shape(s));
    NetPair net;
    BridgeRuns runs(o, net);
    std::cerr << "fbbench bridge: namespaces " << net.a() << " (" << kAddrA << ", exporter) and "
              << net.b() << " (" << kAddrB << ", importer), joined by a veth pair\n";

    Iperf iperf;
    const std::string iperf_exe = o.iperf3.empty() ? "iperf3" : o.iperf3;
    if (run_capture({iperf_exe, "--version"}).status != 0) {
      iperf.why_not = "iperf3 not found (apt install iperf3): no baseline";
    } else {
      std::cerr << "  iperf3, " << o.iperf_seconds << " s ...\n";
      iperf = run_iperf(net, iperf_exe, o.iperf_seconds, runs.runtime_dir() + "/iperf3.log");
    }
    if (iperf.ran)
      std::cerr << "  iperf3: " << fmt("%.2f", iperf.gb_per_s) << " GB/s\n";
    else
      std::cerr << "  " << iperf.why_not << "\n";

    json rows = json::array();
    tools::Table table({"size", "mode", "frames/s", "GB/s", "of iperf3", "missed", "camera fps",
                        "exp cpu s/GB", "memcpy s/GB", "p50 us", "p99 us"});
    json goal = nullptr;
    for (const FrameShape& f : shapes) {
      const double memcpy_s = memcpy_cpu_s_per_gb(f.bytes());
      for (const auto& mode : o.modes) {
        check_interrupted();
        std::cerr << "  " << f.label << " " << mode << ": free-running camera, " << o.seconds
                  << " s ...\n";
        const LinkRun l = runs.run(f, mode == "latest", 0, o.seconds);
        const double of_iperf = iperf.ran ? ratio(l.gb_per_s(), iperf.gb_per_s) : 0;
        json row = {{"kind", "throughput"},
                    {"size", f.label},
                    {"width", f.width},
                    {"height", f.height},
                    {"frame_bytes", f.bytes()},
                    {"mode", mode},
                    {"seconds", l.seconds},
                    {"frames_received", l.received},
                    {"frames_missed", l.missed},
                    {"frames_per_s", l.fps()},
                    {"gb_per_s", l.gb_per_s()},
                    {"camera_frames_per_s", l.camera_fps()},
                    {"exporter_cpu_s", l.exporter_cpu_s},
                    {"exporter_cpu_s_per_gb", l.cpu_s_per_gb()},
                    {"memcpy_cpu_s_per_gb", memcpy_s},
                    {"over_iperf3", iperf.ran ? json(of_iperf) : json(nullptr)}};
        rows.push_back(row);
        table.row({f.label, mode, tools::fixed(l.fps(), 0), tools::fixed(l.gb_per_s(), 2),
                   iperf.ran ? tools::fixed(of_iperf, 2) : "-", std::to_string(l.missed),
                   tools::fixed(l.camera_fps(), 0), tools::fixed(l.cpu_s_per_gb(), 3),
                   tools::fixed(memcpy_s, 3), "", ""});
        if (mode == "every" && f.bytes() >= (uint64_t(8) << 20) && iperf.ran && goal.is_null())
          goal = {{"size", f.label},
                  {"ratio", of_iperf},
                  {"target", kGoal},
                  {"met", of_iperf >= kGoal}};
      }
      check_interrupted();
      const double lat_seconds = double(o.latency_frames) / o.latency_rate;
      std::cerr << "  " << f.label << " every: latency at " << o.latency_rate << " fps, "
                << fmt("%.1f", lat_seconds) << " s ...\n";
      const LinkRun l = runs.run(f, false, o.latency_rate, lat_seconds);
      const LatencyStats s = summarize(l.latency_us);
      json row = {
          {"kind", "latency"},      {"size", f.label},          {"width", f.width},
          {"height", f.height},     {"frame_bytes", f.bytes()}, {"mode", "every"},
          {"rate", o.latency_rate}, {"frames", s.count},        {"frames_missed", l.missed}};
      add_percentiles(row, "commit_to_remote_", s);
      rows.push_back(row);
      table.row({f.label, "every @" + fmt("%.0f", o.latency_rate), tools::fixed(l.fps(), 0),
                 tools::fixed(l.gb_per_s(), 3), "", std::to_string(l.missed), "", "", "",
                 tools::fixed(s.p50_us, 0), tools::fixed(s.p99_us, 0)});
    }

    const char* producer =
        "the broker's simulated camera, Mono16, pattern `empty` (commits without writing a "
        "pixel)";
    if (o.json) {
      std::cout << json{{"iperf3",
                         {{"ran", iperf.ran},
                          {"gb_per_s", iperf.ran ? json(iperf.gb_per_s) : json(nullptr)},
                          {"retransmits", iperf.retransmits},
                          {"seconds", o.iperf_seconds},
                          {"note", iperf.why_not}}},
                        {"producer", producer},
                        {"goal_8M_every_over_iperf3", goal},
                        {"load_average", load_average()},
                        {"rows", rows}}
                       .dump(1)
                << "\n";
    } else {
      table.print(std::cout);
      if (iperf.ran)
        std::cout << "iperf3 (single TCP stream, same veth pair, same run): "
                  << fmt("%.2f", iperf.gb_per_s) << " GB/s, " << iperf.retransmits
                  << " retransmits\n";
      else
        std::cout << iperf.why_not << "\n";
      if (!goal.is_null())
        std::cout << "goal: " << goal["size"].get<std::string>()
                  << " every >= " << fmt("%.2f", kGoal)
                  << " of iperf3: " << fmt("%.2f", goal["ratio"].get<double>())
                  << (goal["met"].get<bool>() ? " (met)" : " (NOT met)") << "\n";
      std::cout
          << "frames/s, GB/s: received by an `every` subscriber on the importer's broker over the\n"
             "measured window; missed: camera frames (source_seq) it did not get; camera fps:\n"
             "frames the camera committed; exp cpu s/GB: the exporter's CPU (all threads) per GB\n"
             "received, next to a memcpy of the same frames on one core. Latency rows: the\n"
             "exporter-side commit (tag "
          << kRemoteTimeTag
          << ", CLOCK_REALTIME) -> the remote subscriber has the frame.\n"
             "producer: "
          << producer << "; load " << load_average() << "\n";
    }
  });
}

}  // namespace framebroker::fbbench
