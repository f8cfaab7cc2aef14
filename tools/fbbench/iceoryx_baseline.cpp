#include "fbbench/iceoryx_baseline.hpp"

#ifdef FB_HAVE_ICEORYX
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "fbbench/process.hpp"
#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_hoofs/platform/platform_settings.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/mepoo/chunk_settings.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#endif

namespace framebroker::fbbench {

#ifndef FB_HAVE_ICEORYX

bool iceoryx_built_in() {
  return false;
}

std::optional<LatencyRun> iceoryx_latency(const LatencyParams&, IceoryxWait, std::string& why_not) {
  why_not = "fbbench was built without iceoryx (install libiceoryx-posh-dev)";
  return std::nullopt;
}

#else

namespace {

using namespace std::chrono_literals;

// What the publisher writes into each chunk's user header; the payload itself is never touched.
struct Stamp {
  uint64_t seq;
  uint64_t mono_ns;
};

// How the children report back: a Board, then subscribers x frames latencies in µs (index =
// measured frame, < 0: not received).
struct Board {
  std::atomic<int> subscribed{0};     // subscribers connected to the publisher
  std::atomic<int> finished{0};       // subscribers that drained their queue and left
  std::atomic<bool> all_sent{false};  // the publisher is past its last frame
  std::atomic<bool> abort{false};     // everyone leaves now
  std::atomic<bool> failed{false};    // `error` holds the first child's failure
  char error[256] = {};
};

class ResultBoard {
 public:
  ResultBoard(int subscribers, uint64_t frames)
      : frames_(frames), shared_(uint64_t(subscribers) * frames) {
    std::fill_n(shared_.items(), uint64_t(subscribers) * frames, -1.0);
  }
  Board& board() { return shared_.header(); }
  double* samples(int subscriber) { return shared_.items() + uint64_t(subscriber) * frames_; }

 private:
  uint64_t frames_;
  SharedBoard<Board, double> shared_;
};

void report_failure(Board& board, const char* what) {
  if (!board.failed.exchange(true)) std::snprintf(board.error, sizeof board.error, "%s", what);
  board.abort = true;
}

bool must_leave(const Board& board) {
  return board.abort.load(std::memory_order_relaxed) || interrupted();
}

// Polls `done` every millisecond; throws `what` after `limit` or when the run is aborted.
void wait_for(const Board& board, const std::function<bool()>& done,
              std::chrono::milliseconds limit, const char* what) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (must_leave(board)) throw std::runtime_error("aborted");
    if (Clock::now() > deadline) throw std::runtime_error(what);
    std::this_thread::sleep_for(1ms);
  }
}

// The frame pool: one chunk holds the payload, the chunk header and the Stamp.
struct PoolPlan {
  uint64_t chunk_bytes = 0;
  uint64_t chunks = 0;
  uint64_t queue = 0;  // each subscriber's queue capacity
};

PoolPlan plan_pool(const LatencyParams& p) {
  if (p.frame_bytes == 0 || p.frame_bytes > (1ull << 31))
    throw std::runtime_error("iceoryx takes payloads of 1 B to 2 GiB");
  if (!(p.rate > 0)) throw std::runtime_error("the rate must be above 0");
  if (p.subscribers < 1 || uint32_t(p.subscribers) > iox::MAX_SUBSCRIBERS_PER_PUBLISHER)
    throw std::runtime_error("iceoryx takes 1 to " +
                             std::to_string(iox::MAX_SUBSCRIBERS_PER_PUBLISHER) + " subscribers");
  const auto settings = iox::mepoo::ChunkSettings::create(uint32_t(p.frame_bytes),
                                                          iox::CHUNK_DEFAULT_USER_PAYLOAD_ALIGNMENT,
                                                          sizeof(Stamp), alignof(Stamp));
  if (settings.has_error()) throw std::runtime_error("iceoryx cannot make chunks of this size");
  constexpr uint64_t kPoolBudget = 256ull << 20;
  constexpr uint64_t kMinQueue = 4;
  const uint64_t subs = uint64_t(p.subscribers);
  PoolPlan plan;
  plan.chunk_bytes = (uint64_t(settings.value().requiredChunkSize()) + 63) / 64 * 64;
  // In flight at most: every queue full, one chunk in each subscriber's hands, one being loaned.
  plan.chunks = std::max(std::clamp<uint64_t>(kPoolBudget / plan.chunk_bytes, 16, 1024),
                         subs * (kMinQueue + 1) + 1);
  plan.queue = std::min<uint64_t>(iox::MAX_SUBSCRIBER_QUEUE_CAPACITY, (plan.chunks - 1) / subs - 1);
  return plan;
}

