// The broker's configuration: --camera specs, the TOML file, and finalize().
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "daemon/config.hpp"
#include "framebroker/runtime.hpp"

namespace fbd = framebroker::daemon;
using fbd::BrokerConfig;
using fbd::CameraConfig;
using fbd::ConfigError;
using fbd::Overflow;
using Props = std::vector<std::pair<std::string, std::string>>;

namespace {

// Expects `fn` to throw ConfigError whose message contains `needle`.
template <typename Fn>
void expect_config_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError (wanted one mentioning '" << needle << "')";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' does not mention '" << needle << "'";
  }
}

class TomlFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fb-config-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& text) {
    const auto p = dir_ / ("c" + std::to_string(n_++) + ".toml");
    std::ofstream(p) << text;
    return p.string();
  }
  BrokerConfig load(const std::string& text) {
    BrokerConfig c;
    fbd::load_toml_file(write(text), c);
    return c;
  }

  std::filesystem::path dir_;
  int n_ = 0;
};

}  // namespace

// ---------------------------------------------------------------- names

TEST(ConfigNames, ValidNames) {
  EXPECT_TRUE(fbd::valid_name("cam0"));
  EXPECT_TRUE(fbd::valid_name("A-b_9"));
  EXPECT_TRUE(fbd::valid_name("-"));
  EXPECT_TRUE(fbd::valid_name(std::string(48, 'x')));
  EXPECT_FALSE(fbd::valid_name(std::string(49, 'x')));
  EXPECT_FALSE(fbd::valid_name(""));
  EXPECT_FALSE(fbd::valid_name("cam.0"));  // would split the shm name
  EXPECT_FALSE(fbd::valid_name("a/b"));
  EXPECT_FALSE(fbd::valid_name("a b"));
  EXPECT_FALSE(fbd::valid_name("caméra"));
  EXPECT_FALSE(fbd::valid_name(std::string("a\0b", 3)));
}

// ---------------------------------------------------------------- --camera specs

TEST(ConfigCameraSpec, FullSpec) {
  const CameraConfig c = fbd::parse_camera_spec(
      "sim:name=cam0,Width=1024,Height=512,PixelType=Mono16,FrameRate=200,slots=8,"
      "overflow=block,start=false,ring_mb=64");
  EXPECT_EQ(c.driver, "sim");
  EXPECT_EQ(c.stream.name, "cam0");
  EXPECT_EQ(c.stream.slots, 8u);
  EXPECT_EQ(c.stream.ring_mb, 64u);
  EXPECT_EQ(c.stream.overflow, Overflow::Block);
  EXPECT_FALSE(c.start);
  // Everything else is a camera property, in the order given.
  EXPECT_EQ(
      c.properties,
      (Props{{"Width", "1024"}, {"Height", "512"}, {"PixelType", "Mono16"}, {"FrameRate", "200"}}));
}

TEST(ConfigCameraSpec, Defaults) {
  const CameraConfig c = fbd::parse_camera_spec("sim");
  EXPECT_EQ(c.driver, "sim");
  EXPECT_EQ(c.stream.name, "");
  EXPECT_EQ(c.stream.slots, 32u);
  EXPECT_EQ(c.stream.ring_mb, 0u);
  EXPECT_EQ(c.stream.overflow, Overflow::Drop);
  EXPECT_EQ(c.stream.block_timeout, std::chrono::milliseconds(1000));
  EXPECT_TRUE(c.start);
  EXPECT_TRUE(c.properties.empty());

  const CameraConfig d = fbd::parse_camera_spec("aravis:");
  EXPECT_EQ(d.driver, "aravis");
  EXPECT_TRUE(d.properties.empty());
}

