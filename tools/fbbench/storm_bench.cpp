#include "fbbench/storm_bench.hpp"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "fbbench/disk.hpp"
#include "fbbench/process.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbbench {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kStream = "storm";

struct Tally {
  uint64_t kills = 0, stopped = 0, checks = 0, invariant_failures = 0;
  // Subscribers still listed for a process killed (and reaped) more than half a second before
  // a check: holds a crash did not give back.
  uint64_t dead_subscribers = 0;
  uint64_t early = 0;  // victims killed within 5 ms of their start (connecting, saying Hello)
};

struct Saver {
  uint64_t frames = 0, missed = 0;
  std::string error;
};

// What fbsave --json printed last: its summary.
Saver read_saver_summary(const std::string& log_path) {
  std::ifstream in(log_path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty() && line.front() == '{') last = line;
  if (last.empty()) return {0, 0, "fbsave printed no summary (see " + log_path + ")"};
  const auto j = nlohmann::json::parse(last);
  Saver s;
  s.frames = j.at("frames_written").get<uint64_t>();
  s.missed = j.at("frames_missed").get<uint64_t>();
  // Seqs between the first and the last that were neither written nor counted missed are missed.
  if (!j.at("first_seq").is_null() && !j.at("last_seq").is_null()) {
    const uint64_t span = j["last_seq"].get<uint64_t>() - j["first_seq"].get<uint64_t>() + 1;
    s.missed = std::max(s.missed, span - std::min(span, s.frames));
  }
  if (!j.at("error").is_null()) s.error = j["error"].get<std::string>();
  return s;
}

const StreamStatus* storm_stream(const Status& s) {
  for (const auto& st : s.streams)
    if (st.name == kStream) return &st;
  return nullptr;
}

// The slot invariant, and no subscriber of a process that died a while ago.
void check(Client& c, const std::map<pid_t, Clock::time_point>& dead, Tally& t) {
  const Status s = c.status();
  ++t.checks;
  const StreamStatus* st = storm_stream(s);
  if (!st || st->free + st->writing + st->ready != st->slots) ++t.invariant_failures;
  const auto now = Clock::now();
  for (const auto& sub : s.subscribers) {
    auto it = dead.find(sub.pid);
    if (it != dead.end() && now - it->second > 500ms) ++t.dead_subscribers;
  }
}

class Victims {
 public:
  Victims(std::string socket, std::mt19937_64& rng) : socket_(std::move(socket)), rng_(rng) {}
  ~Victims() { kill_all(); }

  pid_t spawn() {
    const pid_t pid =
        spawn_logged({self_exe(), "storm-victim", "--socket", socket_, "--stream", kStream,
                      "--mode", rng_() % 2 ? "every" : "latest", "--seed", std::to_string(rng_())},
                     "/dev/null");
    born_[pid] = Clock::now();
    dead_.erase(pid);  // a pid the kernel used again
    return pid;
  }
  void kill(pid_t pid) {
    ::kill(pid, SIGKILL);
    wait_status(pid);
    born_.erase(pid);
    dead_[pid] = Clock::now();
  }
  void kill_all() {
    for (auto it = born_.begin(); it != born_.end();) {
      ::kill(it->first, SIGKILL);
      wait_status(it->first);
      dead_[it->first] = Clock::now();
      it = born_.erase(it);
    }
  }
  Clock::time_point born(pid_t pid) const { return born_.at(pid); }
  const std::map<pid_t, Clock::time_point>& dead() const { return dead_; }

 private:
  std::string socket_;
  std::mt19937_64& rng_;
  std::map<pid_t, Clock::time_point> born_, dead_;
};

}  // namespace