std::string roudi_config(const PoolPlan& plan) {
  std::ostringstream toml;
  toml << "[general]\nversion = 1\n\n[[segment]]\n";
  const auto pool = [&](uint64_t size, uint64_t count) {
    toml << "\n[[segment.mempool]]\nsize = " << size << "\ncount = " << count << "\n";
  };
  for (const auto& [size, count] :
       {std::pair<uint64_t, uint64_t>{128, 1000}, {1024, 500}, {16384, 100}})
    if (size < plan.chunk_bytes) pool(size, count);
  pool(plan.chunk_bytes, plan.chunks);
  return toml.str();
}

std::string find_roudi() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::istringstream in(path);
    for (std::string dir; std::getline(in, dir, ':');)
      if (!dir.empty()) dirs.push_back(dir);
  }
  dirs.push_back("/usr/bin");
  for (const auto& dir : dirs)
    if (::access((dir + "/iox-roudi").c_str(), X_OK) == 0) return dir + "/iox-roudi";
  return {};
}

// RouDi's log on one line, without its colour codes.
std::string plain_text(const std::string& log) {
  std::string out;
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i] == '\x1b') {
      while (i < log.size() && log[i] != 'm') ++i;
    } else if (log[i] == '\n') {
      out += "; ";
    } else {
      out += log[i];
    }
  }
  return trim(out);
}

// An iox-roudi of our own, sized for the payload. Only one RouDi can run on a machine (it holds
// /tmp/iox-unique-roudi.lock), so a foreign one makes ours fail at start with its log as the why.
class RouDi {
 public:
  RouDi(const std::string& exe, const std::string& dir, const PoolPlan& plan)
      : log_(dir + "/roudi.log") {
    const std::string config = dir + "/roudi.toml";
    std::ofstream out(config);
    if (!(out << roudi_config(plan)).flush()) throw std::runtime_error("cannot write " + config);
    pid_ = spawn_logged({exe, "-c", config}, log_);
    try {
      wait_ready();
    } catch (...) {
      stop();
      throw;
    }
  }
  ~RouDi() { stop(); }
  RouDi(const RouDi&) = delete;
  RouDi& operator=(const RouDi&) = delete;

  // A runtime about to register: its socket and lock file in /tmp are ours to remove at the end.
  void add_client(const std::string& name) { clients_.push_back(name); }
  void clients_gone() { clients_gone_ = Clock::now(); }

  void stop() {
    if (pid_ > 0 && clients_gone_) wait_clients_dropped();
    if (pid_ > 0) stop_process(pid_);
    pid_ = -1;
    remove_leftovers();
  }

