#include "fbbench/restart_bench.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/table.hpp"
#include "fbbench/process.hpp"

namespace framebroker::fbbench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStream = "bench";
constexpr auto kReconnectTimeout = std::chrono::seconds(30);

// One subscriber's report, in a file both processes map. Written by the subscriber only.
struct alignas(64) BoardSlot {
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> restarts{0};    // frames marked after_restart() so far
  std::atomic<uint64_t> restart_ns{0};  // CLOCK_MONOTONIC when the last of them came
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

uint64_t mono_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

// The board file, mapped shared; `create` sizes it for `slots` subscribers.
class Board {
 public:
  Board(const std::string& path, int slots, bool create)
      : bytes_(size_t(slots) * sizeof(BoardSlot)) {
    const int fd =
        ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + errno_text(errno));
    if (create && ::ftruncate(fd, off_t(bytes_)) != 0) {
      const int e = errno;
      ::close(fd);
      throw std::runtime_error("cannot size " + path + ": " + errno_text(e));
    }
    data_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (data_ == MAP_FAILED) throw std::runtime_error("cannot map " + path);
  }
  ~Board() { ::munmap(data_, bytes_); }
  Board(const Board&) = delete;
  Board& operator=(const Board&) = delete;
  // A zero-filled file holds valid atomics of 0 (lock-free, no constructor needed).
  BoardSlot& slot(int i) const { return static_cast<BoardSlot*>(data_)[i]; }

 private:
  size_t bytes_;
  void* data_;
};

// The inodes of the instance's shared-memory objects (segments; not its lock file).
std::set<ino_t> instance_segments(const std::string& instance) {
  const std::string prefix = "fb." + instance + ".", lock = prefix + "lock";
  std::set<ino_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev/shm", ec)) {
    const std::string name = e.path().filename().string();
    struct stat st {};
    if (name.rfind(prefix, 0) == 0 && name != lock && ::stat(e.path().c_str(), &st) == 0)
      out.insert(st.st_ino);
  }
  return out;
}

