// The sender of both baselines is a forked process, as a camera's producer would be. Everything it
// uses is built before fork(), since the child of a threaded process should not allocate, and it
// leaves with _exit(), so that none of the caller's exit handlers or destructors run twice.
#include "fbbench/socket_baselines.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fbbench/process.hpp"

namespace framebroker::fbbench {

namespace {

constexpr uint64_t kSecond = 1'000'000'000;
std::atomic<uint64_t> pixel_sink{0};  // read_all's sums end here, so that they are computed

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("socket baselines: ") + what);
}

timespec to_timespec(uint64_t ns) {
  return {time_t(ns / kSecond), long(ns % kSecond)};
}

// Moves all of iov[0, n) through a stream socket, over as many partial transfers as it takes (the
// array is used up). False when the peer closed before the first byte.
bool transfer(int fd, iovec* iov, size_t n, bool out) {
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = n;
  bool started = false;
  while (m.msg_iovlen > 0) {
    const ssize_t r = out ? ::sendmsg(fd, &m, MSG_NOSIGNAL) : ::recvmsg(fd, &m, MSG_WAITALL);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail_errno(out ? "send" : "recv");
    if (r == 0) {
      if (!started) return false;
      throw std::runtime_error("the peer closed its socket in the middle of a message");
    }
    started = true;
    for (size_t left = size_t(r); left > 0;) {
      const size_t step = std::min(left, m.msg_iov->iov_len);
      m.msg_iov->iov_base = static_cast<char*>(m.msg_iov->iov_base) + step;
      m.msg_iov->iov_len -= step;
      left -= step;
      if (m.msg_iov->iov_len == 0) ++m.msg_iov, --m.msg_iovlen;
    }
  }
  return true;
}

void send_all(int fd, const void* data, size_t bytes) {
  iovec v{const_cast<void*>(data), bytes};
  transfer(fd, &v, 1, true);
}

std::unique_ptr<uint8_t[]> make_buffer(size_t bytes) {
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(bytes);
  prefault(buf.get(), bytes);
  return buf;
}

struct Fds {
  std::vector<int> fds;
  ~Fds() { close_all(); }
  void close_all() {
    for (int& fd : fds)
      if (fd >= 0) ::close(std::exchange(fd, -1));
  }
};

// The page the sender reports through; the round-trip samples follow it.
struct Control {
  std::atomic<int> ready{0};  // subscriber threads that are set up (or have given up)
  uint64_t t0_ns = 0;         // a free run's first send
  uint64_t sent = 0;          // a free run's frames
  uint64_t round_trips = 0;
  char error[256] = {};  // why the sender failed
};
static_assert(std::atomic<int>::is_always_lock_free, "Control is shared between processes");

// One subscriber's account of a run; got() is what a subscriber does with each frame.
struct Tally {
  uint64_t warmup = 0;  // the first frames are not counted
  bool timed = false;   // latency runs keep each counted frame's one-way time
  bool read_all = false;
  std::vector<double> latency_us;
  uint64_t frames = 0;   // counted frames
  uint64_t done_ns = 0;  // when it was done with its last frame

  void got(uint64_t seq, uint64_t t_ns, const uint8_t* pixels, size_t bytes) {
    const uint64_t now = now_ns();
    if (seq >= warmup) {
      ++frames;
      if (timed) latency_us.push_back(double(now - t_ns) / 1000.0);
    }
    if (read_all) pixel_sink.fetch_add(sum_pixels(pixels, bytes), std::memory_order_relaxed);
    done_ns = read_all ? now_ns() : now;
  }
};

using Ready = std::function<void()>;
using SenderLoop = std::function<void(const std::vector<int>& fds)>;
using Serve = std::function<void(int fd, Tally& tally, const Ready& ready)>;

