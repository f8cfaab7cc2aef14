// --control-group: only its members start, stop and set cameras; everyone who can connect
// still reads. A real broker, real users in real groups, real fbctl processes.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

std::string sbin(const std::string& tool) {
  for (const char* dir : {"/usr/sbin/", "/sbin/"})
    if (std::filesystem::exists(dir + tool)) return dir + tool;
  return "";
}

std::string setpriv() {
  for (const char* p : {"/usr/bin/setpriv", "/bin/setpriv"})
    if (std::filesystem::exists(p)) return p;
  return "";
}

// Two groups and three users of this run only, removed at the end:
//   socket_group  may connect (the broker's --group)
//   control_group may control the cameras (--control-group)
//   watcher       in socket_group only
//   operator_     in both, as supplementary groups (SO_PEERGROUPS)
//   primary       in control_group as primary group, socket_group as supplementary
class Accounts {
 public:
  Accounts() {
    const std::string tag =
        "fbcg" + std::to_string(::getpid()) + "x" + std::to_string(std::time(nullptr) % 100000);
    socket_group = tag + "s";
    control_group = tag + "c";
    watcher = tag + "w";
    operator_ = tag + "o";
    primary = tag + "p";
    if (::geteuid() != 0) {
      reason_ = "needs root to add users and groups (run the integration tests as root)";
      return;
    }
    if (sbin("useradd").empty() || sbin("groupadd").empty() || setpriv().empty()) {
      reason_ = "useradd, groupadd or setpriv is not installed";
      return;
    }
    creating_ = true;
    const std::string useradd = sbin("useradd");
    const std::vector<std::string> common = {"--no-create-home", "--shell", "/usr/sbin/nologin"};
    auto add_user = [&](const std::string& name, std::vector<std::string> groups) {
      std::vector<std::string> cmd = {useradd};
      cmd.insert(cmd.end(), common.begin(), common.end());
      cmd.insert(cmd.end(), groups.begin(), groups.end());
      cmd.push_back(name);
      return cmd;
    };
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {sbin("groupadd"), socket_group},
             {sbin("groupadd"), control_group},
             add_user(watcher, {"-G", socket_group}),
             add_user(operator_, {"-G", socket_group + "," + control_group}),
             add_user(primary, {"-g", control_group, "-G", socket_group})}) {
      Result r = run(cmd);
      if (r.exit_code != 0) {
        reason_ = cmd[0] + " " + cmd.back() + " failed: " + r.err;
        return;
      }
    }
    ok_ = true;
  }
  ~Accounts() {
    if (creating_) remove();
  }
  Accounts(const Accounts&) = delete;
  Accounts& operator=(const Accounts&) = delete;

  bool ok() const { return ok_; }
  const std::string& reason() const { return reason_; }

  // argv run as `user` with the groups of a fresh login (setpriv, as a service manager would).
  static std::vector<std::string> as(const std::string& user, std::vector<std::string> argv) {
    const struct passwd* pw = ::getpwnam(user.c_str());
    const std::string gid = pw ? std::to_string(pw->pw_gid) : user;  // its primary group
    std::vector<std::string> out = {setpriv(),       "--reuid=" + user, "--regid=" + gid,
                                    "--init-groups", "--reset-env",     "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  std::string socket_group, control_group, watcher, operator_, primary;

 private:
  void remove() {
    // Users first: a group that is someone's primary group cannot go.
    for (const auto* user : {&watcher, &operator_, &primary}) run({sbin("userdel"), *user});
    for (const auto* group : {&socket_group, &control_group}) run({sbin("groupdel"), *group});
  }

  bool creating_ = false;
  bool ok_ = false;
  std::string reason_;
};

}  // namespace

