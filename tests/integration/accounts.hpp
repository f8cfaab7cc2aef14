// Real users and groups for the tests that need a second user: made for one test, removed at
// its end (root only; without root or the tools, ok() is false and reason() says why).
#pragma once

#include <pwd.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.hpp"

namespace fbtest {

inline std::string sbin(const std::string& tool) {
  for (const char* dir : {"/usr/sbin/", "/sbin/"})
    if (std::filesystem::exists(dir + tool)) return dir + tool;
  return "";
}

inline std::string setpriv() {
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

}  // namespace fbtest