// In the forked sender: once every subscriber thread is set up, runs the baseline's loop.
void sender_main(const Control& ctl, int subscribers, Pin pin, const std::vector<int>& fds,
                 const SenderLoop& send) {
  pin_this_thread(producer_cpu(pin));
  const uint64_t give_up = now_ns() + 10 * kSecond;
  while (ctl.ready.load() < subscribers) {
    if (now_ns() > give_up) throw std::runtime_error("the subscriber threads did not start");
    const timespec pause{0, 100'000};
    ::nanosleep(&pause, nullptr);
  }
  send(fds);
}

// One run of a baseline: the sender's report page, each subscriber's tally, and run(), which forks
// the sender and serves each subscriber on its own thread.
class Bench {
 public:
  Bench(int subscribers, uint64_t warmup, uint64_t timed_frames, bool read_all)
      : page_(timed_frames),
        ctl_(page_.header()),
        rt_us_(page_.items()),
        rt_cap_(timed_frames),
        warmup_(warmup),
        tallies_(size_t(subscribers)) {
    for (Tally& t : tallies_) {
      t.warmup = warmup;
      t.timed = timed_frames > 0;
      t.read_all = read_all;
      t.latency_us.reserve(timed_frames);
    }
  }

  int subscribers() const { return int(tallies_.size()); }
  Control& control() { return ctl_; }

  // Sender side: commit -> the last ack of frame `seq` is in.
  void round_trip(uint64_t seq, uint64_t t_ns) {
    if (seq >= warmup_ && ctl_.round_trips < rt_cap_)
      rt_us_[ctl_.round_trips++] = double(now_ns() - t_ns) / 1000.0;
  }

  void run(const char* name, Pin pin, int socket_buffer, const SenderLoop& send,
           const Serve& serve) {
    const size_t n = tallies_.size();
    Fds subs, senders;  // the two ends of each subscriber's socketpair
    subs.fds.reserve(n);
    senders.fds.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) fail_errno("socketpair");
      subs.fds.push_back(sv[0]);
      senders.fds.push_back(sv[1]);
      for (int fd : sv)
        for (int opt : {SO_SNDBUF, SO_RCVBUF})
          if (socket_buffer > 0 &&
              ::setsockopt(fd, SOL_SOCKET, opt, &socket_buffer, sizeof socket_buffer) != 0)
            fail_errno("setsockopt");
    }

    const pid_t pid = fork_child(
        [&] {
          subs.close_all();
          sender_main(ctl_, int(n), pin, senders.fds, send);
        },
        [&](const char* what) { std::snprintf(ctl_.error, sizeof ctl_.error, "%s", what); });
    senders.close_all();  // then a subscriber reads EOF when the sender exits, however it ends

    std::vector<std::string> errors(n);
    const auto subscriber = [&](size_t i) {
      bool counted = false;
      const Ready ready = [&] {
        if (!std::exchange(counted, true)) ctl_.ready.fetch_add(1);
      };
      try {
        pin_this_thread(consumer_cpu(pin));
        serve(subs.fds[i], tallies_[i], ready);
      } catch (const std::exception& e) {
        errors[i] = e.what();
        // Closing (not just shutting down) frees what is queued, so a sender blocked in send()
        // wakes up to EPIPE.
        ::close(std::exchange(subs.fds[i], -1));
      }
      ready();
    };
    std::vector<std::thread> threads;
    try {
      for (size_t i = 0; i < n; ++i) threads.emplace_back(subscriber, i);
    } catch (...) {
      ::kill(pid, SIGKILL);
      for (auto& t : threads) t.join();
      wait_status(pid);
      throw;
    }
    for (auto& t : threads) t.join();
    const int status = wait_status(pid);

    std::string why;
    for (size_t i = 0; i < n; ++i)
      if (!errors[i].empty()) why += "; subscriber " + std::to_string(i) + ": " + errors[i];
    if (status > 128)
      why += "; the sender died of signal " + std::to_string(status - 128);
    else if (status > 0)
      why += std::string("; sender: ") + ctl_.error;
    if (!why.empty()) throw std::runtime_error(name + (" baseline failed:" + why.substr(1)));
  }

  LatencyRun latency(uint64_t frames) const {
    std::vector<double> all;
    uint64_t least = frames;
    for (const Tally& t : tallies_) {
      all.insert(all.end(), t.latency_us.begin(), t.latency_us.end());
      least = std::min(least, t.frames);
    }
    LatencyRun r;
    r.receive = summarize(std::move(all));
    r.round_trip = summarize(std::vector<double>(rt_us_, rt_us_ + ctl_.round_trips));
    r.lost = frames - least;
    return r;
  }

  ThroughputRun throughput() const {
    // Every subscriber gets every frame (the sender waits for its acks), so each one's count is
    // its own deliveries.
    ThroughputRun r;
    uint64_t done = 0;
    for (const Tally& t : tallies_) {
      r.delivered += t.frames;
      r.delivered_by_subscriber.push_back(t.frames);
      r.missed_by_subscriber.push_back(0);
      done = std::max(done, t.done_ns);
    }
    r.published = ctl_.sent;
    r.frames = tallies_.front().frames;
    r.seconds = done > ctl_.t0_ns ? double(done - ctl_.t0_ns) / double(kSecond) : 0;
    return r;
  }

 private:
  SharedBoard<Control, double> page_;
  Control& ctl_;
  double* rt_us_;
  uint64_t rt_cap_;
  uint64_t warmup_;
  std::vector<Tally> tallies_;
};

// The floor's notification and its ack alike.
struct Msg {
  uint32_t slot = 0, pad = 0;
  uint64_t seq = 0, t_ns = 0, pad2 = 0;
};
static_assert(sizeof(Msg) == 32);

// Cuts what a stream socket delivers into Msgs: one recv takes all that has arrived, and a message
// split between two reads is kept for the next.
class Inbox {
 public:
  static constexpr size_t kMax = 64;

