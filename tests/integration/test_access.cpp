// Who may touch a broker: a user outside the socket's group can neither connect nor open a
// segment, and a subscriber in the group reads slots but cannot write them. Real users (setpriv),
// a real broker run as root with --group, as under systemd.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "accounts.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

TEST(Access, OutsidersCanNeitherConnectNorOpenASegment) {
  Accounts accounts;
  if (!accounts.ok()) GTEST_SKIP() << accounts.reason();
  if (!::getpwnam("nobody")) GTEST_SKIP() << "there is no user nobody";
  Broker broker({"--group", accounts.socket_group, "--no-default-camera", "--camera",
                 "sim:name=cam,Width=64,Height=64,FrameRate=100,Pattern=counter"});
  ::chmod(broker.runtime_dir().c_str(), 0755);  // like /run/framebroker: the socket decides
  const std::string segment =
      "/dev/shm" + stream_of(broker.status(), "cam")["segment"].get<std::string>();
  struct stat st {};
  ASSERT_EQ(::stat(segment.c_str(), &st), 0) << segment;
  EXPECT_EQ(st.st_mode & 0777, 0640u) << "segments are read-only for the group, closed to others";

  // nobody is in no group of ours: the socket refuses it, with a message that says why.
  const Result status =
      run(Accounts::as("nobody", {FB_FBCTL_BIN, "status", "--socket", broker.socket()}));
  EXPECT_NE(status.exit_code, 0) << status.out;
  EXPECT_NE(status.err.find("ermission denied"), std::string::npos) << status.err;
  // Nor can it map the pixels by name.
  const Result read_outsider = run(Accounts::as("nobody", {"/usr/bin/head", "-c", "1", segment}));
  EXPECT_NE(read_outsider.exit_code, 0);
  EXPECT_NE(read_outsider.err.find("Permission denied"), std::string::npos) << read_outsider.err;

  // A member of the group reads the segment and takes frames, but cannot write a slot.
  const Result read_member =
      run(Accounts::as(accounts.watcher, {"/usr/bin/head", "-c", "1", segment}));
  EXPECT_EQ(read_member.exit_code, 0) << read_member.err;
  const Result write_member = run(Accounts::as(
      accounts.watcher,
      {"/bin/sh", "-c", "printf x | /usr/bin/dd of=" + segment + " conv=notrunc status=none"}));
  EXPECT_NE(write_member.exit_code, 0);
  EXPECT_NE(write_member.err.find("Permission denied"), std::string::npos) << write_member.err;
  const Result watch = run(
      Accounts::as(accounts.watcher, {FB_FBCTL_BIN, "watch", "cam", "--frames", "50",
                                      "--verify-counter", "--json", "--socket", broker.socket()}));
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  expect_lossless(json::parse(watch.out), 50);
}