// True once something accepts connections on `path`.
bool accepting(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

class RestartRun {
 public:
  explicit RestartRun(const RestartOptions& o)
      : o_(o),
        exe_(find_broker(o.broker)),
        runtime_(make_temp_dir(fs::temp_directory_path().string(), "fbbench-restart")),
        instance_("fbbench-" + std::to_string(::getpid()) + "-restart"),
        socket_(runtime_.path + "/" + instance_ + ".sock"),
        board_path_(runtime_.path + "/board"),
        board_(board_path_, o.clients, true) {}

  ~RestartRun() {
    for (const pid_t c : clients_) stop_process(c);
    if (broker_ > 0) stop_process(broker_);
    ::unlink(("/dev/shm/fb." + instance_ + ".lock").c_str());
  }

  // Starts the broker; returns when it accepts connections (ms from spawn).
  double start_broker(const Clock::time_point t0) {
    const std::string camera = "sim:name=" + std::string(kStream) +
                               ",Width=" + std::to_string(o_.side) +
                               ",Height=" + std::to_string(o_.side) +
                               ",PixelType=Mono16,Pattern=empty,FrameRate=" + fmt("%.6g", o_.rate) +
                               ",slots=32,start=true";
    broker_ = spawn_logged({exe_, "--runtime-dir", runtime_.path, "--instance", instance_,
                            "--no-default-camera", "--camera", camera, "--log-level", "warn"},
                           runtime_.path + "/broker-" + std::to_string(++broker_starts_) + ".log");
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!accepting(socket_)) {
      check_interrupted();
      if (reaped(broker_)) {
        broker_ = -1;
        throw std::runtime_error(
            "framebrokerd exited at start: " +
            read_text(runtime_.path + "/broker-" + std::to_string(broker_starts_) + ".log"));
      }
      if (Clock::now() > deadline) throw std::runtime_error("framebrokerd did not start in 10 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return seconds_since(t0) * 1000;
  }

  void start_clients() {
    const std::string self = self_dir() + "/fbbench";
    for (int i = 0; i < o_.clients; ++i) {
      std::vector<std::string> argv{self,       "restart-client", "--socket", socket_,
                                    "--stream", kStream,          "--board",  board_path_,
                                    "--index",  std::to_string(i)};
      if (i % 2 == 1) argv.push_back("--latest");
      clients_.push_back(
          spawn_logged(argv, runtime_.path + "/client-" + std::to_string(i) + ".log"));
    }
    wait_clients([&](int i) { return board_.slot(i).frames.load() > 0; }, "a first frame");
  }

  struct Cycle {
    double all_ms = 0;              // restart -> every client has a new frame
    std::vector<double> client_ms;  // per client
    double broker_ready_ms = 0;     // restart -> the socket accepts (baseline)
    size_t stale = 0;               // segments of the killed broker still in /dev/shm
    size_t segments_before = 0;
  };

  Cycle cycle() {
    Cycle c;
    const auto before = instance_segments(instance_);
    c.segments_before = before.size();
    std::vector<uint64_t> restarts(size_t(o_.clients));
    for (int i = 0; i < o_.clients; ++i) restarts[size_t(i)] = board_.slot(i).restarts.load();
    ::kill(broker_, SIGKILL);
    wait_status(broker_);
    broker_ = -1;
    const auto t0 = Clock::now();
    const uint64_t t0_ns = mono_ns();
    c.broker_ready_ms = start_broker(t0);
    wait_clients([&](int i) { return board_.slot(i).restarts.load() > restarts[size_t(i)]; },
                 "a frame of the restarted broker");
    for (int i = 0; i < o_.clients; ++i) {
      const double ms = double(board_.slot(i).restart_ns.load() - t0_ns) / 1e6;
      c.client_ms.push_back(ms);
      c.all_ms = std::max(c.all_ms, ms);
    }
    const auto after = instance_segments(instance_);
    for (const ino_t ino : before) c.stale += after.count(ino);
    return c;
  }

 private:
  template <class Done>
  void wait_clients(Done done, const char* what) {
    const auto deadline = Clock::now() + kReconnectTimeout;
    for (int i = 0; i < o_.clients;) {
      check_interrupted();
      if (done(i)) {
        ++i;
        continue;
      }
      for (size_t k = 0; k < clients_.size(); ++k)
        if (const auto st = exit_status(clients_[k]))
          throw std::runtime_error(
              "subscriber " + std::to_string(k) + " exited (" + std::to_string(*st) +
              "): " + read_text(runtime_.path + "/client-" + std::to_string(k) + ".log"));
      if (Clock::now() > deadline)
        throw std::runtime_error("subscriber " + std::to_string(i) + " did not get " + what +
                                 " within 30 s");
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  const RestartOptions& o_;
  std::string exe_;
  TempDir runtime_;
  std::string instance_, socket_, board_path_;
  Board board_;
  pid_t broker_ = -1;
  int broker_starts_ = 0;
  std::vector<pid_t> clients_;
};

}  // namespace

int run_restart_client(const RestartClientOptions& o) {
  try {
    Board board(o.board, o.index + 1, false);
    BoardSlot& slot = board.slot(o.index);
    ConnectOptions co;
    co.socket_path = o.socket;
    co.client_name = "fbbench-restart-" + std::to_string(o.index);
    co.reconnect = true;
    Client client = Client::connect(co);
    SubscribeOptions so;
    so.mode = o.latest ? Mode::Latest : Mode::Every;
    auto sub = client.subscribe(o.stream, so);
    for (;;) {
      auto f = sub.next(std::chrono::milliseconds(200));
      if (!f) continue;
      if (f->after_restart()) {
        slot.restart_ns.store(mono_ns());
        slot.restarts.fetch_add(1);  // after the time: the parent reads it once this moves
      }
      slot.frames.fetch_add(1);
    }
  } catch (const std::exception& e) {
    std::cerr << "fbbench restart-client: " << e.what() << "\n";
    return 1;
  }
}

int run_restart_bench(const RestartOptions& o) {
  return run_guarded([&] {
    RestartRun run(o);
    std::cerr << "fbbench restart: " << o.cycles << " cycles, " << o.clients << " subscribers, "
              << o.side << "x" << o.side << " Mono16 at " << o.rate << " fps\n";
    run.start_broker(Clock::now());
    run.start_clients();
    std::vector<RestartRun::Cycle> cycles;
    for (int i = 0; i < o.cycles; ++i) {
      cycles.push_back(run.cycle());
      std::cerr << "  cycle " << i + 1 << ": every subscriber again after "
                << fmt("%.1f", cycles.back().all_ms) << " ms (broker accepting after "
                << fmt("%.1f", cycles.back().broker_ready_ms) << " ms), stale segments "
                << cycles.back().stale << "\n";
    }
    std::vector<double> all, ready, each;
    size_t stale = 0;
    for (const auto& c : cycles) {
      all.push_back(c.all_ms);
      ready.push_back(c.broker_ready_ms);
      each.insert(each.end(), c.client_ms.begin(), c.client_ms.end());
      stale += c.stale;
    }
    const double p50 = percentile(all, 0.5), max = percentile(all, 1.0);
    const double ready_p50 = percentile(ready, 0.5);
    if (o.json) {
      json per = json::array();
      for (const auto& c : cycles)
        per.push_back({{"reconnect_ms", c.all_ms},
                       {"client_ms", c.client_ms},
                       {"broker_ready_ms", c.broker_ready_ms},
                       {"segments_before", c.segments_before},
                       {"stale_segments_left", c.stale}});
      std::cout << json{{"cycles", o.cycles},
                        {"clients", o.clients},
                        {"rate", o.rate},
                        {"width", o.side},
                        {"height", o.side},
                        {"reconnect_p50_ms", p50},
                        {"reconnect_max_ms", max},
                        {"client_reconnect_p50_ms", percentile(each, 0.5)},
                        {"broker_ready_p50_ms", ready_p50},
                        {"broker_ready_max_ms", percentile(ready, 1.0)},
                        {"reconnect_over_broker_ready", ready_p50 > 0 ? p50 / ready_p50 : 0},
                        {"stale_segments_left", stale},
                        {"load_average", load_average()},
                        {"per_cycle", per}}
                       .dump(1)
                << "\n";
    } else {
      tools::Table t({"", "p50 ms", "max ms"});
      t.row(
          {"restart -> every subscriber has a frame", tools::fixed(p50, 1), tools::fixed(max, 1)});
      t.row({"restart -> one subscriber has a frame", tools::fixed(percentile(each, 0.5), 1),
             tools::fixed(percentile(each, 1.0), 1)});
      t.row({"restart -> broker accepts (baseline)", tools::fixed(ready_p50, 1),
             tools::fixed(percentile(ready, 1.0), 1)});
      t.print(std::cout);
      std::cout << "cycles " << o.cycles << ", subscribers " << o.clients
                << ", stale segments left " << stale << ", load " << load_average() << "\n";
    }
    if (stale > 0)
      throw std::runtime_error(std::to_string(stale) +
                               " shared-memory segments of a killed broker were left in /dev/shm");
  });
}

}  // namespace framebroker::fbbench
