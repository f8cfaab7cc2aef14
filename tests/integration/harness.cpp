#include "harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "framebroker/internal/segment.hpp"

extern char** environ;

namespace fbtest {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string unique_name() {
  static std::atomic<int> counter{0};
  return "t" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

Process::Process(const std::vector<std::string>& argv, const std::string& log_prefix,
                 const std::vector<std::string>& extra_env)
    : out_path_(log_prefix + ".out"), err_path_(log_prefix + ".err") {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store(extra_env);
  std::vector<char*> env;
  for (auto& e : env_store) env.push_back(e.data());
  for (char** e = environ; *e; ++e) env.push_back(*e);
  env.push_back(nullptr);

  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    setpgid(0, 0);
    execve(args[0], args.data(), env.data());
    _exit(127);
  }
}

Process::~Process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(5s);
  }
}

void Process::signal(int sig) {
  ::kill(pid_, sig);
}

bool Process::running() {
  if (status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) status_ = st;
  return !status_;
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (running()) {
    if (Clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
  return status_;
}

std::string Process::out() const {
  return slurp(out_path_);
}
std::string Process::err() const {
  return slurp(err_path_);
}

Result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  static std::atomic<int> n{0};
  const std::string prefix = (fs::temp_directory_path() /
                              ("fbrun-" + std::to_string(getpid()) + "-" + std::to_string(n++)))
                                 .string();
  Result r;
  {
    Process p(argv, prefix);
    auto st = p.wait(timeout);
    if (st && WIFEXITED(*st)) r.exit_code = WEXITSTATUS(*st);
    r.out = p.out();
    r.err = p.err();
  }
  fs::remove(prefix + ".out");
  fs::remove(prefix + ".err");
  return r;
}

Broker::Broker(std::vector<std::string> extra_args) {
  char tmpl[] = "/tmp/fbtest-XXXXXX";
  dir_ = mkdtemp(tmpl);
  instance_ = unique_name();
  socket_ = dir_ + "/" + instance_ + ".sock";
  start(extra_args);
}

void Broker::start(const std::vector<std::string>& extra_args) {
  proc_ = start_another(extra_args);
  const auto end = Clock::now() + 20s;
  while (Clock::now() < end) {
    if (!proc_->running())
      throw std::runtime_error("framebrokerd exited at start: " + proc_->err());
    if (fs::exists(socket_) &&
        run({FB_FBCTL_BIN, "status", "--socket", socket_}, 10s).exit_code == 0)
      return;
    std::this_thread::sleep_for(20ms);
  }
  throw std::runtime_error("framebrokerd did not come up: " + proc_->err());
}

std::unique_ptr<Process> Broker::start_another(const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv = {FB_BROKER_BIN, "--runtime-dir", dir_,   "--instance",
                                   instance_,     "--log-level",   "debug"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  static std::atomic<int> n{0};
  return std::make_unique<Process>(argv, dir_ + "/broker" + std::to_string(n++));
}

Broker::~Broker() {
  if (proc_ && proc_->running()) {
    // A clean stop exits 0; a sanitizer report or a crash on the way out does not.
    proc_->signal(SIGTERM);
    auto st = proc_->wait(20s);
    if (!st) {
      proc_->signal(SIGKILL);
      ADD_FAILURE() << "framebrokerd did not stop within 20 s of SIGTERM";
    } else if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
      ADD_FAILURE() << "framebrokerd stopped with status " << *st << ":\n" << proc_->err();
    }
  }
  if (proc_) {
    const std::string err = proc_->err();
    if (err.find("runtime error:") != std::string::npos ||
        err.find("Sanitizer") != std::string::npos)
      ADD_FAILURE() << "framebrokerd reported a sanitizer error:\n" << err;
  }
  proc_.reset();
  for (const auto& s : segments()) framebroker::shm::Segment::remove("/" + s);
  framebroker::shm::Segment::remove("/" + framebroker::shm::instance_segment_prefix(instance_) +
                                    "lock");
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

Result Broker::fbctl(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  args.insert(args.begin(), FB_FBCTL_BIN);
  args.push_back("--socket");
  args.push_back(socket_);
  return run(args, timeout);
}

std::unique_ptr<Process> Broker::fbctl_async(std::vector<std::string> args) {
  args.insert(args.begin(), FB_FBCTL_BIN);
  args.push_back("--socket");
  args.push_back(socket_);
  static std::atomic<int> n{0};
  return std::make_unique<Process>(args, dir_ + "/fbctl" + std::to_string(n++));
}

nlohmann::json Broker::status() {
  auto r = fbctl({"status", "--json"});
  if (r.exit_code != 0) throw std::runtime_error("fbctl status failed: " + r.err);
  return nlohmann::json::parse(r.out);
}

std::vector<std::string> Broker::segments() const {
  std::vector<std::string> out;
  const std::string prefix = framebroker::shm::instance_segment_prefix(instance_);
  for (const auto& e : fs::directory_iterator("/dev/shm")) {
    const auto name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name != prefix + "lock") out.push_back(name);
  }
  return out;
}

nlohmann::json watch_summary(Process& p) {
  auto st = p.wait(60s);
  EXPECT_TRUE(st.has_value()) << "watch did not finish";
  if (st) {
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << p.err();
  }
  return nlohmann::json::parse(p.out());
}

void expect_lossless(const nlohmann::json& summary, int frames) {
  EXPECT_EQ(summary["frames"], frames);
  EXPECT_EQ(summary["gaps"], 0);
  EXPECT_EQ(summary["out_of_order"], 0);
  EXPECT_EQ(summary["verified"], true);
  EXPECT_EQ(summary["bad_frames"], 0);
}

std::vector<nlohmann::json> subscribers(const nlohmann::json& status, pid_t pid) {
  std::vector<nlohmann::json> out;
  for (const auto& s : status["subscribers"])
    if (pid == 0 || s["pid"].get<pid_t>() == pid) out.push_back(s);
  return out;
}

const nlohmann::json& stream_of(const nlohmann::json& status, const std::string& name) {
  for (const auto& s : status["streams"])
    if (s["name"] == name) return s;
  throw std::runtime_error("no stream " + name + " in status");
}

framebroker::Client connect_to(const Broker& b) {
  return framebroker::Client::connect({.socket_path = b.socket()});
}

std::vector<std::string> idle_counter_camera(int fps, int slots) {
  return {"--no-default-camera", "--camera",
          "sim:name=cam,Width=32,Height=16,Pattern=counter,FrameRate=" + std::to_string(fps) +
              ",slots=" + std::to_string(slots) + ",start=false"};
}

void others_lose_nothing(Broker& b, const std::function<void()>& attack) {
  auto bystander = b.fbctl_async({"watch", "cam", "--frames", "400", "--verify-counter", "--json"});
  ASSERT_TRUE(b.wait_status(
      [&](const nlohmann::json& s) { return !subscribers(s, bystander->pid()).empty(); }));
  attack();
  expect_lossless(watch_summary(*bystander), 400);
  EXPECT_TRUE(b.process().running());
  const nlohmann::json s = b.status();
  EXPECT_EQ(stream_of(s, "cam")["dropped"], 0);
  EXPECT_TRUE(slot_invariant_holds(s));
}

bool wait_held(Broker& b, int frames) {
  return b.wait_status([&](const nlohmann::json& s) {
    for (const auto& x : subscribers(s))
      if (x["held"] == frames) return true;
    return false;
  });
}

bool wait_sequence_over(Broker& b, const std::string& stream, std::chrono::milliseconds timeout) {
  return b.wait_status(
      [&](const nlohmann::json& s) {
        const auto& st = stream_of(s, stream);
        return st.contains("sequence") && st["sequence"]["running"] == false;
      },
      timeout);
}

bool slot_invariant_holds(const nlohmann::json& status) {
  for (const auto& s : status["streams"]) {
    if (s["free"].get<int>() + s["writing"].get<int>() + s["ready"].get<int>() !=
        s["slots"].get<int>())
      return false;
  }
  return true;
}

RawClient::RawClient(const std::string& socket_path) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("connect " + socket_path + ": " + strerror(errno));
}

