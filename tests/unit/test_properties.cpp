#include <gtest/gtest.h>

#include <string>

#include "cameras/properties.hpp"

namespace fbc = framebroker::cameras;
using Kind = fbc::PropertyError::Kind;

namespace {

fbc::PropertySet make_set() {
  fbc::PropertySet s;
  s.add({"Width", fbc::PropertyType::Int, "512", "px", 8, 4096, {}, false, true});
  s.add({"Exposure", fbc::PropertyType::Float, "1", "ms", 0.001, 10000, {}, false, false});
  s.add({"Mode", fbc::PropertyType::Enum, "a", "", {}, {}, {"a", "b"}, false, false});
  s.add({"Label", fbc::PropertyType::String, "", "", {}, {}, {}, false, false});
  s.add({"Depth", fbc::PropertyType::Int, "16", "bit", {}, {}, {}, true, false});
  s.add({"Binning", fbc::PropertyType::Int, "1", "", 1, 4, {"1", "2", "4"}, false, true});
  return s;
}

// Runs f, expects a PropertyError of `kind`, and returns its message.
template <class F>
std::string error_of(Kind kind, F&& f) {
  try {
    f();
  } catch (const fbc::PropertyError& e) {
    EXPECT_EQ(e.kind, kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no PropertyError thrown";
  return "";
}

}  // namespace

TEST(Properties, NamesKeepInsertionOrder) {
  auto s = make_set();
  EXPECT_EQ(s.names(),
            (std::vector<std::string>{"Width", "Exposure", "Mode", "Label", "Depth", "Binning"}));
  EXPECT_EQ(s.name_list(), "Width, Exposure, Mode, Label, Depth, Binning");
  ASSERT_EQ(s.all().size(), 6u);
  EXPECT_EQ(s.all()[2].name, "Mode");
}

TEST(Properties, SetsAndCanonicalisesValues) {
  auto s = make_set();
  s.set("Width", "1024");
  EXPECT_EQ(s.get("Width"), "1024");
  EXPECT_EQ(s.get_int("Width"), 1024);
  s.set("Width", "0064");
  EXPECT_EQ(s.get("Width"), "64");
  s.set("Exposure", "2.50");
  EXPECT_EQ(s.get("Exposure"), "2.5");
  EXPECT_DOUBLE_EQ(s.get_float("Exposure"), 2.5);
  s.set("Exposure", "1e-3");
  EXPECT_EQ(s.get("Exposure"), "0.001");
  s.set("Exposure", "10000");
  EXPECT_EQ(s.get("Exposure"), "10000");
  s.set("Mode", "b");
  EXPECT_EQ(s.get("Mode"), "b");
  s.set("Label", "any text at all");
  EXPECT_EQ(s.get("Label"), "any text at all");
  s.set("Binning", "4");
  EXPECT_EQ(s.get_int("Binning"), 4);
}

TEST(Properties, UnknownNameListsKnownOnes) {
  auto s = make_set();
  auto msg = error_of(Kind::Unknown, [&] { s.set("Foo", "1"); });
  EXPECT_EQ(msg, "unknown property 'Foo'; known: Width, Exposure, Mode, Label, Depth, Binning");
  error_of(Kind::Unknown, [&] { s.get("Foo"); });
  error_of(Kind::Unknown, [&] { s.info("Foo"); });
  error_of(Kind::Unknown, [&] { s.force("Foo", "1"); });
  EXPECT_FALSE(s.has("Foo"));
  EXPECT_TRUE(s.has("Width"));
}

TEST(Properties, IntOutOfRangeStatesTheRange) {
  auto s = make_set();
  auto msg = error_of(Kind::Invalid, [&] { s.set("Width", "99999"); });
  EXPECT_EQ(msg, "Width must be an integer in [8, 4096], got '99999'");
  error_of(Kind::Invalid, [&] { s.set("Width", "7"); });
  s.set("Width", "8");
  s.set("Width", "4096");
  EXPECT_EQ(s.get("Width"), "4096");
}

TEST(Properties, IntRejectsJunk) {
  auto s = make_set();
  for (const char* bad : {"12x", "", "x12", "12.5", " 12", "1e3"})
    error_of(Kind::Invalid, [&] { s.set("Width", bad); });
  EXPECT_EQ(s.get("Width"), "512");  // unchanged after failures
}

TEST(Properties, IntWithAllowedValuesRejectsOthers) {
  auto s = make_set();
  auto msg = error_of(Kind::Invalid, [&] { s.set("Binning", "3"); });
  EXPECT_NE(msg.find("1, 2, 4"), std::string::npos) << msg;
  EXPECT_EQ(s.get("Binning"), "1");
}

TEST(Properties, FloatChecksLimitsAndJunk) {
  auto s = make_set();
  auto msg = error_of(Kind::Invalid, [&] { s.set("Exposure", "0"); });
  EXPECT_EQ(msg, "Exposure must be a number in [0.001, 10000], got '0'");
  error_of(Kind::Invalid, [&] { s.set("Exposure", "10000.5"); });
  error_of(Kind::Invalid, [&] { s.set("Exposure", "1ms"); });
  error_of(Kind::Invalid, [&] { s.set("Exposure", "nan"); });
  error_of(Kind::Invalid, [&] { s.set("Exposure", "inf"); });
  EXPECT_EQ(s.get("Exposure"), "1");
}

TEST(Properties, EnumMustBeAllowed) {
  auto s = make_set();
  auto msg = error_of(Kind::Invalid, [&] { s.set("Mode", "c"); });
  EXPECT_NE(msg.find("a, b"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'c'"), std::string::npos) << msg;
  error_of(Kind::Invalid, [&] { s.set("Mode", "A"); });
}

TEST(Properties, ReadOnlyRefusesSetButForceWorks) {
  auto s = make_set();
  error_of(Kind::ReadOnly, [&] { s.set("Depth", "8"); });
  EXPECT_EQ(s.get("Depth"), "16");
  s.force("Depth", "8");
  EXPECT_EQ(s.get_int("Depth"), 8);
}

TEST(Properties, FormatPropertyIsBusyWhileRunning) {
  auto s = make_set();
  auto msg = error_of(Kind::Busy, [&] { s.set("Width", "256", /*running=*/true); });
  EXPECT_EQ(msg, "stop the camera before changing Width");
  EXPECT_EQ(s.get("Width"), "512");
  s.set("Exposure", "5", /*running=*/true);  // not a format property
  EXPECT_EQ(s.get("Exposure"), "5");
}

TEST(Properties, TypeNames) {
  EXPECT_STREQ(fbc::to_string(fbc::PropertyType::Int), "int");
  EXPECT_STREQ(fbc::to_string(fbc::PropertyType::Enum), "enum");
}
