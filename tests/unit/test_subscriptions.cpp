// The subscription registry: one entry per (connection, stream), found both ways, removed once.
#include <gtest/gtest.h>

#include "subscriptions.hpp"

namespace framebroker::daemon {
namespace {

TEST(Subscriptions, AddFindRemove) {
  Subscriptions subs;
  const auto a = subs.add(1, "sim0");
  const auto b = subs.add(1, "sim1");
  const auto c = subs.add(2, "sim0");
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  ASSERT_NE(subs.find(a), nullptr);
  EXPECT_EQ(subs.find(a)->connection, 1u);
  EXPECT_EQ(subs.find(a)->stream, "sim0");
  EXPECT_EQ(subs.find(2, "sim0"), c);
  EXPECT_FALSE(subs.find(2, "sim1").has_value());
  EXPECT_EQ(subs.of_connection(1), (std::vector<Subscriptions::Id>{a, b}));
  EXPECT_EQ(subs.of_stream("sim0"), (std::vector<Subscriptions::Id>{a, c}));

  subs.remove(a);
  EXPECT_EQ(subs.find(a), nullptr);
  EXPECT_FALSE(subs.find(1, "sim0").has_value());
  EXPECT_EQ(subs.of_connection(1), (std::vector<Subscriptions::Id>{b}));
  subs.remove(a);  // a second remove changes nothing
  EXPECT_EQ(subs.size(), 2u);
}

TEST(Subscriptions, OnePerConnectionAndStream) {
  Subscriptions subs;
  subs.add(7, "cam");
  EXPECT_THROW(subs.add(7, "cam"), std::logic_error);
  EXPECT_EQ(subs.size(), 1u);
}

TEST(Subscriptions, IdsAreNotReused) {
  Subscriptions subs;
  const auto a = subs.add(1, "s");
  subs.remove(a);
  EXPECT_NE(subs.add(1, "s"), a);
}

TEST(Subscriptions, ForConnectionStaysWithinItsConnection) {
  Subscriptions subs;
  subs.add(1, "z");
  const auto x = subs.add(2, "a");
  const auto y = subs.add(2, "b");
  subs.add(3, "a");
  std::vector<Subscriptions::Id> seen;
  subs.for_connection(2, [&](Subscriptions::Id id, const std::string&) { seen.push_back(id); });
  EXPECT_EQ(seen, (std::vector<Subscriptions::Id>{x, y}));
}

}  // namespace
}  // namespace framebroker::daemon
