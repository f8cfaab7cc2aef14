#include "fbbench/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "fbbench/bench_common.hpp"

extern char** environ;

namespace framebroker::fbbench {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_interrupted{false};
void on_signal(int) {
  g_interrupted = true;
}

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> v;
  for (const auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  return v;
}

int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

// Reads both pipes until both are closed.
void drain_pipes(int out_fd, int err_fd, std::string& out, std::string& err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, size_t(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
}

// What a child does between fork() and exec: each is a dup2 of `from` (an fd, or -1 to open
// `path`) onto `to`. Everything is prepared before fork(), since the child of a threaded process
// may only make async-signal-safe calls.
struct Redirect {
  int to;
  int from = -1;
  const char* path = nullptr;
  int flags = 0;
};

// Makes the calling child die with fbbench (see the top of process.hpp); async-signal-safe.
// False when fbbench has already gone.
bool die_with(pid_t parent) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return false;
  // fbbench may have died before prctl(): then the child has been reparented and no signal comes.
  return ::getppid() == parent;
}

// The program argv[0] names: as is when it has a '/', else the first executable in PATH.
std::string resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error("cannot run " + name + ": not found in PATH");
}

// fork + exec rather than posix_spawn, which cannot set PR_SET_PDEATHSIG in the child: every
// child dies with fbbench, even when fbbench is SIGKILLed. An exec failure comes back through a
// close-on-exec pipe as the child's errno.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<Redirect>& redirects) {
  const std::string exe = resolve(argv.at(0));
  auto args = c_argv(argv);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + errno_text(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    int err = 0;
    if (!die_with(parent)) ::_exit(127);
    for (const Redirect& r : redirects) {
      const int fd = r.path ? ::open(r.path, r.flags, 0644) : r.from;
      if (fd < 0 || ::dup2(fd, r.to) < 0) {
        err = errno;
        break;
      }
      if (r.path && fd != r.to) ::close(fd);
    }
    if (err == 0) {
      ::execve(exe.c_str(), args.data(), environ);
      err = errno;
    }
    while (::write(report[1], &err, sizeof err) < 0 && errno == EINTR) {
    }
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    throw std::runtime_error("cannot run " + argv[0] + ": fork: " + errno_text(fork_errno));
  }
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (n == sizeof child_errno) {
    wait_status(pid);
    throw std::runtime_error("cannot run " + argv[0] + ": " + errno_text(child_errno));
  }
  return pid;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Interruption: Ctrl-C reaches the children too (same process group); we stop after the current
// step and clean up.

bool interrupted() {
  return g_interrupted;
}

void check_interrupted() {
  if (g_interrupted) throw Interrupted();
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int run_guarded(const std::function<void()>& body) {
  install_signal_handlers();
  try {
    body();
    return 0;
  } catch (const Interrupted&) {
    std::fprintf(stderr, "fbbench: interrupted\n");
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fbbench: %s\n", e.what());
    return 1;
  }
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string errno_text(int e) {
  return std::strerror(e);
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Child processes: fork + exec with an argv vector (no shell), each dying with fbbench.

ProcResult run_capture(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + errno_text(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]), ::close(out[1]);
    throw std::runtime_error("pipe: " + errno_text(errno));
  }
  ProcResult r;
  const auto t0 = Clock::now();
  pid_t pid = -1;
  try {
    pid = spawn(argv, {{0, -1, "/dev/null", O_RDONLY}, {1, out[1]}, {2, err[1]}});
  } catch (...) {
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    throw;
  }
  ::close(out[1]), ::close(err[1]);
  drain_pipes(out[0], err[0], r.out, r.err);
  r.status = wait_status(pid);
  r.seconds = seconds_since(t0);
  return r;
}

pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_path) {
  return spawn(argv, {{0, -1, "/dev/null", O_RDONLY},
                      {1, -1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC},
                      {2, 1}});
}

int wait_status(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return decode_status(st);
}

std::optional<int> exit_status(pid_t pid) {
  int st = 0;
  const pid_t r = ::waitpid(pid, &st, WNOHANG);
  if (r == pid) return decode_status(st);
  if (r < 0 && errno == ECHILD) return -1;
  return std::nullopt;
}

bool reaped(pid_t pid) {
  return exit_status(pid).has_value();
}

void stop_process(pid_t pid) {
  ::kill(pid, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    if (reaped(pid)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  wait_status(pid);
}

pid_t fork_child(const std::function<void()>& body,
                 const std::function<void(const char* what)>& on_failure) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork: " + errno_text(errno));
  if (pid > 0) return pid;
  if (!die_with(parent)) ::_exit(1);
  int code = 1;
  try {
    body();
    code = 0;
  } catch (const std::exception& e) {
    on_failure(e.what());
  } catch (...) {
    on_failure("unknown exception");
  }
  ::_exit(code);
}

SharedMemory::SharedMemory(size_t bytes) : bytes_(bytes) {
  data_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (data_ == MAP_FAILED)
    throw std::runtime_error("mmap of " + std::to_string(bytes) +
                             " shared bytes: " + errno_text(errno));
  prefault(data_, bytes);
}

SharedMemory::~SharedMemory() {
  ::munmap(data_, bytes_);
}

uint64_t cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
  if (f.size() < 13) throw std::runtime_error("cannot read /proc/" + std::to_string(pid) + "/stat");
  return std::stoull(f[11]) + std::stoull(f[12]);
}

