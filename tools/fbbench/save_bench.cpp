#include "fbbench/save_bench.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "fbbench/disk.hpp"
#include "fbbench/process.hpp"
#include "fbbench/zarr_baseline.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbbench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kCamera = "bench";

// ---------------------------------------------------------------------------------------------
// One fbsave run.

struct FormatSpec {
  std::string name;      // raw, zarr, zarr-lz4, zarr3, zarr3-lz4
  std::string format;    // fbsave --format (zarr: v2, zarr3: v3 with its default shards)
  std::string compress;  // fbsave --compress
  std::string output;    // output name in the work dir
  std::string baseline;  // what it is compared with: dd, py-zarr, py-zarr-lz4
};

const std::vector<FormatSpec>& format_specs() {
  static const std::vector<FormatSpec> specs{
      {"raw", "raw", "none", "raw", "dd"},
      {"zarr", "zarr", "none", "zarr.zarr", "py-zarr"},
      {"zarr-lz4", "zarr", "lz4", "zarr-lz4.zarr", "py-zarr-lz4"},
      {"zarr3", "zarr3", "none", "zarr3.zarr", "py-zarr"},
      {"zarr3-lz4", "zarr3", "lz4", "zarr3-lz4.zarr", "py-zarr-lz4"},
  };
  return specs;
}

struct SaveRun {
  std::string mode;  // free (FrameRate=0, for a duration) or paced (N frames at rate_fps)
  double rate_fps = 0;
  uint64_t frames = 0;  // asked for (paced)
  uint64_t written = 0, missed = 0, bytes = 0, disk_bytes = 0;
  uint64_t files = 0;         // regular files in the output
  double seconds = 0;         // fbsave start to the end of syncfs
  double sync_seconds = 0;    // the syncfs after fbsave exited
  double fbsave_elapsed = 0;  // fbsave's own elapsed_s
  std::string error;

  bool ok() const { return error.empty(); }
  bool lossless() const { return ok() && missed == 0 && written == frames; }
  double mb_per_s() const { return seconds > 0 ? double(bytes) / seconds / 1e6 : 0; }
  // The files a camera at 1 kHz would make the saver create each second: files per frame x 1000.
  double files_per_s_at_1khz() const {
    return written ? double(files) * 1000 / double(written) : 0;
  }
};

struct SaveJob {
  const FormatSpec* spec;
  double rate_fps;
  std::optional<uint64_t> frames;  // paced
  double duration_s = 0;           // free
};

std::vector<std::string> fbsave_argv(const std::string& exe, const std::string& socket,
                                     const std::string& path, const FormatSpec& spec,
                                     const SaveJob& job, uint32_t chunk_frames) {
  std::vector<std::string> a{exe,        kCamera,     "--socket", socket,   "-o",         path,
                             "--format", spec.format, "--start",  "--json", "--overwrite"};
  if (job.frames) {
    a.insert(a.end(), {"--frames", std::to_string(*job.frames)});
  } else {
    a.insert(a.end(), {"--duration", fmt("%.3f", job.duration_s)});
  }
  if (spec.format == "zarr")
    a.insert(a.end(),
             {"--compress", spec.compress, "--chunk-frames", std::to_string(chunk_frames)});
  if (spec.format == "zarr3")  // its defaults: a frame per inner chunk, shards of up to 64 MiB
    a.insert(a.end(), {"--compress", spec.compress});
  return a;
}

// fbsave --json prints one JSON object on its last line.
void read_fbsave_summary(const ProcResult& p, SaveRun& r) {
  const std::string out = trim(p.out);
  const auto nl = out.rfind('\n');
  json j;
  try {
    j = json::parse(nl == std::string::npos ? out : out.substr(nl + 1));
  } catch (const json::exception&) {
    r.error = "fbsave exited " + std::to_string(p.status) + ": " + trim(p.err);
    return;
  }
  r.written = j.value("frames_written", uint64_t(0));
  r.missed = j.value("frames_missed", uint64_t(0));
  r.bytes = j.value("bytes", uint64_t(0));
  r.fbsave_elapsed = j.value("elapsed_s", 0.0);
  if (!j["error"].is_null()) r.error = j["error"].get<std::string>();
  if (r.error.empty() && !p.ok())
    r.error = "fbsave exited " + std::to_string(p.status) + ": " + trim(p.err);
}

// ---------------------------------------------------------------------------------------------
// Baselines.

struct Baseline {
  std::string name;  // dd, py-zarr, py-zarr-lz4
  uint64_t frames = 0, bytes = 0, disk_bytes = 0;
  double seconds = 0;
  std::string error;
  bool ok() const { return error.empty() && seconds > 0; }
  double mb_per_s() const { return ok() ? double(bytes) / seconds / 1e6 : 0; }
};

constexpr const char* kPythonVersions = R"PY(
import numcodecs, numpy, zarr
print("zarr %s, numcodecs %s, numpy %s" % (zarr.__version__, numcodecs.__version__, numpy.__version__))
)PY";

// ---------------------------------------------------------------------------------------------
// The benchmark.

struct SizeResult {
  uint32_t side = 0;
  uint64_t frames = 0;
  std::vector<Baseline> baselines;
  struct PerFormat {
    const FormatSpec* spec;
    SaveRun free;
    std::vector<SaveRun> paced;  // in the order run
    std::optional<size_t> best;  // the fastest lossless paced run
  };
  std::vector<PerFormat> formats;

