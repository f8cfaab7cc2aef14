// A running broker's segment header rewritten behind its back (by root, or anyone else who can
// open /dev/shm/fb.<instance>.<stream>.<gen> read-write): a new subscriber gets a clear error on
// subscribe, while the broker and a subscriber that mapped the segment before keep going on the
// layout they checked when they mapped it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <ostream>
#include <string>

#include "framebroker/client.hpp"
#include "framebroker/internal/segment.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace shm = framebroker::shm;

namespace {

struct Corruption {
  const char* name;
  std::function<void(shm::SegmentHeader&)> edit;
  const char* message;  // what the refusal says is wrong
};

void PrintTo(const Corruption& c, std::ostream* os) {
  *os << c.name;
}

class HostileSegment : public ::testing::TestWithParam<Corruption> {};

// Applies `edit` to the header through a read-write mapping of the segment's file.
void rewrite_header(const std::string& path, const std::function<void(shm::SegmentHeader&)>& edit) {
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  void* p = ::mmap(nullptr, sizeof(shm::SegmentHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  edit(*static_cast<shm::SegmentHeader*>(p));
  ::munmap(p, sizeof(shm::SegmentHeader));
}

}  // namespace

TEST_P(HostileSegment, ANewSubscriberIsRefusedAndNoOneElseIsHurt) {
  Broker b({"--no-default-camera", "--camera",
            "sim:name=cam,Width=128,Height=128,Pattern=counter,FrameRate=200,slots=32"});
  auto watcher = b.fbctl_async({"watch", "cam", "--frames", "600", "--verify-counter", "--json"});
  ASSERT_TRUE(
      b.wait_status([&](const json& s) { return !subscribers(s, watcher->pid()).empty(); }));
  const uint32_t gen = stream_of(b.status(), "cam")["gen"].get<uint32_t>();
  const std::string segment = shm::segment_name(b.instance(), "cam", gen);
  const std::string path = "/dev/shm" + segment;

  shm::SegmentHeader original{};
  rewrite_header(path, [&](shm::SegmentHeader& h) {
    original = h;
    GetParam().edit(h);
  });

  auto client = framebroker::Client::connect({.socket_path = b.socket()});
  try {
    client.subscribe("cam");
    ADD_FAILURE() << "subscribed to a segment with a bad " << GetParam().name;
  } catch (const framebroker::Error& e) {
    EXPECT_EQ(e.code(), framebroker::Errc::Protocol) << e.what();
    const std::string what = e.what();
    EXPECT_NE(what.find("cannot subscribe to cam"), std::string::npos) << what;
    EXPECT_NE(what.find("segment " + segment + " is unusable"), std::string::npos) << what;
    EXPECT_NE(what.find(GetParam().message), std::string::npos) << what;
  }

  // The broker writes on through the layout it made, the watcher reads through the one it
  // checked: all 600 frames, most of them after the damage, arrive whole and in order.
  expect_lossless(watch_summary(*watcher), 600);
  EXPECT_TRUE(b.process().running());
  const json s = b.status();
  EXPECT_TRUE(slot_invariant_holds(s));
  EXPECT_EQ(stream_of(s, "cam")["gen"].get<uint32_t>(), gen);
  // The refused client holds nothing once it has read (and given back) what the broker sent
  // before its Unsubscribe: the status reply comes after those.
  client.status();
  client.flush();
  EXPECT_TRUE(b.wait_status([](const json& st) { return subscribers(st, getpid()).empty(); }));

  // The header was all that was wrong: restored, the same client subscribes and gets frames.
  rewrite_header(path, [&](shm::SegmentHeader& h) { h = original; });
  auto sub = client.subscribe("cam");
  auto frame = sub.next(5s);
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->pixels().size(), 128u * 128u * 2);  // Mono16
}

INSTANTIATE_TEST_SUITE_P(
    Headers, HostileSegment,
    ::testing::Values(
        Corruption{"slots", [](auto& h) { h.slots = 0xffffffffu; }, "slots = 4294967295"},
        Corruption{"slot_stride", [](auto& h) { h.slot_stride = uint64_t(1) << 40; },
                   "run past the end"},
        Corruption{"data_offset", [](auto& h) { h.data_offset = h.total_bytes; },
                   "run past the end"},
        Corruption{"generation", [](auto& h) { h.gen += 1; }, "the broker announced generation"}),
    [](const auto& info) { return std::string(info.param.name); });