RawClient::~RawClient() {
  ::close(fd_);
  if (passed_fd_ >= 0) ::close(passed_fd_);
}

void RawClient::send_bytes(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (w <= 0) throw std::runtime_error("send failed");
    p += w;
    n -= size_t(w);
  }
}

void RawClient::hello(uint32_t version, bool release_lanes) {
  namespace wire = framebroker::wire;
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateHello(fbb, version, fbb.CreateString("raw-test"),
                                fbb.CreateString("test"), release_lanes);
  wire::finish(fbb, 1, wire::Message::Hello, body);
  send(fbb);
}

std::optional<framebroker::wire::Received> RawClient::receive(std::chrono::milliseconds timeout) {
  namespace wire = framebroker::wire;
  const auto end = Clock::now() + timeout;
  for (;;) {
    wire::Received msg;
    auto st = reader_.next(msg);
    if (st == wire::FrameReader::Status::Message) return msg;
    if (st != wire::FrameReader::Status::NeedMore) throw std::runtime_error("broker sent garbage");
    if (closed_) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, int(left.count())) <= 0) continue;
    auto area = reader_.write_area();
    iovec iov{area.data(), area.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_, &mh, MSG_CMSG_CLOEXEC);
    for (cmsghdr* cm = n > 0 ? CMSG_FIRSTHDR(&mh) : nullptr; cm; cm = CMSG_NXTHDR(&mh, cm))
      if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
        if (passed_fd_ >= 0) ::close(passed_fd_);
        std::memcpy(&passed_fd_, CMSG_DATA(cm), sizeof(int));
      }
    if (n <= 0) {
      closed_ = true;
      continue;
    }
    reader_.commit(size_t(n));
  }
}

std::optional<framebroker::wire::Received> RawClient::receive_reply(
    std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    auto m = receive(std::max(left, 0ms));
    if (!m || m->envelope()->message_type() != framebroker::wire::Message::Deliver) return m;
  }
}

bool RawClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (!closed_ && Clock::now() < end) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    receive(std::max(left, 1ms));
  }
  return closed_;
}

}  // namespace fbtest