  const Baseline* baseline(const std::string& name) const {
    for (const auto& b : baselines)
      if (b.name == name && b.ok()) return &b;
    return nullptr;
  }
  double baseline_mb_per_s(const std::string& name) const {
    const Baseline* b = baseline(name);
    return b ? b->mb_per_s() : 0;
  }
};

class SaveBench {
 public:
  explicit SaveBench(const SaveBenchOptions& o)
      : o_(o),
        dir_(choose_dir(o.dir)),
        fs_(filesystem_of(dir_)),
        broker_exe_(find_broker(o.broker)),
        fbsave_exe_(find_tool(o.fbsave, {self_dir() + "/fbsave", self_dir() + "/../tools/fbsave"},
                              "fbsave", "--fbsave")),
        work_(make_temp_dir(dir_, "fbbench")),
        runtime_(make_temp_dir(fs::temp_directory_path().string(), "fbbench-run")) {}

  int run() {
    if (o_.soak) return run_soak(*o_.soak);
    load_start_ = load_average();
    check_space();
    python_versions_ = python_versions();
    progress("fbbench save: writing in " + work_.path + " (" + fs_.type + " on " + fs_.source +
             ")");
    if (fs_.type == "tmpfs")
      progress("warning: " + dir_ + " is tmpfs: the numbers measure memory, not a disk");
    for (uint32_t side : o_.sizes) results_.push_back(bench_size(side));
    load_end_ = load_average();
    if (o_.json)
      print_json();
    else
      print_table();
    return 0;
  }

 private:
  uint64_t frames_for(uint32_t side) const { return o_.frames.value_or(default_frames(side)); }
  uint32_t slots_for(uint32_t side) const { return o_.slots ? o_.slots : default_slots(side); }

  // One stopped simulated camera per frame size.
  std::string camera_spec(uint32_t side) const {
    return "sim:name=" + std::string(kCamera) + ",Width=" + std::to_string(side) +
           ",Height=" + std::to_string(side) +
           ",PixelType=Mono16,Pattern=spots,FrameRate=0,slots=" + std::to_string(slots_for(side)) +
           ",start=false";
  }
  static uint64_t frame_bytes(uint32_t side) { return uint64_t(side) * side * 2; }

  void progress(const std::string& line) const { std::fprintf(stderr, "%s\n", line.c_str()); }

  // The largest output at once: a paced run, or a free run at up to 3 GB/s plus the ring.
  void check_space() const {
    uint64_t need = 0;
    for (uint32_t side : o_.sizes) {
      const uint64_t fb = frame_bytes(side);
      need = std::max({need, frames_for(side) * fb,
                       uint64_t(3e9 * o_.free_seconds) + uint64_t(slots_for(side)) * fb});
    }
    need += need / 5;
    const uint64_t avail = free_bytes(dir_);
    if (avail < need)
      throw std::runtime_error(dir_ + " has " + fmt("%.1f", avail / 1e9) +
                               " GB free; the runs need " + fmt("%.1f", need / 1e9) +
                               " GB (use --dir, --frames or --free-seconds)");
  }

  std::string python_versions() const {
    try {
      const auto p = run_capture({o_.python, "-c", kPythonVersions});
      if (p.ok()) return trim(p.out);
      progress("warning: no python3-zarr baseline: " + trim(p.err));
    } catch (const std::exception& e) {
      progress(std::string("warning: no python3-zarr baseline: ") + e.what());
    }
    return "";
  }

  SizeResult bench_size(uint32_t side) {
    SizeResult r;
    r.side = side;
    r.frames = frames_for(side);
    const std::string size = std::to_string(side) + "x" + std::to_string(side);
    r.baselines.push_back(fastest_of([&] { return run_dd(side, r.frames); }, size));
    for (const std::string cname : {"none", "lz4"})
      r.baselines.push_back(
          fastest_of([&] { return run_python_zarr(side, r.frames, cname); }, size));
    BenchBroker broker(broker_exe_, runtime_.path, std::to_string(side), camera_spec(side));
    for (const auto& spec : format_specs())
      r.formats.push_back(bench_format(broker, spec, r.frames, size));
    return r;
  }

  // Runs a baseline --baseline-runs times and keeps the fastest (the paced search keeps the
  // fastest fbsave run too).
  template <class F>
  Baseline fastest_of(F run_once, const std::string& size) const {
    std::optional<Baseline> best;
    for (int i = 0; i < o_.baseline_runs; ++i) {
      Baseline b = run_once();
      report_baseline(size, b);
      if (!best || (b.ok() && b.mb_per_s() > best->mb_per_s())) best = std::move(b);
    }
    return *best;
  }

  void report_baseline(const std::string& size, const Baseline& b) const {
    if (b.ok())
      progress("  " + size + " " + b.name + ": " + fmt("%.0f MB/s", b.mb_per_s()));
    else
      progress("  " + size + " " + b.name + ": failed: " + b.error);
  }

  Baseline run_dd(uint32_t side, uint64_t n) {
    check_interrupted();
    Baseline b{"dd", n, n * frame_bytes(side)};
    const std::string path = work_.path + "/dd.bin";
    sync_filesystem(work_.path);
    const auto p =
        run_capture({"dd", "if=/dev/zero", "of=" + path, "bs=" + std::to_string(frame_bytes(side)),
                     "count=" + std::to_string(n), "oflag=direct", "conv=fsync", "status=none"});
    b.seconds = p.seconds;
    b.disk_bytes = tree_bytes(path);
    if (!p.ok()) b.error = "dd exited " + std::to_string(p.status) + ": " + trim(p.err);
    remove_output(path);
    check_interrupted();
    return b;
  }