int run_storm(const StormOptions& o) {
  return run_guarded([&] {
    const uint64_t seed = o.seed ? o.seed : uint64_t(Clock::now().time_since_epoch().count()) | 1;
    std::mt19937_64 rng(seed);
    const std::string broker_exe = find_broker(o.broker);
    const std::string fbsave_exe = find_tool(
        o.fbsave, {self_dir() + "/fbsave", self_dir() + "/../tools/fbsave"}, "fbsave", "--fbsave");
    TempDir runtime(make_temp_dir("/tmp", "fbbench-storm"));
    TempDir out(make_temp_dir(choose_dir(o.dir), "fbbench-storm"));
    const std::string side = std::to_string(o.side);
    BenchBroker broker(broker_exe, runtime.path, "storm",
                       std::string("sim:name=") + kStream + ",Width=" + side + ",Height=" + side +
                           ",PixelType=Mono16,Pattern=counter,FrameRate=" + fmt("%g", o.rate) +
                           ",slots=" + std::to_string(o.slots) + ",start=true");
    Client control = broker.connect();

    const std::string saver_log = runtime.path + "/fbsave.log";
    const pid_t saver = spawn_logged({fbsave_exe, kStream, "--socket", broker.socket(), "-o",
                                      out.path + "/storm.raw", "--format", "raw", "--json"},
                                     saver_log);
    // The saver is subscribed before the first victim.
    for (int i = 0;; ++i) {
      const Status s = control.status();
      if (std::any_of(s.subscribers.begin(), s.subscribers.end(),
                      [&](const SubscriberStatus& x) { return x.pid == saver; }))
        break;
      if (exit_status(saver))
        throw std::runtime_error("fbsave exited at start:\n" + read_text(saver_log));
      if (i == 1000)
        throw std::runtime_error("fbsave did not subscribe within 10 s:\n" + read_text(saver_log));
      std::this_thread::sleep_for(10ms);
    }

    Tally t;
    Victims victims(broker.socket(), rng);
    std::vector<pid_t> alive;
    for (int i = 0; i < o.victims; ++i) alive.push_back(victims.spawn());
    const auto t0 = Clock::now();
    uint64_t next_check = 100;
    while (t.kills < o.kills) {
      check_interrupted();
      // A random victim, after a random pause: it is connecting, subscribing, holding or
      // releasing, whichever it happens to be doing.
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
      pid_t& v = alive[rng() % alive.size()];
      if (std::uniform_real_distribution<double>(0, 1)(rng) < o.stop_share) {
        ::kill(v, SIGSTOP);
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 180));
        ::kill(v, SIGCONT);
        ++t.stopped;
      }
      if (Clock::now() - victims.born(v) < 5ms) ++t.early;
      victims.kill(v);
      ++t.kills;
      v = victims.spawn();
      // Now and then one is killed as soon as it starts: mid-connect, mid-Hello.
      if (rng() % 8 == 0 && t.kills < o.kills) {
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
        if (Clock::now() - victims.born(v) < 5ms) ++t.early;
        victims.kill(v);
        ++t.kills;
        v = victims.spawn();
      }
      if (t.kills >= next_check || t.kills >= o.kills) {
        check(control, victims.dead(), t);
        next_check = t.kills + 100;
      }
    }
    const double seconds = seconds_since(t0);
    victims.kill_all();
    std::this_thread::sleep_for(600ms);
    check(control, victims.dead(), t);

    // The saver's own view (what the broker counts for it), then its summary.
    uint64_t saver_missed_at_broker = 0;
    for (const auto& sub : control.status().subscribers)
      if (sub.pid == saver) saver_missed_at_broker = sub.missed;
    ::kill(saver, SIGINT);
    const int saver_status = wait_status(saver);
    const Saver saved = read_saver_summary(saver_log);
    if (saver_status != 0 || !saved.error.empty())
      throw std::runtime_error("fbsave failed (status " + std::to_string(saver_status) +
                               "): " + saved.error + "\n" + read_text(saver_log));

    // With the camera stopped and everyone gone, only the latest-frame cache may hold a slot.
    control.camera(kStream).stop();
    uint64_t leaked = 0, dropped = 0;
    for (int i = 0; i < 300; ++i) {
      const Status s = control.status();
      const StreamStatus* st = storm_stream(s);
      if (!st) throw std::runtime_error("the stream is gone");
      const uint32_t cache = st->latest_seq >= 0 ? 1 : 0;
      leaked = st->ready > cache ? st->ready - cache : 0;
      leaked += st->writing;
      dropped = st->dropped;
      if (leaked == 0) break;
      std::this_thread::sleep_for(10ms);
    }

    const uint64_t saver_missed = std::max(saved.missed, saver_missed_at_broker);
    const double kills_per_s = seconds > 0 ? double(t.kills) / seconds : 0;
    if (o.json) {
      std::cout << nlohmann::json{{"mode", "storm"},
                                  {"kills", t.kills},
                                  {"kills_per_s", kills_per_s},
                                  {"seconds", seconds},
                                  {"victims", o.victims},
                                  {"stopped", t.stopped},
                                  {"killed_within_5ms", t.early},
                                  {"checks", t.checks},
                                  {"invariant_failures", t.invariant_failures},
                                  {"dead_subscribers", t.dead_subscribers},
                                  {"leaked_slots", leaked},
                                  {"saver_frames", saved.frames},
                                  {"saver_missed", saver_missed},
                                  {"camera_dropped", dropped},
                                  {"rate", o.rate},
                                  {"size", o.side},
                                  {"slots", o.slots},
                                  {"seed", seed}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << "kills            " << t.kills << " in " << fmt("%.1f", seconds) << " s ("
                << fmt("%.0f", kills_per_s) << "/s; " << t.stopped << " stopped first, " << t.early
                << " within 5 ms of starting)\n"
                << "slot invariant   " << t.checks - t.invariant_failures << " of " << t.checks
                << " checks held\n"
                << "dead subscribers " << t.dead_subscribers
                << " (listed 0.5 s after their process was killed)\n"
                << "leaked slots     " << leaked << "\n"
                << "saver            " << saved.frames << " frames, " << saver_missed
                << " missed; camera dropped " << dropped << "\n"
                << "seed             " << seed << "\n";
    }
    if (leaked || saver_missed || t.invariant_failures || t.dead_subscribers)
      throw std::runtime_error("the storm found a fault (see above)");
  });
}

int run_storm_victim(const StormVictimOptions& o) {
  std::mt19937_64 rng(o.seed);
  for (;;) {
    try {
      ConnectOptions co;
      co.socket_path = o.socket;
      co.client_name = "storm-victim";
      Client c = Client::connect(co);
      for (int round = 1 + int(rng() % 4); round > 0; --round) {
        SubscribeOptions so;
        so.mode = o.mode == "latest" ? Mode::Latest : Mode::Every;
        so.max_hold = 1 + uint32_t(rng() % 6);
        so.window = 1 + uint32_t(rng() % 2);
        Subscription s = c.subscribe(o.stream, so);
        std::vector<Frame> held;
        for (int i = int(rng() % 40); i > 0; --i) {
          if (auto f = s.next(std::chrono::milliseconds(rng() % 20))) {
            volatile std::byte first = f->pixels()[0];  // read it, as a consumer would
            (void)first;
            held.push_back(std::move(*f));
          }
          while (held.size() > so.max_hold || (!held.empty() && rng() % 3 == 0))
            held.erase(held.begin() + long(rng() % held.size()));
        }
        // Some frames stay held as the subscription ends: the broker takes them back.
      }
    } catch (const std::exception&) {
      std::this_thread::sleep_for(10ms);  // e.g. refused at a limit: try again
    }
  }
}

}  // namespace framebroker::fbbench
