// framebrokerd as a system service: sd_notify readiness, status, watchdog and stopping;
// socket activation; journal-style logging; SIGHUP reload; group-only access to the socket
// and the segments. Real daemon processes, real sockets, real users.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "framebroker/client.hpp"
#include "harness.hpp"

namespace fs = std::filesystem;
using namespace fbtest;
using Clock = std::chrono::steady_clock;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/fbservice-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A broker instance name of this test's own. The broker leaves /dev/shm/fb.<instance>.lock by
// design (daemon/instance_lock.hpp); it goes with the test.
struct TestInstance {
  std::string name;
  explicit TestInstance(const char* what)
      : name(std::string(what) + "-" + std::to_string(::getpid())) {}
  ~TestInstance() { ::unlink(("/dev/shm/fb." + name + ".lock").c_str()); }
};

// The datagram socket systemd would listen on ($NOTIFY_SOCKET).
class NotifyListener {
 public:
  explicit NotifyListener(const std::string& dir) : path_(dir + "/notify") {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("bind " + path_ + ": " + std::strerror(errno));
  }
  ~NotifyListener() { ::close(fd_); }
  const std::string& path() const { return path_; }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, int(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, size_t(n));
  }

  // Reads datagrams until one contains `what`; earlier ones go to `before`.
  std::optional<std::string> until(const std::string& what, std::chrono::milliseconds timeout,
                                   std::vector<std::string>* before = nullptr) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
      auto m = next(std::max(left, std::chrono::milliseconds(1)));
      if (!m) break;
      if (m->find(what) != std::string::npos) return m;
      if (before) before->push_back(*m);
    }
    return std::nullopt;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// One connect() attempt, no retry.
bool connects_now(const std::string& socket_path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", socket_path.c_str());
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

int exit_code(std::optional<int> status) {
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

std::string find_program(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0) return c;
  return {};
}

}  // namespace

TEST(Service, NotifiesReadyOnlyOnceClientsCanConnectThenStatusWatchdogAndStopping) {
  TempDir dir;
  NotifyListener notify(dir.path);
  const TestInstance instance("notify");
  const std::string& inst = instance.name;
  const std::string sock = dir.path + "/" + inst + ".sock";
  Process broker({FB_BROKER_BIN, "--runtime-dir", dir.path, "--instance", inst}, "notify",
                 {"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=400000"});

  std::vector<std::string> before;
  auto ready = notify.until("READY=1", 20s, &before);
  ASSERT_TRUE(ready) << broker.err();
  // READY=1 comes once the socket listens and the cameras are open: a client gets in at once.
  EXPECT_TRUE(connects_now(sock)) << "READY=1 before the socket accepted connections";
  EXPECT_EQ(run({FB_FBCTL_BIN, "status", "--socket", sock}).exit_code, 0);
  EXPECT_NE(ready->find("STATUS=1 stream"), std::string::npos) << *ready;
  for (const auto& m : before) EXPECT_EQ(m.find("READY=1"), std::string::npos) << m;

  // WatchdogSec=400ms: pings at least every 200 ms, from the event loop.
  EXPECT_TRUE(notify.until("WATCHDOG=1", 2s)) << broker.err();
  EXPECT_TRUE(notify.until("frames/s", 5s)) << "no STATUS= with the frame rate";

  broker.signal(SIGTERM);
  EXPECT_TRUE(notify.until("STOPPING=1", 10s)) << broker.err();
  EXPECT_EQ(exit_code(broker.wait(10s)), 0) << broker.err();
}

TEST(Service, ServesOnTheSocketSystemdPassesIn) {
  const std::string activate =
      find_program({"/usr/bin/systemd-socket-activate", "/bin/systemd-socket-activate"});
  if (activate.empty()) GTEST_SKIP() << "systemd-socket-activate is not installed";
  TempDir dir;
  const TestInstance instance("activate");
  const std::string& inst = instance.name;
  const std::string sock = dir.path + "/activated.sock";
  Process broker({activate, "-l", sock, FB_BROKER_BIN, "--runtime-dir", dir.path, "--instance",
                  inst, "--log-level", "debug"},
                 "activate");
  Result status;
  const auto end = Clock::now() + 20s;
  do {  // the first connection makes systemd-socket-activate exec the broker
    std::this_thread::sleep_for(50ms);
    status = run({FB_FBCTL_BIN, "status", "--socket", sock, "--json"});
  } while (status.exit_code != 0 && Clock::now() < end);
  ASSERT_EQ(status.exit_code, 0) << status.err << broker.err();
  const auto j = nlohmann::json::parse(status.out);
  EXPECT_EQ(j["broker"]["instance"], inst);
  EXPECT_NE(broker.err().find("(socket from systemd)"), std::string::npos) << broker.err();
  EXPECT_FALSE(fs::exists(dir.path + "/" + inst + ".sock")) << "made a socket of its own";

  // A client gets frames through the inherited socket.
  auto client = framebroker::Client::connect({.socket_path = sock});
  auto sub = client.subscribe("sim0", {});
  EXPECT_TRUE(sub.next(5s).has_value());

  broker.signal(SIGTERM);
  EXPECT_EQ(exit_code(broker.wait(10s)), 0) << broker.err();
  EXPECT_TRUE(fs::exists(sock)) << "the socket file is systemd's; the broker must leave it";
}

