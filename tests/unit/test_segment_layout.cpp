// Segment::open_readonly against real POSIX shared-memory objects whose header was damaged after
// the broker wrote it: every kind of bad layout is refused with a message naming the segment and
// the fault, a good one maps, and the header is read once (later writes to it change nothing).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include "framebroker/internal/segment.hpp"

namespace shm = framebroker::shm;

namespace {

constexpr uint32_t kSlots = 4;
constexpr uint64_t kSlotBytes = 10000;  // not a page multiple: stride > slot_bytes

class SegmentLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "/fb.seglayout" + std::to_string(getpid()) + ".cam.1";
    writer_ = shm::Segment::create(name_, "seglayout", "cam", 1, kSlots, kSlotBytes, false);
  }
  void TearDown() override { shm::Segment::remove(name_); }

  // Rewrites the header through a read-write mapping of its own, as a hostile writer would.
  void corrupt(const std::function<void(shm::SegmentHeader&)>& edit) {
    const int fd = ::shm_open(name_.c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0) << strerror(errno);
    void* p =
        ::mmap(nullptr, sizeof(shm::SegmentHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    ASSERT_NE(p, MAP_FAILED) << strerror(errno);
    edit(*static_cast<shm::SegmentHeader*>(p));
    ::munmap(p, sizeof(shm::SegmentHeader));
  }
  void resize(off_t bytes) {
    const int fd = ::shm_open(name_.c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(::ftruncate(fd, bytes), 0) << strerror(errno);
    ::close(fd);
  }
  // The message open_readonly refuses the segment with, or nullopt when it maps.
  std::optional<std::string> refusal(std::optional<uint32_t> gen = std::nullopt) {
    try {
      shm::Segment::open_readonly(name_, gen);
      return std::nullopt;
    } catch (const std::runtime_error& e) {
      return e.what();
    }
  }

  const shm::SegmentHeader& good() const { return writer_->header(); }

  std::string name_;
  std::unique_ptr<shm::Segment> writer_;
};

TEST_F(SegmentLayout, AGoodSegmentMapsWithItsSlotsInside) {
  auto r = shm::Segment::open_readonly(name_, 1u);
  EXPECT_EQ(r->slots(), kSlots);
  EXPECT_EQ(r->slot_bytes(), kSlotBytes);
  const auto* base = r->slot(0).data() - good().data_offset;
  for (uint32_t i = 0; i < kSlots; ++i) {
    const auto s = r->slot(i);
    EXPECT_EQ(s.size(), kSlotBytes);
    EXPECT_LE(uint64_t(s.data() + s.size() - base), good().total_bytes) << "slot " << i;
  }
  EXPECT_THROW(r->slot(kSlots), std::out_of_range);
}

struct BadHeader {
  const char* what;
  std::function<void(shm::SegmentHeader&)> edit;
  const char* message;  // in the refusal, after the segment's name
};

TEST_F(SegmentLayout, EveryKindOfBadHeaderIsRefusedWithWhatIsWrong) {
  const uint64_t page = shm::page_size();
  const uint64_t huge = std::numeric_limits<uint64_t>::max() / page * page;
  const BadHeader cases[] = {
      {"magic", [](auto& h) { h.magic[0] = 'X'; }, "no framebroker magic"},
      {"layout version", [](auto& h) { h.layout_version = 2; }, "layout version is 2"},
      {"page size", [](auto& h) { h.page_bytes *= 16; }, "-byte pages, this machine has"},
      {"stream name", [](auto& h) { std::memset(h.stream, 'x', sizeof h.stream); },
       "stream name is not NUL-terminated"},
      {"instance name", [](auto& h) { std::memset(h.instance, 'x', sizeof h.instance); },
       "instance name is not NUL-terminated"},
      {"total_bytes larger", [&](auto& h) { h.total_bytes += page; }, "total_bytes = "},
      {"total_bytes smaller", [&](auto& h) { h.total_bytes -= page; }, "total_bytes = "},
      {"no slots", [](auto& h) { h.slots = 0; }, "slots = 0 "},
      {"slots huge", [](auto& h) { h.slots = 0xffffffffu; }, "slots = 4294967295 "},
      {"one slot more than fits", [](auto& h) { h.slots += 1; }, "run past the end of its"},
      {"slot_bytes zero", [](auto& h) { h.slot_bytes = 0; }, "slot_bytes = 0"},
      {"slot_bytes over stride", [](auto& h) { h.slot_bytes = h.slot_stride + 1; },
       "exceeds slot_stride"},
      {"stride unaligned", [](auto& h) { h.slot_stride += 8; }, "slot_stride = "},
      {"stride doubled", [](auto& h) { h.slot_stride *= 2; }, "run past the end of its"},
      {"stride overflows", [&](auto& h) { h.slot_stride = huge; }, "run past the end of its"},
      {"data_offset unaligned", [](auto& h) { h.data_offset += 64; }, "data_offset = "},
      {"data_offset past the end", [](auto& h) { h.data_offset = h.total_bytes; },
       "run past the end of its"},
      {"data_offset overflows", [&](auto& h) { h.data_offset = huge; }, "run past the end of its"},
      {"data_offset over the records", [](auto& h) { h.data_offset = 0; }, "run past data_offset"},
      {"records_offset in the header", [](auto& h) { h.records_offset = 0; },
       "records_offset = 0 overlaps the header"},
      {"records_offset misaligned", [](auto& h) { h.records_offset += 3; }, "misaligned"},
      {"records over the data", [](auto& h) { h.records_offset = h.data_offset; },
       "run past data_offset"},
  };
  const shm::SegmentHeader original = good();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    corrupt([&](auto& h) {
      h = original;
      c.edit(h);
    });
    const auto why = refusal();
    if (!why) {
      ADD_FAILURE() << "a header with a bad " << c.what << " was accepted";
      continue;
    }
    EXPECT_NE(why->find("segment " + name_ + " is unusable: "), std::string::npos) << *why;
    EXPECT_NE(why->find(c.message), std::string::npos) << *why;
  }
  corrupt([&](auto& h) { h = original; });
  EXPECT_EQ(refusal(), std::nullopt);
}

TEST_F(SegmentLayout, AGenerationOtherThanTheAnnouncedOneIsRefused) {
  const auto why = refusal(2u);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("it holds generation 1, the broker announced generation 2"),
            std::string::npos)
      << *why;
  EXPECT_EQ(refusal(1u), std::nullopt);
}