  Baseline run_python_zarr(uint32_t side, uint64_t n, const std::string& cname) {
    check_interrupted();
    Baseline b{cname == "none" ? "py-zarr" : "py-zarr-" + cname, n, n * frame_bytes(side)};
    if (python_versions_.empty()) {
      b.error = "python3 with zarr and numcodecs is not available";
      return b;
    }
    const std::string path = work_.path + "/python.zarr";
    sync_filesystem(work_.path);
    const auto p =
        run_capture({o_.python, "-c", kZarrBaselinePy, std::to_string(side), std::to_string(n),
                     std::to_string(o_.chunk_frames), path, cname, "5"});
    try {
      const json j = json::parse(trim(p.out));
      b.seconds = j.at("seconds").get<double>();
      b.disk_bytes = j.at("disk_bytes").get<uint64_t>();
    } catch (const json::exception&) {
      b.error = "python3 exited " + std::to_string(p.status) + ": " + trim(p.err);
    }
    remove_output(path);
    check_interrupted();
    return b;
  }

  SaveRun run_fbsave(BenchBroker& broker, const SaveJob& job) {
    check_interrupted();
    SaveRun r;
    r.mode = job.frames ? "paced" : "free";
    r.rate_fps = job.rate_fps;
    r.frames = job.frames.value_or(0);
    const std::string path = work_.path + "/" + job.spec->output;
    remove_output(path);
    broker.connect().camera(kCamera).set("FrameRate", fmt("%.6g", job.rate_fps));
    sync_filesystem(work_.path);
    const auto t0 = Clock::now();
    const auto p = run_capture(
        fbsave_argv(fbsave_exe_, broker.socket(), path, *job.spec, job, o_.chunk_frames));
    const auto t_sync = Clock::now();
    sync_filesystem(work_.path);
    r.sync_seconds = seconds_since(t_sync);
    r.seconds = seconds_since(t0);
    read_fbsave_summary(p, r);
    r.disk_bytes = tree_bytes(path);
    r.files = tree_files(path);
    remove_output(path);
    check_interrupted();
    return r;
  }

  void report_run(const std::string& size, const FormatSpec& spec, const SaveRun& r) const {
    const std::string what =
        "  " + size + " " + spec.name + " " +
        (r.mode == "free" ? std::string("free (FrameRate=0)") : fmt("at %.0f fps", r.rate_fps));
    if (!r.ok()) {
      progress(what + ": failed: " + r.error);
      return;
    }
    progress(what + ": " + fmt("%.0f MB/s", r.mb_per_s()) + ", " + std::to_string(r.written) +
             " written, " + std::to_string(r.missed) + " missed");
  }

  // The free run gives the rate the saver reaches (frames written / fbsave's own time, without
  // the final syncfs). Paced runs start just below it, step up 30% after a lossless run and down
  // 20% after a lossy one; once a lossless and a lossy rate bracket the limit, they bisect.
  SizeResult::PerFormat bench_format(BenchBroker& broker, const FormatSpec& spec, uint64_t n,
                                     const std::string& size) {
    SizeResult::PerFormat f{&spec};
    f.free = run_fbsave(broker, {&spec, 0, std::nullopt, o_.free_seconds});
    report_run(size, spec, f.free);
    if (!f.free.ok() || f.free.fbsave_elapsed <= 0) return f;
    double rate = std::floor(0.95 * double(f.free.written) / f.free.fbsave_elapsed);
    double lossless_rate = 0, lossy_rate = 0;
    for (int i = 0; i < o_.paced_tries && rate >= 1; ++i) {
      f.paced.push_back(run_fbsave(broker, {&spec, rate, n, 0}));
      const SaveRun& r = f.paced.back();
      report_run(size, spec, r);
      if (!r.ok()) break;
      if (r.lossless()) {
        lossless_rate = std::max(lossless_rate, rate);
        if (!f.best || r.mb_per_s() > f.paced[*f.best].mb_per_s()) f.best = f.paced.size() - 1;
      } else {
        lossy_rate = lossy_rate > 0 ? std::min(lossy_rate, rate) : rate;
      }
      rate = next_rate(lossless_rate, lossy_rate, rate);
    }
    return f;
  }

  // 0: the limit is found closely enough.
  static double next_rate(double lossless_rate, double lossy_rate, double rate) {
    if (lossless_rate > 0 && lossy_rate > 0)
      return lossy_rate / lossless_rate < 1.03 ? 0 : std::floor((lossless_rate + lossy_rate) / 2);
    return std::floor(lossless_rate > 0 ? rate * 1.3 : rate * 0.8);
  }

  // ---- soak ----

  // The soak's camera: the broker's default ring (ring_ms) unless --slots, at its rate already.
  std::string soak_camera_spec(const SoakOptions& so) const {
    return "sim:name=" + std::string(kCamera) + ",Width=" + std::to_string(so.side) +
           ",Height=" + std::to_string(so.side) + ",PixelType=Mono16,Pattern=" + so.pattern +
           ",FrameRate=" + fmt("%.6g", so.rate_fps) +
           (o_.slots ? ",slots=" + std::to_string(o_.slots) : std::string()) + ",start=false";
  }

