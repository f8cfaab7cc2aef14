// --control-group: only its members start, stop and set cameras; everyone who can connect
// still reads. A real broker, real users in real groups, real fbctl processes.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "accounts.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

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
