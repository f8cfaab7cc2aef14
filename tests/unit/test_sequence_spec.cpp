// SequenceSpec: parsing "t=3,c=2,z=20" with an order, the checks the broker also runs, and the
// mixed-radix mapping between a frame's position and its index (both ways).
#include <gtest/gtest.h>

#include <array>
#include <stdexcept>

#include "framebroker/sequence.hpp"

using framebroker::SequenceSpec;

TEST(SequenceSpec, ParsesAxesInTheOrderGiven) {
  const auto s = SequenceSpec::parse("t=3,c=2,z=20", "zct");
  EXPECT_EQ(s.order(), "zct");
  EXPECT_EQ(s.axes_text(), "z=20,c=2,t=3");
  EXPECT_EQ(s.frames(), 120u);
  EXPECT_EQ(s.size('c'), 2u);
  EXPECT_EQ(s.size('p'), 1u);
  EXPECT_EQ(SequenceSpec::parse(" t=3 , z=4 ").order(), "tz");  // default: as written
}

TEST(SequenceSpec, PositionAndIndexAreInverse) {
  const auto s = SequenceSpec::parse("t=3,c=2,z=20", "tcz");
  std::array<uint32_t, 3> index{};
  s.index_of(45, index);
  EXPECT_EQ(index, (std::array<uint32_t, 3>{1, 0, 5}));
  for (uint64_t p = 0; p < s.frames(); ++p) {
    s.index_of(p, index);
    EXPECT_EQ(s.position_of(index), p);
  }
  EXPECT_EQ(s.position_of(std::array<uint32_t, 3>{3, 0, 0}), std::nullopt);
  EXPECT_EQ(s.position_of(std::array<uint32_t, 2>{0, 0}), std::nullopt);
}

TEST(SequenceSpec, RefusesWhatTheBrokerWouldRefuse) {
  auto refused = [](const char* axes, const char* order, const char* why) {
    try {
      SequenceSpec::parse(axes, order);
      ADD_FAILURE() << axes << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  refused("t=3,x=2", "", "unknown axis 'x'");
  refused("t=3,t=2", "", "given twice");
  refused("t=0", "", "size 0");
  refused("t", "", "LETTER=SIZE");
  refused("t=3a", "", "whole number");
  refused("", "", "at least one axis");
  refused("t=3,c=2", "tz", "not among the axes");
  refused("t=3,c=2", "t", "each of the axes");
  auto s = SequenceSpec::parse("c=2");
  s.channels = {"488"};
  EXPECT_THROW(s.check(), std::invalid_argument);
  s.channels = {"488", "561"};
  s.metadata = "not json";
  EXPECT_THROW(s.check(), std::invalid_argument);
  s.metadata = R"({"ok": true})";
  EXPECT_NO_THROW(s.check());
}