TEST(Service, LogsWithSyslogPrioritiesWhenStderrIsTheJournal) {
  TempDir dir;
  const TestInstance instance("journal");
  const std::string& inst = instance.name;
  // JOURNAL_STREAM names stderr's device:inode, as systemd sets it.
  const std::string script = "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$@\"";
  Process broker(
      {"/bin/sh", "-c", script, "sh", FB_BROKER_BIN, "--runtime-dir", dir.path, "--instance", inst},
      "journal");
  const std::string sock = dir.path + "/" + inst + ".sock";
  const auto end = Clock::now() + 20s;
  while (!connects_now(sock) && Clock::now() < end) std::this_thread::sleep_for(20ms);
  broker.signal(SIGTERM);
  ASSERT_EQ(exit_code(broker.wait(10s)), 0) << broker.err();
  std::istringstream lines(broker.err());
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    ASSERT_GE(line.size(), 3u);
    EXPECT_TRUE(line[0] == '<' && std::isdigit(static_cast<unsigned char>(line[1])) &&
                line[2] == '>')
        << line;
    EXPECT_EQ(line.find(" info "), std::string::npos) << "level word or timestamp: " << line;
  }
  EXPECT_GE(n, 3);
  EXPECT_NE(broker.err().find("<6>framebrokerd "), std::string::npos) << broker.err();

  // A fatal error is a priority-2 line; on a terminal or file it stays a plain sentence.
  const std::string bad = "--camera=sim:name=x,Width=3";
  Result journal = run({"/bin/sh", "-c", script, "sh", FB_BROKER_BIN, "--runtime-dir", dir.path,
                        "--instance", inst, bad});
  EXPECT_EQ(journal.exit_code, 1);
  EXPECT_EQ(journal.err.rfind("<2>", 0), 0u) << journal.err;
  Result plain = run({"/usr/bin/env", "JOURNAL_STREAM=1:1", FB_BROKER_BIN, "--runtime-dir",
                      dir.path, "--instance", inst, bad});
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_EQ(plain.err.rfind("framebrokerd: camera x: Width", 0), 0u) << plain.err;
}

namespace {

void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << text;
  fs::rename(tmp, path);
}

std::set<std::string> stream_names(const nlohmann::json& status) {
  std::set<std::string> out;
  for (const auto& s : status["streams"]) out.insert(s["name"].get<std::string>());
  return out;
}

}  // namespace

TEST(Service, SighupReloadsCamerasAndPropertiesAndReportsWhatItLeaves) {
  TempDir dir;
  const std::string config = dir.path + "/framebroker.toml";
  write_file(config, R"(default_camera = false
[[camera]]
name = "gone"
[camera.properties]
FrameRate = 50
[[camera]]
name = "idle"
start = false
[camera.properties]
Width = 256
[[camera]]
name = "busy"
[camera.properties]
FrameRate = 40
)");
  Broker broker({"--config", config});
  ASSERT_EQ(stream_names(broker.status()), (std::set<std::string>{"busy", "gone", "idle"}));
  auto client = framebroker::Client::connect({.socket_path = broker.socket()});
  auto gone = client.subscribe("gone", {});
  ASSERT_TRUE(gone.next(5s).has_value());

  write_file(config, R"(default_camera = false
[[camera]]
name = "idle"
start = false
[camera.properties]
Width = 128
Height = 64
[[camera]]
name = "busy"
slots = 8
[camera.properties]
FrameRate = 20
[[camera]]
name = "added"
[camera.properties]
FrameRate = 200
)");
  broker.process().signal(SIGHUP);
  ASSERT_TRUE(broker.wait_status([](const nlohmann::json& s) {
    return stream_names(s) == std::set<std::string>{"added", "busy", "idle"};
  })) << broker.process().err();
  EXPECT_EQ(broker.fbctl({"get", "idle", "Width"}).out, "128\n");
  EXPECT_EQ(broker.fbctl({"get", "idle", "Height"}).out, "64\n");
  // busy runs: its FrameRate and ring stay, and the log says so.
  EXPECT_EQ(broker.fbctl({"get", "busy", "FrameRate"}).out, "40\n");
  const std::string log = broker.process().err();
  EXPECT_NE(log.find("camera busy: FrameRate=20 left as it is"), std::string::npos) << log;
  EXPECT_NE(log.find("camera busy's driver, slots"), std::string::npos) << log;
  auto added = client.subscribe("added", {});
  EXPECT_TRUE(added.next(5s).has_value());
  EXPECT_NO_THROW(client.status());  // the subscriber of the removed stream keeps its connection

  // A broken file changes nothing.
  write_file(config, "default_camera = false\n[[camera]\n");
  broker.process().signal(SIGHUP);
  const auto end = Clock::now() + 10s;
  while (broker.process().err().find("the running configuration stays") == std::string::npos &&
         Clock::now() < end)
    std::this_thread::sleep_for(20ms);
  EXPECT_NE(broker.process().err().find("the running configuration stays"), std::string::npos);
  EXPECT_EQ(stream_names(broker.status()), (std::set<std::string>{"added", "busy", "idle"}));
  EXPECT_TRUE(added.next(5s).has_value());
}

