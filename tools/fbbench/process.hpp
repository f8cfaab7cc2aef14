// What every fbbench command needs around the measurement: Ctrl-C handling, child processes
// (fork + exec with an argv vector, no shell; fork() for the baselines' own producers and
// consumers, with memory shared before it), temporary directories, finding the project's
// binaries, and a framebrokerd of its own with one simulated camera.
//
// Every child dies with fbbench, even when fbbench is SIGKILLed: it sets PR_SET_PDEATHSIG
// (SIGKILL) between fork and exec, and leaves at once when fbbench is already gone. The kernel
// sends that signal when the *thread* that forked exits, so children are started from fbbench's
// main thread (every caller does so), never from a thread that ends before they do.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "framebroker/client.hpp"

namespace framebroker::fbbench {

using Clock = std::chrono::steady_clock;

// Ctrl-C reaches the children too (same process group); a command stops after the current step
// and cleans up.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};
void install_signal_handlers();
bool interrupted();
void check_interrupted();  // throws Interrupted

// Runs a command's body with Ctrl-C handling: 0 when it returns, 130 when interrupted, 1 (with
// the message on stderr) when it throws.
int run_guarded(const std::function<void()>& body);

double seconds_since(Clock::time_point t0);
std::string errno_text(int e);
std::string trim(std::string s);
std::string fmt(const char* format, double v);  // snprintf of one number

struct ProcResult {
  int status = -1;  // exit code, or 128 + signal
  std::string out, err;
  double seconds = 0;  // from spawn to exit
  bool ok() const { return status == 0; }
};

// Runs argv[0] (looked up in PATH when it has no '/') and captures stdout and stderr; stdin is
// /dev/null.
ProcResult run_capture(const std::vector<std::string>& argv);
// Starts argv in the background with stdout and stderr going to `log_path`.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_path);
// How a child ended: its exit code, or 128 + the signal that killed it; -1 when that cannot be
// told (not a child of ours). wait_status() waits; exit_status() is nullopt while it runs.
int wait_status(pid_t pid);
std::optional<int> exit_status(pid_t pid);
// True once `pid` has exited (and is reaped); false while it runs.
bool reaped(pid_t pid);
// SIGTERM, then SIGKILL after 5 s; reaps it.
void stop_process(pid_t pid);

// Runs `body` in a forked child (which dies with fbbench) that never returns into the caller's
// code: it leaves with _exit(), so none of the caller's exit handlers or destructors run twice: 0
// when `body` returns, 1 after `on_failure(what)` when it throws. The child of a threaded process
// should not allocate, so whatever the two use is made before. Throws std::runtime_error when
// fork() fails.
pid_t fork_child(const std::function<void()>& body,
                 const std::function<void(const char* what)>& on_failure);

// An anonymous MAP_SHARED mapping, prefaulted: made before fork(), the parent and its children
// see the same pages.
class SharedMemory {
 public:
  explicit SharedMemory(size_t bytes);
  ~SharedMemory();
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  uint8_t* data() const { return static_cast<uint8_t*>(data_); }

 private:
  size_t bytes_;
  void* data_;
};

// Where forked children report to their parent: a Header (atomics, an error text...) followed by
// `count` Ts, aligned for them, in one SharedMemory. The Header is never destroyed.
template <class Header, class T>
class SharedBoard {
  static_assert(std::is_trivially_destructible_v<Header> && std::is_trivially_copyable_v<T>);

 public:
  explicit SharedBoard(size_t count)
      : memory_(kItemsAt + count * sizeof(T)), header_(new (memory_.data()) Header) {}
  Header& header() const { return *header_; }
  T* items() const { return reinterpret_cast<T*>(memory_.data() + kItemsAt); }

 private:
  static constexpr size_t kItemsAt = (sizeof(Header) + alignof(T) - 1) / alignof(T) * alignof(T);
  SharedMemory memory_;
  Header* header_;
};

// From /proc: the user + system CPU time of `pid` in clock ticks (sysconf(_SC_CLK_TCK)), and its
// resident set in KiB (0 when it cannot be read).
uint64_t cpu_ticks(pid_t pid);
uint64_t rss_kb(pid_t pid);

// One thread of a process, from /proc/<pid>/task/<tid>: its name (comm), its voluntary context
// switches (each one a sleep, so the next run is a wake-up) and involuntary ones (status), and
// its CPU time in ns (schedstat; from the clock ticks in stat where schedstat is missing).
struct ThreadSample {
  pid_t tid = 0;
  std::string name;
  uint64_t voluntary = 0, involuntary = 0, cpu_ns = 0;
};
// Every thread of `pid`, in tid order; one that ends while it is read is left out.
std::vector<ThreadSample> thread_samples(pid_t pid);
// after - before, thread by thread (matched by tid; a thread new in `after` counts from 0).
std::vector<ThreadSample> thread_deltas(const std::vector<ThreadSample>& before,
                                        const std::vector<ThreadSample>& after);

// The 1, 5 and 15 minute load averages: other work on the machine skews every number.
std::string load_average();

std::string make_temp_dir(const std::string& parent, const std::string& prefix);

// Removes a directory tree when it goes out of scope.
struct TempDir {
  std::string path;
  explicit TempDir(std::string p) : path(std::move(p)) {}
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
};

// A whole file ("" when it cannot be read): a child's log, say.
std::string read_text(const std::string& path);
// The running fbbench binary (for its hidden helper commands), and its directory.
std::string self_exe();
std::string self_dir();
// `requested` if set (it must be executable), else the first executable candidate.
std::string find_tool(const std::string& requested, const std::vector<std::string>& candidates,
                      const std::string& what, const std::string& flag);
// framebrokerd: --broker, else the build tree's or the installed one beside fbbench.
std::string find_broker(const std::string& requested);

// A framebrokerd of fbbench's own, in `runtime_dir`, serving one camera given as a --camera spec
// (e.g. "sim:name=bench,Width=512,..."). `cpu` >= 0 pins it (every thread) to that CPU.
class BenchBroker {
 public:
  BenchBroker(const std::string& exe, const std::string& runtime_dir, const std::string& tag,
              const std::string& camera_spec, int cpu = -1);
  ~BenchBroker() { stop(); }
  BenchBroker(const BenchBroker&) = delete;
  BenchBroker& operator=(const BenchBroker&) = delete;

  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }
  Client connect() const;

 private:
  std::string log_text() const;
  void wait_ready();
  void stop();

  std::string instance_, socket_, log_;
  pid_t pid_ = -1;
};

}  // namespace framebroker::fbbench