TEST_F(SegmentLayout, AnObjectLargerOrSmallerThanItsHeaderSaysIsRefused) {
  resize(off_t(good().total_bytes + shm::page_size()));
  auto why = refusal();
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("the shared memory object has " +
                      std::to_string(good().total_bytes + shm::page_size()) + " bytes"),
            std::string::npos)
      << *why;

  resize(off_t(good().data_offset));  // the slots cut off
  why = refusal();
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("total_bytes = " + std::to_string(good().total_bytes)), std::string::npos)
      << *why;

  resize(16);
  why = refusal();
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("it is 16 bytes, smaller than its header"), std::string::npos) << *why;
}

TEST_F(SegmentLayout, AMissingSegmentIsSegmentMissing) {
  shm::Segment::remove(name_);
  EXPECT_THROW(shm::Segment::open_readonly(name_), shm::SegmentMissing);
}

TEST_F(SegmentLayout, TheLayoutIsReadOnceAtMapTime) {
  auto r = shm::Segment::open_readonly(name_);
  const auto before = r->slot(kSlots - 1);
  corrupt([](auto& h) {
    h.slots = 0xffffffffu;
    h.slot_stride = uint64_t(1) << 40;
    h.slot_bytes = uint64_t(1) << 40;
    h.data_offset = uint64_t(1) << 40;
  });
  EXPECT_EQ(r->slots(), kSlots);
  EXPECT_EQ(r->slot_bytes(), kSlotBytes);
  const auto after = r->slot(kSlots - 1);
  EXPECT_EQ(after.data(), before.data());
  EXPECT_EQ(after.size(), before.size());
  EXPECT_THROW(r->slot(kSlots), std::out_of_range);
  // The broker's own view is its copy too.
  const uint64_t stride = shm::round_up_to_page(kSlotBytes);
  EXPECT_EQ(writer_->slots(), kSlots);
  EXPECT_EQ(writer_->writable_slot(kSlots - 1).data() - writer_->writable_slot(0).data(),
            std::ptrdiff_t((kSlots - 1) * stride));
  EXPECT_EQ(writer_->writable_slot(0).size(), kSlotBytes);
}

}  // namespace