TEST(ConfigCameraSpec, OddButValidSpellings) {
  // Empty items are skipped; a value may hold '=' and ':'; the last of a key wins.
  const CameraConfig c =
      fbd::parse_camera_spec("sim:,name=a,,Tag=x=y,Path=/dev/v:1,slots=4,slots=6,overflow=drop,");
  EXPECT_EQ(c.stream.name, "a");
  EXPECT_EQ(c.stream.slots, 6u);
  EXPECT_EQ(c.stream.overflow, Overflow::Drop);
  EXPECT_EQ(c.properties, (Props{{"Tag", "x=y"}, {"Path", "/dev/v:1"}}));
  EXPECT_TRUE(fbd::parse_camera_spec("sim:start=true").start);
  EXPECT_EQ(fbd::parse_camera_spec("sim:Empty=").properties, (Props{{"Empty", ""}}));
}

TEST(ConfigCameraSpec, Errors) {
  expect_config_error([] { fbd::parse_camera_spec(":name=x"); }, "no driver");
  expect_config_error([] { fbd::parse_camera_spec(""); }, "no driver");
  expect_config_error([] { fbd::parse_camera_spec("sim:Width"); }, "KEY=VALUE");
  expect_config_error([] { fbd::parse_camera_spec("sim:=5"); }, "KEY=VALUE");
  expect_config_error([] { fbd::parse_camera_spec("sim:slots=1"); }, "slots");
  expect_config_error([] { fbd::parse_camera_spec("sim:slots=65537"); }, "slots");
  expect_config_error([] { fbd::parse_camera_spec("sim:slots=abc"); }, "slots");
  expect_config_error([] { fbd::parse_camera_spec("sim:slots=8x"); }, "slots");
  expect_config_error([] { fbd::parse_camera_spec("sim:slots=-4"); }, "slots");
  expect_config_error([] { fbd::parse_camera_spec("sim:slots="); }, "slots");
  expect_config_error([] { fbd::parse_camera_spec("sim:slots= 8"); }, "slots");
  expect_config_error([] { fbd::parse_camera_spec("sim:slots=99999999999"); }, "slots");
  expect_config_error([] { fbd::parse_camera_spec("sim:ring_mb=0"); }, "ring_mb");
  expect_config_error([] { fbd::parse_camera_spec("sim:overflow=wait"); }, "overflow");
  expect_config_error([] { fbd::parse_camera_spec("sim:overflow=Drop"); }, "overflow");
  expect_config_error([] { fbd::parse_camera_spec("sim:start=yes"); }, "start");
  EXPECT_EQ(fbd::parse_camera_spec("sim:slots=2").stream.slots, 2u);
  EXPECT_EQ(fbd::parse_camera_spec("sim:slots=65536").stream.slots, 65536u);
}

// ---------------------------------------------------------------- TOML

TEST_F(TomlFile, TopLevelKeysAndCameras) {
  const BrokerConfig c = load(R"(
instance = "scope1"
runtime_dir = "/tmp/rt"
socket = "/tmp/rt/x.sock"
log_level = "debug"
default_camera = false
lock_memory = true

[[camera]]
driver = "sim"
name = "left"
slots = 16
overflow = "block"
start = false

[camera.properties]
Width = 2048
Height = 1024
PixelType = "Mono8"
FrameRate = 12.5
Pattern = "counter"

[[camera]]
name = "right"
ring_mb = 256
)");
  EXPECT_EQ(c.instance, "scope1");
  EXPECT_EQ(c.runtime_dir, "/tmp/rt");
  EXPECT_EQ(c.socket_path, "/tmp/rt/x.sock");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_FALSE(c.default_camera);
  EXPECT_TRUE(c.lock_memory);
  ASSERT_EQ(c.cameras.size(), 2u);

  const CameraConfig& l = c.cameras[0];
  EXPECT_EQ(l.driver, "sim");
  EXPECT_EQ(l.stream.name, "left");
  EXPECT_EQ(l.stream.slots, 16u);
  EXPECT_EQ(l.stream.overflow, Overflow::Block);
  EXPECT_FALSE(l.start);
  ASSERT_EQ(l.properties.size(), 5u);
  // Numbers become text the camera's property parser accepts.
  std::map<std::string, std::string> props(l.properties.begin(), l.properties.end());
  EXPECT_EQ(props["Width"], "2048");
  EXPECT_EQ(props["Height"], "1024");
  EXPECT_EQ(props["PixelType"], "Mono8");
  EXPECT_EQ(props["Pattern"], "counter");
  EXPECT_DOUBLE_EQ(std::stod(props["FrameRate"]), 12.5);

  const CameraConfig& r = c.cameras[1];
  EXPECT_EQ(r.driver, "sim");  // the default driver
  EXPECT_EQ(r.stream.name, "right");
  EXPECT_EQ(r.stream.ring_mb, 256u);
  EXPECT_EQ(r.stream.slots, 32u);
  EXPECT_EQ(r.stream.overflow, Overflow::Drop);
  EXPECT_TRUE(r.start);
  EXPECT_TRUE(r.properties.empty());
}