  // --hogs: CPU-bound processes at nice 0 for as long as it lives (they die with fbbench too).
  class Hogs {
   public:
    explicit Hogs(int n) {
      for (int i = 0; i < n; ++i)
        pids_.push_back(spawn_logged({"sh", "-c", "while :; do :; done"}, "/dev/null"));
    }
    ~Hogs() {
      for (pid_t p : pids_) stop_process(p);
    }
    Hogs(const Hogs&) = delete;
    Hogs& operator=(const Hogs&) = delete;

   private:
    std::vector<pid_t> pids_;
  };

  const FormatSpec& soak_format(const SoakOptions& so) const {
    for (const auto& f : format_specs())
      if (f.name == so.format) return f;
    throw std::runtime_error("unknown format " + so.format);
  }

  // Counter frames (a ramp) compress to almost nothing with Blosc lz4 + shuffle.
  void check_soak_space(const SoakOptions& so, uint64_t n) const {
    const bool tiny = so.pattern == "counter" && so.format == "zarr-lz4";
    const uint64_t need = n * frame_bytes(so.side) / (tiny ? 50 : 10) * (tiny ? 1 : 12);
    if (const uint64_t avail = free_bytes(dir_); avail < need)
      throw std::runtime_error(dir_ + " has " + fmt("%.1f", avail / 1e9) + " GB free; the soak " +
                               "needs up to " + fmt("%.1f", need / 1e9) +
                               " GB (use --dir, --seconds, --rate or --size)");
  }

  static StreamStatus camera_status(const Status& status) {
    for (const auto& st : status.streams)
      if (st.name == kCamera) return st;
    return {};
  }

  int run_soak(const SoakOptions& so) {
    const FormatSpec& spec = soak_format(so);
    const uint64_t n = uint64_t(std::llround(so.rate_fps * so.seconds));
    check_soak_space(so, n);
    const std::string size = std::to_string(so.side) + "x" + std::to_string(so.side);
    progress("fbbench soak: " + std::to_string(n) + " frames of " + size + " Mono16 (" +
             so.pattern + ") at " + fmt("%.0f", so.rate_fps) + " fps (" + fmt("%.0f", so.seconds) +
             " s), fbsave " + spec.name + ", " + std::to_string(so.hogs) + " CPU hogs, in " +
             work_.path + " (" + fs_.type + ")");
    load_start_ = load_average();
    BenchBroker broker(broker_exe_, runtime_.path, std::to_string(so.side), soak_camera_spec(so));
    if (so.mix) return run_mix(so, spec, broker, n, size);
    SaveRun r;
    {
      Hogs hogs(so.hogs);
      r = run_fbsave(broker, {&spec, so.rate_fps, n, 0});
    }
    load_end_ = load_average();
    const StreamStatus cam = camera_status(broker.connect().status());
    const uint32_t slots = cam.slots;
    const json out{{"size", size},
                   {"format", spec.name},
                   {"pattern", so.pattern},
                   {"rate", so.rate_fps},
                   {"rate_fps", so.rate_fps},
                   {"hogs", so.hogs},
                   {"slots", slots},
                   {"frames", n},
                   {"frames_written", r.written},
                   {"missed", r.missed},
                   {"frames_missed", r.missed},
                   {"dropped_ring_full", cam.dropped_ring_full},
                   {"dropped_camera", cam.dropped_camera},
                   {"lossless", r.lossless()},
                   {"seconds", r.seconds},
                   {"mb_per_s", nullable(r.mb_per_s())},
                   {"bytes_on_disk", r.disk_bytes},
                   {"load_average_start", load_start_},
                   {"load_average_end", load_end_},
                   {"error", r.ok() ? json(nullptr) : json(r.error)}};
    if (o_.json) {
      std::printf("%s\n", out.dump(2).c_str());
    } else if (!r.ok()) {
      std::printf("soak %s %s at %.0f fps: failed: %s\n", size.c_str(), spec.name.c_str(),
                  so.rate_fps, r.error.c_str());
    } else {
      std::printf(
          "soak %s %s at %.0f fps for %.0f s, %d hogs, %u slots: %llu written, %llu missed, "
          "%.0f MB/s, %.1f GB on disk, load %s -> %s: %s\n",
          size.c_str(), spec.name.c_str(), so.rate_fps, r.seconds, so.hogs, slots,
          (unsigned long long)r.written, (unsigned long long)r.missed, r.mb_per_s(),
          r.disk_bytes / 1e9, load_start_.c_str(), load_end_.c_str(),
          r.lossless() ? "every frame saved" : "FRAMES MISSED");
    }
    return r.ok() ? 0 : 1;
  }

  // ---- soak --mix ----

  // One subscriber thread of the mix, with its own connection (named after it, so its row in
  // the broker's status is found by client name).
  struct MixSubscriber {
    std::string name;
    SubscribeOptions options;
    double slow_ms = 0;
    std::atomic<uint64_t> received{0}, gaps{0};
    std::atomic<bool> subscribed{false};
    std::string error;  // set by the thread before it ends
    std::thread thread;
  };