uint64_t rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

namespace {

// The value of "key:\t<n>" in a /proc status file, or 0.
uint64_t status_field(const std::string& text, const std::string& key) {
  const size_t at = text.find("\n" + key + ":");
  return at == std::string::npos ? 0
                                 : std::strtoull(text.c_str() + at + key.size() + 2, nullptr, 10);
}

}  // namespace

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<ThreadSample> thread_samples(pid_t pid) {
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  std::vector<ThreadSample> threads;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(task, ec)) {
    const std::string dir = entry.path().string();
    const std::string status = read_text(dir + "/status");
    if (status.empty()) continue;  // it ended
    ThreadSample t;
    t.tid = pid_t(std::stol(entry.path().filename().string()));
    t.name = trim(read_text(dir + "/comm"));
    t.voluntary = status_field("\n" + status, "voluntary_ctxt_switches");
    t.involuntary = status_field("\n" + status, "nonvoluntary_ctxt_switches");
    std::istringstream schedstat(read_text(dir + "/schedstat"));
    if (!(schedstat >> t.cpu_ns)) {
      try {
        t.cpu_ns = cpu_ticks(t.tid) * 1'000'000'000ull / uint64_t(::sysconf(_SC_CLK_TCK));
      } catch (const std::exception&) {
        continue;  // it ended
      }
    }
    threads.push_back(std::move(t));
  }
  std::sort(threads.begin(), threads.end(), [](auto& a, auto& b) { return a.tid < b.tid; });
  return threads;
}

std::vector<ThreadSample> thread_deltas(const std::vector<ThreadSample>& before,
                                        const std::vector<ThreadSample>& after) {
  std::vector<ThreadSample> out;
  for (const ThreadSample& b : after) {
    ThreadSample d = b;
    for (const ThreadSample& a : before)
      if (a.tid == b.tid) {
        d.voluntary -= std::min(a.voluntary, b.voluntary);
        d.involuntary -= std::min(a.involuntary, b.involuntary);
        d.cpu_ns -= std::min(a.cpu_ns, b.cpu_ns);
      }
    out.push_back(std::move(d));
  }
  return out;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

std::string make_temp_dir(const std::string& parent, const std::string& prefix) {
  std::string tmpl = parent + "/" + prefix + ".XXXXXX";
  if (!::mkdtemp(tmpl.data()))
    throw std::runtime_error("cannot create a directory in " + parent + ": " + errno_text(errno));
  return tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string self_exe() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot read /proc/self/exe: " + ec.message());
  return exe.string();
}

std::string self_dir() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path().string() : exe.parent_path().string();
}

std::string find_tool(const std::string& requested, const std::vector<std::string>& candidates,
                      const std::string& what, const std::string& flag) {
  if (!requested.empty()) {
    if (::access(requested.c_str(), X_OK) != 0)
      throw std::runtime_error(what + " " + requested + " is not executable");
    return requested;
  }
  for (const auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0) return fs::weakly_canonical(c).string();
  throw std::runtime_error("cannot find " + what + " (looked at " + candidates.front() +
                           "); pass " + flag + " PATH");
}

std::string find_broker(const std::string& requested) {
  return find_tool(requested,
                   {self_dir() + "/../daemon/framebrokerd", self_dir() + "/framebrokerd"},
                   "framebrokerd", "--broker");
}

// ---------------------------------------------------------------------------------------------
// The broker.

BenchBroker::BenchBroker(const std::string& exe, const std::string& runtime_dir,
                         const std::string& tag, const std::string& camera_spec, int cpu)
    : instance_("fbbench-" + std::to_string(::getpid()) + "-" + tag),
      socket_(runtime_dir + "/" + instance_ + ".sock"),
      log_(runtime_dir + "/" + instance_ + ".log") {
  // The child inherits the spawning thread's CPU mask, and every thread it starts inherits it.
  pin_this_thread(cpu);
  try {
    pid_ = spawn_logged({exe, "--runtime-dir", runtime_dir, "--instance", instance_,
                         "--no-default-camera", "--camera", camera_spec, "--log-level", "warn"},
                        log_);
  } catch (...) {
    pin_this_thread(-1);
    throw;
  }
  pin_this_thread(-1);
  try {
    wait_ready();
  } catch (...) {
    stop();
    throw;
  }
}

Client BenchBroker::connect() const {
  ConnectOptions co;
  co.socket_path = socket_;
  co.client_name = "fbbench";
  return Client::connect(co);
}

std::string BenchBroker::log_text() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return trim(ss.str());
}

void BenchBroker::wait_ready() {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    if (reaped(pid_)) {
      pid_ = -1;
      throw std::runtime_error("framebrokerd exited at start: " + log_text());
    }
    try {
      connect();
      return;
    } catch (const Error&) {
      if (Clock::now() > deadline)
        throw std::runtime_error("framebrokerd did not open " + socket_ + " within 10 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

// The broker leaves its /dev/shm/fb.<instance>.lock by design (daemon/instance_lock.hpp); the
// instance name is ours alone, so it goes once the broker has exited.
void BenchBroker::stop() {
  if (pid_ > 0) stop_process(pid_);
  pid_ = -1;
  ::unlink(("/dev/shm/fb." + instance_ + ".lock").c_str());
}

}  // namespace framebroker::fbbench