TEST_F(TomlFile, GroupOwnsTheSegmentsOfEveryCamera) {
  BrokerConfig c = load("group = \"root\"\n[[camera]]\nname = \"a\"\n[[camera]]\nname = \"b\"\n");
  EXPECT_EQ(c.group, "root");
  fbd::finalize(c);
  EXPECT_EQ(c.group_id, 0);
  for (const auto& cam : c.cameras) EXPECT_EQ(cam.stream.group, 0) << cam.stream.name;

  BrokerConfig none = load("[[camera]]\nname = \"a\"\n");
  fbd::finalize(none);
  EXPECT_EQ(none.group_id, -1);  // the broker's own group
  EXPECT_EQ(none.cameras[0].stream.group, -1);

  BrokerConfig bad = load("group = \"no-such-group-fb\"\n");
  expect_config_error([&] { fbd::finalize(bad); }, "group 'no-such-group-fb' does not exist");
}

TEST_F(TomlFile, ControlGroupIsResolvedToItsGid) {
  BrokerConfig c = load("control_group = \"root\"\n");
  EXPECT_EQ(c.control_group, "root");
  fbd::finalize(c);
  EXPECT_EQ(c.control_group_id, 0);
  EXPECT_EQ(c.group_id, -1);  // the socket's group is another setting

  BrokerConfig flag;
  flag.control_group = "root";  // --control-group wins over the file
  fbd::load_toml_file(write("control_group = \"no-such-group-fb\"\n"), flag);
  EXPECT_EQ(flag.control_group, "root");

  BrokerConfig none = load("");
  fbd::finalize(none);
  EXPECT_EQ(none.control_group_id, -1);  // anyone who can connect

  BrokerConfig bad = load("control_group = \"no-such-group-fb\"\n");
  expect_config_error([&] { fbd::finalize(bad); },
                      "control_group 'no-such-group-fb' does not exist");
}

TEST_F(TomlFile, PublishGroupAndRingLimit) {
  BrokerConfig c = load("publish_group = \"root\"\nmax_publish_mb = 512\n");
  fbd::finalize(c);
  EXPECT_EQ(c.publish_group_id, 0);
  EXPECT_EQ(c.max_publish_mb, 512u);

  BrokerConfig none = load("");
  fbd::finalize(none);
  EXPECT_EQ(none.publish_group_id, -1);  // anyone who can connect publishes
  EXPECT_EQ(none.max_publish_mb, 0u);    // a quarter of the RAM

  BrokerConfig bad = load("publish_group = \"no-such-group-fb\"\n");
  expect_config_error([&] { fbd::finalize(bad); },
                      "publish_group 'no-such-group-fb' does not exist");
  expect_config_error([&] { load("max_publish_mb = -1\n"); },
                      "max_publish_mb must be a whole number of MiB");
  expect_config_error([&] { load("max_publish_mb = \"big\"\n"); },
                      "max_publish_mb must be a whole number of MiB");
}