  // Calls each(msg) for every whole message; false at EOF.
  template <class Each>
  bool read(int fd, int flags, Each&& each) {
    const ssize_t got = ::recv(fd, buf_ + have_, sizeof buf_ - have_, flags);
    if (got == 0) return false;
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) return true;
      fail_errno("recv");
    }
    have_ += size_t(got);
    size_t at = 0;
    for (; have_ - at >= sizeof(Msg); at += sizeof(Msg)) {
      Msg m;
      std::memcpy(&m, buf_ + at, sizeof m);
      each(m);
    }
    have_ -= at;
    std::memmove(buf_, buf_ + at, have_);
    return true;
  }

 private:
  unsigned char buf_[kMax * sizeof(Msg)];
  size_t have_ = 0;
};

// A baseline is a sender side (start, wait_until, send, finish; in the forked process) and a
// subscriber side (serve; on a thread of the caller).
//
// The floor: slots in one shared segment. The sender passes a slot's index to every subscriber
// and reuses the slot once all have acked it.
class Floor {
 public:
  static constexpr const char* kName = "floor";
  static constexpr int kSocketBuffer = 0;  // the default holds plenty of 32-byte messages

  Floor(uint64_t frame_bytes, Bench& bench)
      : bytes_(frame_bytes),
        slots_(std::clamp<uint64_t>((uint64_t(256) << 20) / frame_bytes, 4, 16)),
        segment_(slots_ * frame_bytes),
        bench_(bench),
        pending_(slots_),
        seq_(slots_),
        t_ns_(slots_),
        polls_(size_t(bench.subscribers())),
        inboxes_(size_t(bench.subscribers())) {}

  void start(const std::vector<int>& fds) {
    for (size_t i = 0; i < fds.size(); ++i) polls_[i] = {fds[i], POLLIN, 0};
  }

  void wait_until(uint64_t due) {
    do wait_acks(due);
    while (now_ns() < due);
  }

  // Frame `seq` goes in its slot once the slot's acks are in, waiting for them until `until` at
  // most; a frame that finds its slot still in use is lost (false).
  bool send(uint64_t seq, uint64_t until) {
    const size_t slot = seq % slots_;
    while (pending_[slot] > 0 && now_ns() < until) wait_acks(until);
    if (pending_[slot] > 0) return false;
    const Msg m{uint32_t(slot), 0, seq, now_ns(), 0};
    seq_[slot] = seq;
    t_ns_[slot] = m.t_ns;
    pending_[slot] = int(polls_.size());
    ++busy_;
    for (const pollfd& p : polls_) send_all(p.fd, &m, sizeof m);
    return true;
  }

  void finish() {
    const uint64_t give_up = now_ns() + 10 * kSecond;
    while (busy_ > 0) {
      if (now_ns() >= give_up) throw std::runtime_error("acks missing 10 s after the last frame");
      wait_acks(give_up);
    }
  }

  void serve(int fd, Tally& t, const Ready& ready) const {
    ready();
    Inbox in;
    Msg acks[Inbox::kMax];
    size_t n = 0;
    const auto flush = [&] {
      if (n > 0) send_all(fd, acks, n * sizeof(Msg));
      n = 0;
    };
    const auto each = [&](const Msg& m) {
      if (m.slot >= slots_) throw std::runtime_error("slot index out of range");
      t.got(m.seq, m.t_ns, segment_.data() + m.slot * bytes_, bytes_);
      acks[n++] = Msg{m.slot, 0, m.seq, 0, 0};
      if (t.read_all) flush();  // the slot is free again as soon as it has been read
    };
    while (in.read(fd, 0, each)) flush();
  }

 private:
  // Reads the acks that come before `deadline`, and at least those already there.
  void wait_acks(uint64_t deadline) {
    const uint64_t now = now_ns();
    const timespec left = to_timespec(deadline > now ? deadline - now : 0);
    const int ready = ::ppoll(polls_.data(), polls_.size(), &left, nullptr);
    if (ready < 0 && errno != EINTR) fail_errno("ppoll");
    for (size_t i = 0; ready > 0 && i < polls_.size(); ++i) {
      if (polls_[i].revents == 0) continue;
      if (!inboxes_[i].read(polls_[i].fd, MSG_DONTWAIT, [&](const Msg& a) { ack(a); }))
        throw std::runtime_error("subscriber " + std::to_string(i) + " hung up");
    }
  }

  void ack(const Msg& a) {
    if (a.slot >= slots_ || pending_[a.slot] == 0 || seq_[a.slot] != a.seq)
      throw std::runtime_error("an ack for a frame that is not out");
    if (--pending_[a.slot] > 0) return;
    --busy_;
    bench_.round_trip(a.seq, t_ns_[a.slot]);
  }