  static void mix_subscriber(MixSubscriber& m, const std::string& socket,
                             const std::atomic<bool>& stop) {
    try {
      ConnectOptions co;
      co.socket_path = socket;
      co.client_name = m.name;
      Client client = Client::connect(co);
      Subscription sub = client.subscribe(kCamera, m.options);
      m.subscribed = true;
      int64_t last = -1;
      const auto pause = std::chrono::microseconds(int64_t(m.slow_ms * 1000));
      while (!stop) {
        const auto f = sub.next(std::chrono::milliseconds(50));
        if (!f) continue;
        m.received.fetch_add(1, std::memory_order_relaxed);
        const auto seq = int64_t(f->seq());
        if (m.options.mode == Mode::Every && last >= 0 && seq > last + 1)
          m.gaps.fetch_add(uint64_t(seq - last - 1), std::memory_order_relaxed);
        last = seq;
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
      }
    } catch (const std::exception& e) {
      m.error = e.what();
    }
    m.subscribed = true;  // the caller waits for this either way
  }

  struct InvariantCheck {
    uint64_t done = 0, failed = 0;
    std::string first_failure;
  };

  // free + writing + ready = slots, and no ready slot without a holder that was published (one
  // committed but not yet published has a seq above latest_seq and no holder yet).
  static void check_invariant(const Status& st, InvariantCheck& inv) {
    ++inv.done;
    std::string why;
    for (const auto& s : st.streams)
      if (s.name == kCamera && s.free + s.writing + s.ready != s.slots)
        why = "free " + std::to_string(s.free) + " + writing " + std::to_string(s.writing) +
              " + ready " + std::to_string(s.ready) + " != slots " + std::to_string(s.slots);
    int64_t latest = -1;
    for (const auto& s : st.streams)
      if (s.name == kCamera) latest = s.latest_seq;
    if (st.slot_map)
      for (const auto& slot : st.slot_map->slots)
        if (slot.state == "ready" && slot.holders.empty() && slot.seq <= latest)
          why = "slot " + std::to_string(slot.index) + " (seq " + std::to_string(slot.seq) +
                ") is ready with no holder";
    if (why.empty()) return;
    if (inv.failed++ == 0) inv.first_failure = why;
  }

  static const SubscriberStatus* subscriber_row(const Status& st, const std::string& client) {
    for (const auto& x : st.subscribers)
      if (x.client == client) return &x;
    return nullptr;
  }