// A user's own broker wins; the system service's socket is the fallback.
TEST_F(TomlFile, ClientsFallBackToTheSystemSocket) {
  const std::string own = (dir_ / "own.sock").string(), system = (dir_ / "system.sock").string();
  EXPECT_EQ(framebroker::choose_socket_path(own, system), own);  // neither: name the user's
  std::ofstream(system) << "";
  EXPECT_EQ(framebroker::choose_socket_path(own, system), system);
  std::ofstream(own) << "";
  EXPECT_EQ(framebroker::choose_socket_path(own, system), own);
}

TEST_F(TomlFile, FloatPropertiesKeepTheirValue) {
  // A float reaches the camera as text; it must still mean the same number.
  const BrokerConfig c = load(R"(
[[camera]]
[camera.properties]
Small = 0.0000125
Tiny = 2.5e-9
Big = 1.0e12
Third = 0.333333333333
)");
  ASSERT_EQ(c.cameras.size(), 1u);
  std::map<std::string, std::string> props(c.cameras[0].properties.begin(),
                                           c.cameras[0].properties.end());
  EXPECT_DOUBLE_EQ(std::stod(props["Small"]), 0.0000125) << props["Small"];
  EXPECT_DOUBLE_EQ(std::stod(props["Tiny"]), 2.5e-9) << props["Tiny"];
  EXPECT_DOUBLE_EQ(std::stod(props["Big"]), 1.0e12) << props["Big"];
  EXPECT_DOUBLE_EQ(std::stod(props["Third"]), 0.333333333333) << props["Third"];
}

TEST_F(TomlFile, EmptyFileChangesNothing) {
  const BrokerConfig c = load("");
  const BrokerConfig d;
  EXPECT_EQ(c.instance, d.instance);
  EXPECT_EQ(c.runtime_dir, d.runtime_dir);
  EXPECT_EQ(c.socket_path, d.socket_path);
  EXPECT_EQ(c.log_level, d.log_level);
  EXPECT_EQ(c.default_camera, d.default_camera);
  EXPECT_EQ(c.lock_memory, d.lock_memory);
  EXPECT_TRUE(c.cameras.empty());
}

TEST_F(TomlFile, CamerasAreAddedAfterThoseAlreadyThere) {
  BrokerConfig c;
  c.cameras.push_back(fbd::parse_camera_spec("sim:name=first"));
  fbd::load_toml_file(write("[[camera]]\nname = \"second\"\n"), c);
  ASSERT_EQ(c.cameras.size(), 2u);
  EXPECT_EQ(c.cameras[0].stream.name, "first");
  EXPECT_EQ(c.cameras[1].stream.name, "second");
}

TEST_F(TomlFile, ValuesSetByFlagsWin) {
  // main() parses the flags first, then loads the file into the same config.
  BrokerConfig c;
  c.instance = "fromflag";
  c.runtime_dir = "/flag/rt";
  c.socket_path = "/flag/s.sock";
  fbd::load_toml_file(write(R"(
instance = "fromfile"
runtime_dir = "/file/rt"
socket = "/file/s.sock"
)"),
                      c);
  EXPECT_EQ(c.instance, "fromflag");
  EXPECT_EQ(c.runtime_dir, "/flag/rt");
  EXPECT_EQ(c.socket_path, "/flag/s.sock");
}

TEST_F(TomlFile, LogLevelAndLockMemoryFlagsWin) {
  // --log-level debug --lock-memory, and a file that says otherwise.
  BrokerConfig c;
  c.log_level = "debug";
  c.lock_memory = true;
  fbd::load_toml_file(write("log_level = \"warn\"\nlock_memory = false\n"), c);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_TRUE(c.lock_memory);
}

TEST_F(TomlFile, UnknownKeys) {
  expect_config_error([&] { load("instanse = \"x\"\n"); }, "unknown key 'instanse'");
  expect_config_error([&] { load("[[camera]]\nname = \"a\"\nslot = 4\n"); },
                      "unknown [[camera]] key 'slot'");
  expect_config_error([&] { load("[[camera]]\nWidth = 100\n"); },
                      "'Width'");  // belongs in properties
  expect_config_error([&] { load("[server]\nport = 1\n"); }, "unknown key 'server'");
}