TEST(ControlGroup, OnlyItsMembersStartStopAndSetCameras) {
  Accounts accounts;
  if (!accounts.ok()) GTEST_SKIP() << accounts.reason();
  Broker broker({"--group", accounts.socket_group, "--control-group", accounts.control_group,
                 "--no-default-camera", "--camera",
                 "sim:name=cam,Width=64,Height=64,FrameRate=50,start=false"});
  ::chmod(broker.runtime_dir().c_str(), 0755);  // like /run/framebroker: the socket decides
  auto fbctl_as = [&](const std::string& user, std::vector<std::string> args) {
    args.insert(args.begin(), FB_FBCTL_BIN);
    args.push_back("--socket");
    args.push_back(broker.socket());
    return run(Accounts::as(user, args));
  };
  auto camera_state = [&] { return broker.status()["cameras"][0]["state"]; };
  const std::string refusal = "camera control on this broker is limited to group " +
                              accounts.control_group + "; ask an administrator to add user " +
                              accounts.watcher + " to it (usermod -aG " + accounts.control_group +
                              " " + accounts.watcher + "), then log in again";

  // A member of the socket's group only: it reads, but controls nothing.
  Result status = fbctl_as(accounts.watcher, {"status", "--json"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out)["cameras"][0]["name"], "cam");
  Result get = fbctl_as(accounts.watcher, {"get", "cam", "FrameRate"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "50\n");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"start", "cam"}, {"set", "cam", "FrameRate", "20"}, {"stop", "cam"}}) {
    Result r = fbctl_as(accounts.watcher, args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.out << r.err;  // the broker refused
    EXPECT_NE(r.err.find(refusal), std::string::npos) << args[0] << ": " << r.err;
  }
  EXPECT_EQ(camera_state(), "idle");
  EXPECT_EQ(broker.fbctl({"get", "cam", "FrameRate"}).out, "50\n");
  EXPECT_NE(broker.process().err().find("not in control group " + accounts.control_group),
            std::string::npos)
      << broker.process().err();

  // A member of both, through its supplementary groups.
  Result start = fbctl_as(accounts.operator_, {"start", "cam"});
  EXPECT_EQ(start.exit_code, 0) << start.err;
  EXPECT_TRUE(
      broker.wait_status([](const json& s) { return s["cameras"][0]["state"] == "running"; }));
  Result stop = fbctl_as(accounts.watcher, {"stop", "cam"});
  EXPECT_EQ(stop.exit_code, 1) << stop.err;
  EXPECT_EQ(camera_state(), "running");
  Result operator_stop = fbctl_as(accounts.operator_, {"stop", "cam"});
  EXPECT_EQ(operator_stop.exit_code, 0) << operator_stop.err;
  EXPECT_EQ(camera_state(), "idle");

  // A member through its primary group.
  Result primary = fbctl_as(accounts.primary, {"set", "cam", "FrameRate", "20"});
  EXPECT_EQ(primary.exit_code, 0) << primary.err;
  EXPECT_EQ(broker.fbctl({"get", "cam", "FrameRate"}).out, "20\n");
}

// Without --control-group nothing changes: whoever can connect controls the cameras.
TEST(ControlGroup, NoControlGroupLeavesControlToEveryClient) {
  Accounts accounts;
  if (!accounts.ok()) GTEST_SKIP() << accounts.reason();
  Broker broker({"--group", accounts.socket_group, "--no-default-camera", "--camera",
                 "sim:name=cam,Width=64,Height=64,start=false"});
  ::chmod(broker.runtime_dir().c_str(), 0755);
  Result start = run(
      Accounts::as(accounts.watcher, {FB_FBCTL_BIN, "start", "cam", "--socket", broker.socket()}));
  EXPECT_EQ(start.exit_code, 0) << start.err;
  EXPECT_TRUE(
      broker.wait_status([](const json& s) { return s["cameras"][0]["state"] == "running"; }));
}

// --publish-group: only its members publish; everyone who can connect still subscribes, to the
// published stream too.
TEST(PublishGroup, OnlyItsMembersPublish) {
  Accounts accounts;
  if (!accounts.ok()) GTEST_SKIP() << accounts.reason();
  Broker broker({"--group", accounts.socket_group, "--publish-group", accounts.control_group,
                 "--no-default-camera", "--camera",
                 "sim:name=cam,Width=64,Height=64,FrameRate=50,start=true"});
  ::chmod(broker.runtime_dir().c_str(), 0755);
  auto fbproc_as = [&](const std::string& user, const std::string& to) {
    return std::make_unique<Process>(
        Accounts::as(user, {FB_FBPROC_BIN, "--from", "cam", "--to", to, "--op", "copy", "--socket",
                            broker.socket()}),
        broker.runtime_dir() + "/fbproc-" + user);
  };
  auto refused = fbproc_as(accounts.watcher, "by-watcher");
  auto st = refused->wait(20s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << refused->err();
  EXPECT_NE(refused->err().find("publishing on this broker is limited to group " +
                                accounts.control_group),
            std::string::npos)
      << refused->err();

  auto allowed = fbproc_as(accounts.operator_, "by-operator");
  ASSERT_TRUE(broker.wait_status([](const json& s) {
    for (const auto& st : s["streams"])
      if (st["name"] == "by-operator") return st["published"].get<uint64_t>() > 0;
    return false;
  })) << allowed->err();
  // The watcher may not publish, but it reads the published stream.
  Result watch = run(Accounts::as(
      accounts.watcher, {FB_FBCTL_BIN, "snap", "by-operator", "-o",
                         "/tmp/" + accounts.watcher + ".tif", "--socket", broker.socket()}));
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  std::filesystem::remove("/tmp/" + accounts.watcher + ".tif");
}