  int run_mix(const SoakOptions& so, const FormatSpec& spec, BenchBroker& broker, uint64_t n,
              const std::string& size) {
    // 3 every, 1 slow every (a small max_hold: a slow `every` client with the default
    // max_hold = slots - 4 would pin the whole ring), 3 latest; fbsave is the 8th.
    std::vector<std::unique_ptr<MixSubscriber>> subs;
    auto add = [&](std::string name, Mode mode, uint32_t max_hold, double slow_ms) {
      auto m = std::make_unique<MixSubscriber>();
      m->name = std::move(name);
      m->options.mode = mode;
      m->options.max_hold = max_hold;
      m->slow_ms = slow_ms;
      subs.push_back(std::move(m));
    };
    for (int i = 0; i < 3; ++i) add("soak-every-" + std::to_string(i), Mode::Every, 0, 0);
    add("soak-every-slow", Mode::Every, 16, so.slow_ms);
    for (int i = 0; i < 3; ++i) add("soak-latest-" + std::to_string(i), Mode::Latest, 0, 0);
    std::atomic<bool> stop{false};
    struct Joiner {  // the threads end before `subs` goes, whatever happens
      std::vector<std::unique_ptr<MixSubscriber>>& subs;
      std::atomic<bool>& stop;
      ~Joiner() {
        stop = true;
        for (auto& m : subs)
          if (m->thread.joinable()) m->thread.join();
      }
    } joiner{subs, stop};
    for (auto& m : subs)
      m->thread = std::thread(mix_subscriber, std::ref(*m), broker.socket(), std::cref(stop));
    for (auto& m : subs) {
      while (!m->subscribed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (!m->error.empty()) throw std::runtime_error(m->name + ": " + m->error);
    }

    Client control = broker.connect();
    InvariantCheck inv;
    uint64_t rss_start = 0, rss_end = 0;
    SaveRun saver;
    saver.mode = "paced";
    saver.rate_fps = so.rate_fps;
    saver.frames = n;
    const std::string out_path = work_.path + "/" + spec.output;
    const std::string log = work_.path + "/fbsave.log";
    {
      Hogs hogs(so.hogs);
      const auto t0 = Clock::now();
      const pid_t fbsave = spawn_logged(fbsave_argv(fbsave_exe_, broker.socket(), out_path, spec,
                                                    {&spec, so.rate_fps, n, 0}, o_.chunk_frames),
                                        log);
      std::optional<int> status;
      for (int tick = 1; !(status = exit_status(fbsave)); ++tick) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        if (interrupted()) {
          stop_process(fbsave);
          check_interrupted();
        }
        check_invariant(control.status(kCamera), inv);
        rss_end = rss_kb(broker.pid());
        if (tick == std::min(2, std::max(1, int(so.seconds / 2)))) rss_start = rss_end;
      }
      saver.seconds = seconds_since(t0);
      ProcResult p;
      p.status = *status;
      std::ifstream in(log);
      p.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      read_fbsave_summary(p, saver);
    }
    saver.disk_bytes = tree_bytes(out_path);
    remove_output(out_path);

    // The camera stopped after n frames: wait until every subscriber has been sent all it will
    // get, then account.
    Status final_status;
    for (auto deadline = Clock::now() + std::chrono::seconds(30);;) {
      final_status = control.status(kCamera);
      bool drained = true;
      for (const auto& m : subs)
        if (const auto* row = subscriber_row(final_status, m->name))
          drained = drained && row->queued == 0 && m->received.load() == row->delivered;
      if (drained || Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    check_invariant(final_status, inv);
    load_end_ = load_average();
    const StreamStatus cam = camera_status(final_status);
    const uint64_t published = cam.published;
    const uint32_t slots = cam.slots;

    json rows = json::array();
    bool accounted = true;
    for (const auto& m : subs) {
      const SubscriberStatus* row = subscriber_row(final_status, m->name);
      json j{{"name", m->name},
             {"mode", m->options.mode == Mode::Every ? "every" : "latest"},
             {"slow_ms", m->slow_ms},
             {"received", m->received.load()},
             {"seq_gaps", m->gaps.load()},
             {"error", m->error.empty() ? json(nullptr) : json(m->error)}};
      bool ok = row && m->error.empty();
      if (row) {
        j.update({{"published", published},
                  {"delivered", row->delivered},
                  {"missed", row->missed},
                  {"conflated", row->conflated}});
        ok = ok && published == row->delivered + row->missed + row->conflated &&
             m->received.load() == row->delivered;
      }
      j["balanced"] = ok;
      accounted = accounted && ok;
      rows.push_back(std::move(j));
    }
    const bool saver_ok = saver.ok() && saver.written + saver.missed == n;
    accounted = accounted && saver_ok;
    rows.push_back({{"name", "fbsave"},
                    {"mode", "every"},
                    {"format", spec.name},
                    {"frames", n},
                    {"written", saver.written},
                    {"missed", saver.missed},
                    {"balanced", saver_ok},
                    {"error", saver.ok() ? json(nullptr) : json(saver.error)}});
    const int64_t growth = int64_t(rss_end) - int64_t(rss_start);
    const json out{{"mode", "mix"},
                   {"size", size},
                   {"format", spec.name},
                   {"pattern", so.pattern},
                   {"rate", so.rate_fps},
                   {"hogs", so.hogs},
                   {"slots", slots},
                   {"frames", n},
                   {"published", published},
                   {"dropped_ring_full", cam.dropped_ring_full},
                   {"dropped_camera", cam.dropped_camera},
                   {"seconds", saver.seconds},
                   {"missed", saver.missed},
                   {"frames_written", saver.written},
                   {"rss_start_kib", rss_start},
                   {"rss_end_kib", rss_end},
                   {"rss_growth_kib", growth},
                   {"invariant_checks", inv.done},
                   {"invariant_failures", inv.failed},
                   {"invariant_first_failure",
                    inv.first_failure.empty() ? json(nullptr) : json(inv.first_failure)},
                   {"accounting_ok", accounted},
                   {"subscribers", rows},
                   {"bytes_on_disk", saver.disk_bytes},
                   {"load_average_start", load_start_},
                   {"load_average_end", load_end_}};
    if (o_.json) {
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      std::printf(
          "soak --mix %s at %.0f fps for %.0f s, %d hogs, %u slots: broker RSS %llu -> %llu KiB "
          "(%+lld KiB); slot invariant %llu checks, %llu failed; fbsave %llu written, %llu "
          "missed\n",
          size.c_str(), so.rate_fps, saver.seconds, so.hogs, slots, (unsigned long long)rss_start,
          (unsigned long long)rss_end, (long long)growth, (unsigned long long)inv.done,
          (unsigned long long)inv.failed, (unsigned long long)saver.written,
          (unsigned long long)saver.missed);
      std::printf("%-18s %-7s %9s %9s %9s %9s %9s  %s\n", "SUBSCRIBER", "MODE", "PUBLISHED",
                  "DELIVERED", "MISSED", "CONFLATED", "RECEIVED", "BALANCED");
      for (const auto& r : rows) {
        if (r["name"] == "fbsave") continue;
        std::printf("%-18s %-7s %9llu %9llu %9llu %9llu %9llu  %s\n",
                    r["name"].get<std::string>().c_str(), r["mode"].get<std::string>().c_str(),
                    (unsigned long long)r.value("published", uint64_t(0)),
                    (unsigned long long)r.value("delivered", uint64_t(0)),
                    (unsigned long long)r.value("missed", uint64_t(0)),
                    (unsigned long long)r.value("conflated", uint64_t(0)),
                    (unsigned long long)r.value("received", uint64_t(0)),
                    r["balanced"].get<bool>() ? "yes" : "NO");
      }
      std::printf("%s\n", accounted && inv.failed == 0 ? "every frame accounted for"
                                                       : "ACCOUNTING OR SLOT INVARIANT FAILED");
    }
    return accounted && inv.failed == 0 ? 0 : 1;
  }

  // ---- output ----

  struct Row {
    std::string size, format, mode;
    const SaveRun* run = nullptr;
    const Baseline* baseline = nullptr;  // the row is a baseline
    double versus = 0;                   // fbsave MB/s / its baseline's MB/s
    std::string versus_name;
  };

  static std::string size_name(const SizeResult& s) {
    return std::to_string(s.side) + "x" + std::to_string(s.side);
  }

  // A row for one fbsave run, with its speed relative to its baseline.
  static Row run_row(const SizeResult& s, const SizeResult::PerFormat& f, const SaveRun& r) {
    const double base = s.baseline_mb_per_s(f.spec->baseline);
    const double versus = base > 0 && r.ok() ? r.mb_per_s() / base : 0;
    return {size_name(s), f.spec->name, r.mode, &r, nullptr, versus, f.spec->baseline};
  }

  // Baselines, then per format the fastest lossless paced run (else the last one) and the free run.
  static std::vector<Row> rows_of(const SizeResult& s) {
    std::vector<Row> rows;
    for (const auto& b : s.baselines) rows.push_back({size_name(s), b.name, "", nullptr, &b});
    for (const auto& f : s.formats) {
      if (f.best)
        rows.push_back(run_row(s, f, f.paced[*f.best]));
      else if (!f.paced.empty())
        rows.push_back(run_row(s, f, f.paced.back()));
      rows.push_back(run_row(s, f, f.free));
    }
    return rows;
  }

  static std::string run_label(const SaveRun& r) {
    if (r.mode == "free") return "free, 0 fps";
    return fmt("%.0f fps", r.rate_fps) + (r.lossless() ? "" : " (lossy)");
  }

  void print_header() const {
    std::printf(
        "fbbench save: %s, %s on %s (mounted at %s), %u CPUs, load %s at start, %s at end\n",
        work_.path.c_str(), fs_.type.c_str(), fs_.source.c_str(), fs_.mount_point.c_str(),
        std::thread::hardware_concurrency(), load_start_.c_str(), load_end_.c_str());
    std::printf("frames: sim `spots`, Mono16; zarr chunks of %u frames; Blosc clevel 5 + shuffle\n",
                o_.chunk_frames);
    std::string rings;
    for (uint32_t side : o_.sizes)
      rings += (rings.empty() ? "" : ", ") + std::to_string(slots_for(side)) + " slots at " +
               std::to_string(side) + "x" + std::to_string(side);
    std::printf("camera ring: %s (fbsave may fall behind by slots - 4 frames)\n", rings.c_str());
    std::printf("baselines (fastest of %d): dd oflag=direct conv=fsync; python3 %s\n",
                o_.baseline_runs,
                python_versions_.empty() ? "zarr: not available" : python_versions_.c_str());
    std::printf(
        "times run from start to the end of syncfs(); MB/s = frame bytes / time (1 MB = 1e6 "
        "B)\n");
    std::printf(
        "zarr: Zarr v2, a file per chunk; zarr3: Zarr v3 with fbsave's default shards (a frame per "
        "inner chunk, up to 64 MiB a file); FILES/S: files created per second at 1 kHz (files in "
        "the output per frame x 1000)\n\n");
  }

  void print_table() const {
    print_header();
    std::printf("%-10s %-17s %-17s %7s %8s %7s %8s %8s %8s  %s\n", "SIZE", "WRITER", "CAMERA",
                "WRITTEN", "MISSED", "SECONDS", "MB/S", "DISK_MB", "FILES/S", "VERSUS");
    for (const auto& s : results_) {
      for (const auto& row : rows_of(s)) print_row(row);
      std::printf("\n");
    }
    print_goals();
  }

  static void print_row(const Row& row) {
    if (row.baseline) {
      const Baseline& b = *row.baseline;
      if (!b.ok()) {
        std::printf("%-10s %-17s failed: %s\n", row.size.c_str(), b.name.c_str(), b.error.c_str());
        return;
      }
      std::printf("%-10s %-17s %-17s %7llu %8s %7.2f %8.0f %8.0f %8s\n", row.size.c_str(),
                  b.name.c_str(), "-", (unsigned long long)b.frames, "-", b.seconds, b.mb_per_s(),
                  b.disk_bytes / 1e6, "-");
      return;
    }
    const SaveRun& r = *row.run;
    const std::string name = "fbsave " + row.format;
    if (!r.ok()) {
      std::printf("%-10s %-17s %-17s failed: %s\n", row.size.c_str(), name.c_str(),
                  run_label(r).c_str(), r.error.c_str());
      return;
    }
    const std::string versus =
        row.versus > 0 ? fmt("%.2f", row.versus) + " x " + row.versus_name : std::string("-");
    std::printf("%-10s %-17s %-17s %7llu %8llu %7.2f %8.0f %8.0f %8.1f  %s\n", row.size.c_str(),
                name.c_str(), run_label(r).c_str(), (unsigned long long)r.written,
                (unsigned long long)r.missed, r.seconds, r.mb_per_s(), r.disk_bytes / 1e6,
                r.files_per_s_at_1khz(), versus.c_str());
  }

  // The issue's goals, from the lossless paced runs.
  void print_goals() const {
    for (const auto& s : results_) {
      const std::string size = size_name(s);
      std::printf(
          "%s: raw/dd %s (goal >= 0.90); zarr/dd %s, zarr3/dd %s (goal >= 0.90); zarr/py-zarr %s, "
          "zarr3/py-zarr %s (goal >= 1.00); zarr-lz4/py-zarr-lz4 %s, zarr3-lz4/py-zarr-lz4 %s "
          "(goal >= 1.30)\n",
          size.c_str(), goal_text(s, "raw").c_str(), versus_dd_text(s, "zarr").c_str(),
          versus_dd_text(s, "zarr3").c_str(), goal_text(s, "zarr").c_str(),
          goal_text(s, "zarr3").c_str(), goal_text(s, "zarr-lz4").c_str(),
          goal_text(s, "zarr3-lz4").c_str());
    }
  }

  // An uncompressed zarr's lossless paced rate against dd, which writes the same bytes.
  static std::string versus_dd_text(const SizeResult& s, const std::string& format) {
    const double dd = s.baseline_mb_per_s("dd");
    for (const auto& row : rows_of(s))
      if (row.run && row.format == format && row.mode == "paced" && row.run->lossless() && dd > 0)
        return fmt("%.2f", row.run->mb_per_s() / dd);
    return "n/a";
  }

  static std::string goal_text(const SizeResult& s, const std::string& format) {
    for (const auto& row : rows_of(s))
      if (row.run && row.format == format && row.mode == "paced" && row.run->lossless() &&
          row.versus > 0)
        return fmt("%.2f", row.versus);
    return "n/a";
  }

  static json run_json(const Row& row, const SizeResult& s) {
    const SaveRun& r = *row.run;
    return {{"size", row.size},
            {"width", s.side},
            {"height", s.side},
            {"format", row.format},
            {"mode", r.mode},
            {"rate_fps", r.rate_fps},
            {"frames", r.frames},
            {"frames_written", r.written},
            {"frames_missed", r.missed},
            {"lossless", r.mode == "paced" && r.lossless()},
            {"bytes", r.bytes},
            {"bytes_on_disk", r.disk_bytes},
            {"files", r.files},
            {"files_per_s_at_1khz",
             r.ok() && r.written ? json(r.files_per_s_at_1khz()) : json(nullptr)},
            {"seconds", r.seconds},
            {"fbsave_elapsed_s", r.fbsave_elapsed},
            {"sync_s", r.sync_seconds},
            {"mb_per_s", r.ok() ? json(r.mb_per_s()) : json(nullptr)},
            {"baseline", row.versus_name},
            {"ratio", row.versus > 0 ? json(row.versus) : json(nullptr)},
            {"dd_mb_per_s", nullable(s.baseline_mb_per_s("dd"))},
            {"python_zarr_mb_per_s", nullable(s.baseline_mb_per_s("py-zarr-lz4"))},
            {"python_zarr_none_mb_per_s", nullable(s.baseline_mb_per_s("py-zarr"))},
            {"error", r.ok() ? json(nullptr) : json(r.error)}};
  }

  static json baseline_json(const Baseline& b, const SizeResult& s) {
    return {{"size", size_name(s)},
            {"name", b.name},
            {"frames", b.frames},
            {"bytes", b.bytes},
            {"bytes_on_disk", b.disk_bytes},
            {"seconds", b.seconds},
            {"mb_per_s", nullable(b.mb_per_s())},
            {"error", b.error.empty() ? json(nullptr) : json(b.error)}};
  }

  static json nullable(double v) { return v > 0 ? json(v) : json(nullptr); }

  void print_json() const {
    json rows = json::array(), baselines = json::array(), tries = json::array();
    for (const auto& s : results_) {
      for (const auto& row : rows_of(s))
        if (row.run) rows.push_back(run_json(row, s));
      for (const auto& b : s.baselines) baselines.push_back(baseline_json(b, s));
      for (const auto& f : s.formats)
        for (const auto& r : f.paced) tries.push_back(run_json(run_row(s, f, r), s));
    }
    const json out{{"dir", dir_},
                   {"filesystem", fs_.type},
                   {"device", fs_.source},
                   {"mount_point", fs_.mount_point},
                   {"cpus", std::thread::hardware_concurrency()},
                   {"load_average_start", load_start_},
                   {"load_average_end", load_end_},
                   {"baseline_runs", o_.baseline_runs},
                   {"chunk_frames", o_.chunk_frames},
                   {"slots",
                    [&] {
                      json j = json::object();
                      for (uint32_t side : o_.sizes) j[std::to_string(side)] = slots_for(side);
                      return j;
                    }()},
                   {"python", python_versions_},
                   {"rows", rows},
                   {"baselines", baselines},
                   {"paced_tries", tries}};
    std::printf("%s\n", out.dump(2).c_str());
  }

  const SaveBenchOptions& o_;
  std::string dir_;
  FsInfo fs_;
  std::string broker_exe_, fbsave_exe_;
  TempDir work_, runtime_;
  std::string python_versions_;
  std::string load_start_, load_end_;
  std::vector<SizeResult> results_;
};

}  // namespace

std::vector<std::string> save_format_names() {
  std::vector<std::string> out;
  for (const auto& f : format_specs()) out.push_back(f.name);
  return out;
}

uint32_t default_slots(uint32_t side) {
  const uint64_t frame = uint64_t(side) * side * 2;
  return uint32_t(std::clamp<uint64_t>((256u << 20) / frame, 64, 65536));
}

uint64_t default_frames(uint32_t side) {
  const double reference = 200.0 * 2048 * 2048;  // 200 frames of 2048x2048
  const double n = std::round(reference / (double(side) * side));
  return uint64_t(std::clamp(n, 16.0, 2000.0));
}

int run_save_bench(const SaveBenchOptions& options) {
  int status = 0;
  const int guarded = run_guarded([&] { status = SaveBench(options).run(); });
  return guarded != 0 ? guarded : status;
}

}  // namespace framebroker::fbbench