TEST_F(TomlFile, BadValues) {
  expect_config_error([&] { load("[[camera]]\nslots = 1\n"); }, "slots");
  expect_config_error([&] { load("[[camera]]\nslots = 1.5\n"); }, "slots");
  expect_config_error([&] { load("[[camera]]\nslots = -3\n"); }, "slots");
  expect_config_error([&] { load("[[camera]]\nslots = \"many\"\n"); }, "slots");
  expect_config_error([&] { load("[[camera]]\nring_mb = 0\n"); }, "ring_mb");
  expect_config_error([&] { load("[[camera]]\noverflow = \"sometimes\"\n"); }, "overflow");
  expect_config_error([&] { load("[[camera]]\nstart = \"maybe\"\n"); }, "start");
  expect_config_error([&] { load("[[camera]]\nname = [1, 2]\n"); }, "'name'");
  expect_config_error([&] { load("[[camera]]\n[camera.properties]\nWidth = [1]\n"); }, "'Width'");
  expect_config_error([&] { load("[[camera]]\nproperties = 5\n"); }, "[camera.properties]");
  expect_config_error([&] { load("camera = \"sim\"\n"); }, "[[camera]]");
  expect_config_error([&] { load("[camera]\nname = \"a\"\n"); }, "[[camera]]");
  expect_config_error([&] { load("camera = [1, 2]\n"); }, "[[camera]]");
  // Booleans and strings for start both work.
  EXPECT_FALSE(load("[[camera]]\nstart = false\n").cameras[0].start);
  EXPECT_FALSE(load("[[camera]]\nstart = \"false\"\n").cameras[0].start);
  EXPECT_EQ(load("[[camera]]\nslots = \"12\"\n").cameras[0].stream.slots, 12u);
}

TEST_F(TomlFile, SyntaxErrorNamesFileLineAndColumn) {
  const std::string path = write("instance = \"ok\"\nthis is not toml\n");
  BrokerConfig c;
  expect_config_error([&] { fbd::load_toml_file(path, c); }, path + ":2:");
}

TEST_F(TomlFile, MissingFile) {
  BrokerConfig c;
  EXPECT_THROW(fbd::load_toml_file((dir_ / "nope.toml").string(), c), ConfigError);
}

// ---------------------------------------------------------------- finalize

TEST(ConfigFinalize, DefaultsFilledIn) {
  BrokerConfig c;
  c.runtime_dir = "/tmp/fb-rt";
  fbd::finalize(c);
  EXPECT_EQ(c.instance, "default");
  EXPECT_EQ(c.runtime_dir, "/tmp/fb-rt");
  EXPECT_EQ(c.socket_path, "/tmp/fb-rt/default.sock");
  // The simulated camera sim0 when none is configured.
  ASSERT_EQ(c.cameras.size(), 1u);
  EXPECT_EQ(c.cameras[0].driver, "sim");
  EXPECT_EQ(c.cameras[0].stream.name, "sim0");
  EXPECT_EQ(c.cameras[0].stream.slots, 32u);
  EXPECT_TRUE(c.cameras[0].start);
}

TEST(ConfigFinalize, DefaultRuntimeDirWhenNoneGiven) {
  BrokerConfig c;
  fbd::finalize(c);
  EXPECT_FALSE(c.runtime_dir.empty());
  EXPECT_EQ(c.socket_path, c.runtime_dir + "/default.sock");
}

TEST(ConfigFinalize, ExplicitSocketIsKept) {
  BrokerConfig c;
  c.runtime_dir = "/tmp/fb-rt";
  c.socket_path = "/elsewhere/b.sock";
  fbd::finalize(c);
  EXPECT_EQ(c.socket_path, "/elsewhere/b.sock");
}

