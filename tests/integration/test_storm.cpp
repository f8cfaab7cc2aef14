// The kill storm (fbbench storm): subscribers SIGKILLed at random points, some first SIGSTOPped,
// next to a lossless fbsave. The full 1000-kill run is in docs/reliability.md; here a short one
// with the same checks, which exits 1 on any fault.
#include <gtest/gtest.h>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

TEST(Storm, KilledSubscribersLeakNoSlotAndTheSaverMissesNothing) {
  const Result r = run({FB_FBBENCH_BIN, "storm", "--kills", "150", "--victims", "6", "--rate",
                        "200", "--size", "128", "--seed", "18", "--dir", "/tmp", "--json"},
                       180s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  SCOPED_TRACE(j.dump());
  EXPECT_EQ(j.at("kills"), 150);
  EXPECT_EQ(j.at("leaked_slots"), 0);
  EXPECT_EQ(j.at("saver_missed"), 0);
  EXPECT_EQ(j.at("invariant_failures"), 0);
  EXPECT_EQ(j.at("dead_subscribers"), 0);
  EXPECT_GE(j.at("checks").get<int>(), 2)
      << "the invariant is checked every 100 kills and at the end";
  EXPECT_GT(j.at("saver_frames").get<int>(), 0);
  EXPECT_GT(j.at("stopped").get<int>(), 0) << "some victims are SIGSTOPped before they die";
}

// The storm's own check can fail: a saver that exits at once (here /bin/false in fbsave's place)
// ends the run with an error that says so, not with a report of zeros.
TEST(Storm, ASaverThatFailsFailsTheRun) {
  const Result r = run({FB_FBBENCH_BIN, "storm", "--kills", "5", "--fbsave", "/bin/false", "--dir",
                        "/tmp", "--json"},
                       60s);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find("fbsave exited at start"), std::string::npos) << r.err;
}