 private:
  std::string log_text() const {
    std::ifstream in(log_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  void wait_ready() {
    const auto deadline = Clock::now() + 10s;
    while (log_text().find("RouDi is ready for clients") == std::string::npos) {
      if (reaped(pid_)) {
        pid_ = -1;
        const std::string log = plain_text(log_text());
        if (log.find("Could not acquire lock") != std::string::npos)
          throw std::runtime_error(
              "another iox-roudi is running (it holds /tmp/iox-unique-roudi.lock); stop it first");
        throw std::runtime_error("iox-roudi exited at start: " + log);
      }
      if (Clock::now() > deadline) throw std::runtime_error("iox-roudi not ready within 10 s");
      std::this_thread::sleep_for(10ms);
    }
  }

  // RouDi aborts, leaving its shared memory behind, when it is stopped while it still lists a
  // client that died, and ours leave with _exit, without a goodbye. It drops each one once its
  // keep-alive is PROCESS_KEEP_ALIVE_TIMEOUT (1.5 s) old and logs "Application NAME not
  // responding"; the deadline covers a RouDi that words it differently.
  void wait_clients_dropped() {
    const auto deadline =
        *clients_gone_ + 3s +
        std::chrono::nanoseconds(iox::runtime::PROCESS_KEEP_ALIVE_TIMEOUT.toNanoseconds());
    const auto dropped = [&] {
      const std::string text = log_text();
      return std::all_of(clients_.begin(), clients_.end(), [&](const std::string& name) {
        return text.find("Application " + name + " not responding") != std::string::npos;
      });
    };
    while (!dropped() && Clock::now() < deadline) {
      if (reaped(pid_)) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  // What our clients and a RouDi that did not shut down cleanly (Ctrl-C reaches it too) leave.
  // The segments it created are named in its log ("... in the shared memory [NAME]"); having
  // created them, it held the machine's RouDi lock, so its socket and lock files are ours too.
  void remove_leftovers() const {
    const std::string text = log_text(), marker = "shared memory [";
    bool created = false;
    for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at)) {
      at += marker.size();
      const size_t end = text.find(']', at);
      if (end == std::string::npos) break;
      ::shm_unlink(("/" + text.substr(at, end - at)).c_str());
      created = true;
    }
    std::vector<std::string> channels = clients_;
    if (created) {
      channels.push_back(iox::roudi::IPC_CHANNEL_ROUDI_NAME);
      const std::string lock = iox::roudi::ROUDI_LOCK_NAME;
      ::unlink((iox::platform::IOX_LOCK_FILE_PATH_PREFIX + lock + ".lock").c_str());
    }
    for (const auto& name : channels) {
      ::unlink((iox::platform::IOX_UDS_SOCKET_PATH_PREFIX + name).c_str());
      ::unlink((iox::platform::IOX_LOCK_FILE_PATH_PREFIX + name + ".lock").c_str());
    }
  }

  std::string log_;
  pid_t pid_ = -1;
  std::vector<std::string> clients_;
  std::optional<Clock::time_point> clients_gone_;
};

void init_runtime(const std::string& name) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                           iox::log::LogLevelOutput::kHideLogLevel);
  iox::runtime::PoshRuntime::initRuntime(
      iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
}

const iox::capro::ServiceDescription kService{"fbbench", "latency", "frame"};

// The next tick of the absolute schedule that is still ahead: a late frame does not make the
// following ones burst to catch up.
uint64_t next_tick(uint64_t tick, uint64_t period_ns) {
  tick += period_ns;
  const uint64_t now = now_ns();
  if (tick <= now) tick += ((now - tick) / period_ns + 1) * period_ns;
  return tick;
}

void sleep_until_ns(uint64_t t) {
  const timespec ts{time_t(t / 1'000'000'000), long(t % 1'000'000'000)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

void run_publisher(const LatencyParams& p, Board& board, const std::string& name) {
  pin_this_thread(producer_cpu(p.pin));
  init_runtime(name);
  iox::popo::UntypedPublisher publisher(kService);
  wait_for(
      board, [&] { return board.subscribed.load() == p.subscribers && publisher.hasSubscribers(); },
      10s, "the iceoryx subscribers did not connect within 10 s");

  const auto period_ns = uint64_t(1e9 / p.rate);
  uint64_t tick = now_ns();
  for (uint64_t seq = 0; seq < p.warmup + p.frames && !must_leave(board); ++seq) {
    sleep_until_ns(tick);
    auto loaned = publisher.loan(uint32_t(p.frame_bytes), iox::CHUNK_DEFAULT_USER_PAYLOAD_ALIGNMENT,
                                 sizeof(Stamp), alignof(Stamp));
    // A failed loan (no chunk free) is a frame no subscriber gets: it counts as lost.
    if (!loaned.has_error()) {
      void* payload = loaned.value();
      auto* stamp =
          static_cast<Stamp*>(iox::mepoo::ChunkHeader::fromUserPayload(payload)->userHeader());
      *stamp = Stamp{seq, now_ns()};
      publisher.publish(payload);
    }
    tick = next_tick(tick, period_ns);
  }
  board.all_sent.store(true, std::memory_order_release);
  wait_for(
      board, [&] { return board.finished.load() == p.subscribers; }, 10s,
      "the iceoryx subscribers did not finish within 10 s");
}

// WaitSet: sleeps on a WaitSet until data comes. BusyPoll: calls take() in a loop, never sleeping
// (a core given to the subscriber).
void run_subscriber(const LatencyParams& p, IceoryxWait wait, const PoolPlan& plan, Board& board,
                    double* samples, const std::string& name) {
  pin_this_thread(consumer_cpu(p.pin));
  init_runtime(name);
  iox::popo::SubscriberOptions options;
  options.queueCapacity = plan.queue;
  iox::popo::UntypedSubscriber subscriber(kService, options);
  std::optional<iox::popo::WaitSet<1> > waitset;
  if (wait == IceoryxWait::WaitSet) {
    waitset.emplace();
    if (waitset->attachState(subscriber, iox::popo::SubscriberState::HAS_DATA).has_error())
      throw std::runtime_error("cannot attach the iceoryx subscriber to a WaitSet");
  }
  wait_for(
      board, [&] { return subscriber.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; },
      10s, "an iceoryx subscriber did not find the publisher within 10 s");
  board.subscribed.fetch_add(1);

  const auto drain = [&] {
    for (auto taken = subscriber.take(); !taken.has_error(); taken = subscriber.take()) {
      const uint64_t now = now_ns();
      const void* payload = taken.value();
      const auto* stamp = static_cast<const Stamp*>(
          iox::mepoo::ChunkHeader::fromUserPayload(payload)->userHeader());
      if (stamp->seq >= p.warmup)
        samples[stamp->seq - p.warmup] = double(now - stamp->mono_ns) / 1000.0;
      subscriber.release(payload);
    }
  };
  for (;;) {
    // Everything published before all_sent is already in our queue, so one more drain ends it.
    const bool last = board.all_sent.load(std::memory_order_acquire) || must_leave(board);
    drain();
    if (last) break;
    if (waitset) waitset->timedWait(iox::units::Duration::fromMilliseconds(100));
  }
  board.finished.fetch_add(1);
}

// The forked children of one run; whatever still runs at destruction is asked to leave, then
// killed, and RouDi learns when the last one ended.
class Children {
 public:
  Children(RouDi& roudi, Board& board) : roudi_(roudi), board_(board) {}
  ~Children() {
    board_.abort = true;
    wait_all(Clock::now() + 2s);
    for (const pid_t pid : pids_) ::kill(pid, SIGKILL);
    reap(true);
    roudi_.clients_gone();
  }
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;

  // Forks `body`, which gets the name of the iceoryx runtime it is to start. The child owns that
  // runtime; the caller must not have one, since it goes on with other benchmarks.
  void start(const std::string& role, const std::function<void(const std::string&)>& body) {
    const std::string name = "fbbench-" + std::to_string(::getpid()) + "-" + role;
    roudi_.add_client(name);
    pids_.push_back(
        fork_child([&] { body(name); }, [&](const char* what) { report_failure(board_, what); }));
  }

  // Until every child has exited or `deadline`; a failing child or Ctrl-C makes the rest leave.
  void wait_all(Clock::time_point deadline) {
    while (!pids_.empty() && Clock::now() < deadline) {
      if (interrupted()) board_.abort = true;
      reap(false);
      if (!pids_.empty()) std::this_thread::sleep_for(10ms);
    }
  }
  bool running() const { return !pids_.empty(); }

 private:
  // Forgets the children that have exited (with `block`, every one, once it has), noting a failure.
  void reap(bool block) {
    for (auto it = pids_.begin(); it != pids_.end();) {
      const std::optional<int> status = block ? wait_status(*it) : exit_status(*it);
      if (!status) {
        ++it;
        continue;
      }
      if (*status > 0) {
        const std::string what =
            *status > 128 ? "an iceoryx child died of signal " + std::to_string(*status - 128)
                          : "an iceoryx child failed";
        report_failure(board_, what.c_str());
      }
      it = pids_.erase(it);
    }
  }

  RouDi& roudi_;
  Board& board_;
  std::vector<pid_t> pids_;
};

LatencyRun pooled_result(const LatencyParams& p, ResultBoard& shared) {
  std::vector<double> pooled;
  pooled.reserve(size_t(p.subscribers) * p.frames);
  LatencyRun run;
  for (uint64_t f = 0; f < p.frames; ++f) {
    bool missed = false;
    for (int s = 0; s < p.subscribers; ++s) {
      const double us = shared.samples(s)[f];
      if (us < 0)
        missed = true;
      else
        pooled.push_back(us);
    }
    run.lost += missed;
  }
  run.receive = summarize(std::move(pooled));
  return run;
}

LatencyRun run_latency(const std::string& roudi_exe, const LatencyParams& p, IceoryxWait wait) {
  const PoolPlan plan = plan_pool(p);
  const char* tmp = std::getenv("TMPDIR");
  TempDir dir(make_temp_dir(tmp && *tmp ? tmp : "/tmp", "fbbench-iceoryx"));
  RouDi roudi(roudi_exe, dir.path, plan);
  ResultBoard shared(p.subscribers, p.frames);
  Board& board = shared.board();
  {
    Children children(roudi, board);
    children.start("pub", [&](const std::string& name) { run_publisher(p, board, name); });
    for (int i = 0; i < p.subscribers; ++i)
      children.start("sub" + std::to_string(i), [&, i](const std::string& name) {
        run_subscriber(p, wait, plan, board, shared.samples(i), name);
      });
    const double seconds = double(p.warmup + p.frames) / p.rate + 30;
    children.wait_all(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(seconds)));
    if (children.running()) report_failure(board, "the iceoryx run timed out");
  }
  roudi.stop();
  check_interrupted();
  if (board.failed) throw std::runtime_error(board.error);
  return pooled_result(p, shared);
}

}  // namespace

bool iceoryx_built_in() {
  return true;
}

std::optional<LatencyRun> iceoryx_latency(const LatencyParams& p, IceoryxWait wait,
                                          std::string& why_not) {
  const std::string roudi_exe = find_roudi();
  if (roudi_exe.empty()) {
    why_not = "iox-roudi not found in PATH or /usr/bin (install the iceoryx package)";
    return std::nullopt;
  }
  try {
    return run_latency(roudi_exe, p, wait);
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    why_not = e.what();
    return std::nullopt;
  }
}

#endif

}  // namespace framebroker::fbbench