TEST(ConfigFinalize, NoDefaultCameraWhenDisabledOrConfigured) {
  BrokerConfig a;
  a.runtime_dir = "/tmp/x";
  a.default_camera = false;
  fbd::finalize(a);
  EXPECT_TRUE(a.cameras.empty());

  BrokerConfig b;
  b.runtime_dir = "/tmp/x";
  b.cameras.push_back(fbd::parse_camera_spec("sim:name=only"));
  fbd::finalize(b);
  ASSERT_EQ(b.cameras.size(), 1u);
  EXPECT_EQ(b.cameras[0].stream.name, "only");
}

TEST(ConfigFinalize, UnnamedCamerasGetDriverNames) {
  BrokerConfig c;
  c.runtime_dir = "/tmp/x";
  c.cameras.push_back(fbd::parse_camera_spec("sim"));
  c.cameras.push_back(fbd::parse_camera_spec("sim:name=named"));
  c.cameras.push_back(fbd::parse_camera_spec("sim:Width=64"));
  fbd::finalize(c);
  ASSERT_EQ(c.cameras.size(), 3u);
  EXPECT_EQ(c.cameras[0].stream.name, "sim0");
  EXPECT_EQ(c.cameras[1].stream.name, "named");
  EXPECT_EQ(c.cameras[2].stream.name, "sim1");
}

TEST(ConfigFinalize, LockMemoryReachesEveryStream) {
  BrokerConfig c;
  c.runtime_dir = "/tmp/x";
  c.lock_memory = true;
  c.cameras.push_back(fbd::parse_camera_spec("sim:name=a"));
  c.cameras.push_back(fbd::parse_camera_spec("sim:name=b"));
  fbd::finalize(c);
  for (const auto& cam : c.cameras) EXPECT_TRUE(cam.stream.lock_memory) << cam.stream.name;
}

TEST(ConfigFinalize, BadNames) {
  for (const std::string& bad :
       std::vector<std::string>{"", "a.b", "a b", "x/y", std::string(49, 'i')}) {
    SCOPED_TRACE("instance '" + bad + "'");
    BrokerConfig c;
    c.runtime_dir = "/tmp/x";
    c.instance = bad;
    expect_config_error([&] { fbd::finalize(c); }, "instance name");
  }
  for (const std::string& bad :
       std::vector<std::string>{"a.b", "a b", "x/y", std::string(49, 'c')}) {
    SCOPED_TRACE("camera '" + bad + "'");
    BrokerConfig c;
    c.runtime_dir = "/tmp/x";
    CameraConfig cam;
    cam.stream.name = bad;
    c.cameras.push_back(cam);
    expect_config_error([&] { fbd::finalize(c); }, "camera name");
  }
}

TEST(ConfigFinalize, DuplicateNames) {
  BrokerConfig c;
  c.runtime_dir = "/tmp/x";
  c.cameras.push_back(fbd::parse_camera_spec("sim:name=cam"));
  c.cameras.push_back(fbd::parse_camera_spec("aravis:name=cam"));
  expect_config_error([&] { fbd::finalize(c); }, "two cameras are named 'cam'");
}

TEST(ConfigFinalize, UnnamedCamerasSkipNamesTakenExplicitly) {
  BrokerConfig c;
  c.runtime_dir = "/tmp/x";
  c.cameras.push_back(fbd::parse_camera_spec("sim"));
  c.cameras.push_back(fbd::parse_camera_spec("sim:name=sim0"));
  fbd::finalize(c);
  EXPECT_EQ(c.cameras[0].stream.name, "sim1");
  EXPECT_EQ(c.cameras[1].stream.name, "sim0");
}

TEST(ConfigFinalize, UnknownLogLevelIsRefused) {
  BrokerConfig c;
  c.runtime_dir = "/tmp/x";
  c.log_level = "verbose";
  expect_config_error([&] { fbd::finalize(c); }, "log_level 'verbose'");
}