  uint64_t bytes_;
  uint64_t slots_;
  SharedMemory segment_;
  Bench& bench_;
  std::vector<int> pending_;  // acks a slot still waits for
  std::vector<uint64_t> seq_, t_ns_;
  size_t busy_ = 0;  // slots with acks pending
  std::vector<pollfd> polls_;
  std::vector<Inbox> inboxes_;
};

struct Header {
  uint64_t seq, t_ns, bytes, pad;
};
static_assert(sizeof(Header) == 32);

// The naive broker: each frame goes whole through every subscriber's socket, one after another.
class Copy {
 public:
  static constexpr const char* kName = "copy";
  // A naive broker would at least enlarge its socket buffers; the kernel caps the request at
  // net.core.wmem_max / rmem_max.
  static constexpr int kSocketBuffer = 4 << 20;

  Copy(uint64_t frame_bytes, Bench&) : bytes_(frame_bytes), frame_(make_buffer(frame_bytes)) {}

  void start(const std::vector<int>& fds) { fds_ = &fds; }

  void wait_until(uint64_t due) {
    const timespec t = to_timespec(due);
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nullptr) == EINTR) {
    }
  }

  bool send(uint64_t seq, uint64_t /*until*/) {
    Header h{seq, now_ns(), bytes_, 0};
    for (int fd : *fds_) {
      iovec v[2] = {{&h, sizeof h}, {frame_.get(), bytes_}};
      transfer(fd, v, 2, true);
    }
    return true;
  }

  void finish() {}

  void serve(int fd, Tally& t, const Ready& ready) const {
    const auto buf = make_buffer(bytes_);
    ready();
    for (Header h;;) {
      iovec v[2] = {{&h, sizeof h}, {buf.get(), bytes_}};
      if (!transfer(fd, v, 2, false)) return;
      if (h.bytes != bytes_) throw std::runtime_error("a frame of the wrong size");
      t.got(h.seq, h.t_ns, buf.get(), bytes_);
    }
  }

 private:
  uint64_t bytes_;
  std::unique_ptr<uint8_t[]> frame_;
  const std::vector<int>* fds_ = nullptr;
};

template <class Baseline, class Loop>
void run(Bench& bench, Baseline& base, Pin pin, Loop&& loop) {
  bench.run(
      Baseline::kName, pin, Baseline::kSocketBuffer,
      [&](const std::vector<int>& fds) {
        base.start(fds);
        loop();
        base.finish();
      },
      [&](int fd, Tally& t, const Ready& ready) { base.serve(fd, t, ready); });
}

// Paced like a camera: frame k is due at start + k / rate. A sender that falls behind skips the
// ticks that have wholly passed instead of bursting to catch up.
template <class Baseline>
LatencyRun latency_run(const LatencyParams& p) {
  require(p.frame_bytes > 0 && p.subscribers > 0 && p.rate > 0,
          "a latency run needs frame_bytes, subscribers and rate > 0");
  Bench bench(p.subscribers, p.warmup, p.frames, false);
  Baseline base(p.frame_bytes, bench);
  run(bench, base, p.pin, [&] {
    const uint64_t period = std::max<uint64_t>(1, uint64_t(double(kSecond) / p.rate));
    const uint64_t start = now_ns();
    for (uint64_t seq = 0, tick = 0; seq < p.warmup + p.frames; ++seq, ++tick) {
      const uint64_t now = now_ns();
      if (now >= start + (tick + 1) * period) tick = (now - start) / period;
      base.wait_until(start + tick * period);
      base.send(seq, 0);
    }
  });
  return bench.latency(p.frames);
}

template <class Baseline>
ThroughputRun throughput_run(const ThroughputParams& p) {
  require(p.frame_bytes > 0 && p.subscribers > 0 && p.seconds > 0,
          "a throughput run needs frame_bytes, subscribers and seconds > 0");
  Bench bench(p.subscribers, 0, 0, p.read_all);
  Baseline base(p.frame_bytes, bench);
  run(bench, base, p.pin, [&] {
    Control& ctl = bench.control();
    ctl.t0_ns = now_ns();
    const uint64_t end = ctl.t0_ns + uint64_t(p.seconds * double(kSecond));
    for (uint64_t seq = 0; now_ns() < end; ++seq) ctl.sent += base.send(seq, end);
  });
  return bench.throughput();
}

}  // namespace

LatencyRun floor_latency(const LatencyParams& p) {
  return latency_run<Floor>(p);
}

LatencyRun copy_latency(const LatencyParams& p) {
  return latency_run<Copy>(p);
}

ThroughputRun floor_throughput(const ThroughputParams& p) {
  return throughput_run<Floor>(p);
}

ThroughputRun copy_throughput(const ThroughputParams& p) {
  return throughput_run<Copy>(p);
}

}  // namespace framebroker::fbbench