namespace {

// Throwaway users and a group for the permission test, removed at the end.
class TestAccounts {
 public:
  static constexpr const char* kGroup = "fbtest-grp";
  static constexpr const char* kMember = "fbtest-in";
  static constexpr const char* kOutsider = "fbtest-out";

  TestAccounts() {
    if (::geteuid() != 0) {
      reason_ = "needs root to add users";
      return;
    }
    if (sbin("useradd").empty() || sbin("groupadd").empty() || setpriv().empty()) {
      reason_ = "useradd, groupadd or setpriv is not installed";
      return;
    }
    remove();  // left over from an interrupted run
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {sbin("groupadd"), kGroup},
             {sbin("useradd"), "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", kGroup,
              kMember},
             {sbin("useradd"), "--no-create-home", "--shell", "/usr/sbin/nologin", kOutsider}}) {
      if (Result r = run(cmd); r.exit_code != 0) {
        reason_ = cmd[0] + " failed: " + r.err;
        return;
      }
    }
    ok_ = true;
  }
  ~TestAccounts() {
    if (ok_) remove();
  }
  bool ok() const { return ok_; }
  const std::string& reason() const { return reason_; }

  // argv run as `user` with their groups (setpriv, as a service manager would).
  static std::vector<std::string> as(const std::string& user, std::vector<std::string> argv) {
    std::vector<std::string> out = {setpriv(),       "--reuid=" + user, "--regid=" + user,
                                    "--init-groups", "--reset-env",     "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

 private:
  static std::string sbin(const std::string& tool) {
    return find_program({"/usr/sbin/" + tool, "/sbin/" + tool});
  }
  static std::string setpriv() { return find_program({"/usr/bin/setpriv", "/bin/setpriv"}); }
  static void remove() {
    run({sbin("userdel"), kMember});
    run({sbin("userdel"), kOutsider});
    run({sbin("groupdel"), kGroup});
  }
  bool ok_ = false;
  std::string reason_;
};

}  // namespace

TEST(Service, OnlyTheBrokersGroupReachesTheSocketAndTheSegments) {
  TestAccounts accounts;
  if (!accounts.ok()) GTEST_SKIP() << accounts.reason();
  Broker broker({"--group", TestAccounts::kGroup});
  ::chmod(broker.runtime_dir().c_str(), 0755);  // like /run/framebroker: the socket decides
  const struct group* g = ::getgrnam(TestAccounts::kGroup);
  ASSERT_NE(g, nullptr);

  struct stat st {};
  ASSERT_EQ(::stat(broker.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, g->gr_gid);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  const auto segments = broker.segments();
  ASSERT_FALSE(segments.empty());
  const std::string segment = "/dev/shm/" + segments.front();
  ASSERT_EQ(::stat(segment.c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, g->gr_gid);
  EXPECT_EQ(st.st_mode & 0777, 0640u);

  // A member subscribes and reads frames (the counter check maps and reads every pixel).
  Result member =
      run(TestAccounts::as(TestAccounts::kMember, {FB_FBCTL_BIN, "watch", "sim0", "--socket",
                                                   broker.socket(), "--frames", "5", "--json"}));
  EXPECT_EQ(member.exit_code, 0) << member.err;
  EXPECT_NE(member.out.find("\"frames\""), std::string::npos) << member.out;

  // Anyone else can neither connect nor map a segment.
  Result outsider = run(TestAccounts::as(TestAccounts::kOutsider,
                                         {FB_FBCTL_BIN, "status", "--socket", broker.socket()}));
  EXPECT_NE(outsider.exit_code, 0);
  EXPECT_NE(outsider.err.find("Permission denied"), std::string::npos) << outsider.err;
  Result peek = run(TestAccounts::as(TestAccounts::kOutsider, {"/bin/cat", segment}));
  EXPECT_NE(peek.exit_code, 0);
  EXPECT_NE(peek.err.find("Permission denied"), std::string::npos) << peek.err;

  // The broker's other clients lose nothing.
  EXPECT_TRUE(broker.wait_status([](const nlohmann::json& s) { return !s["streams"].empty(); }));
}
