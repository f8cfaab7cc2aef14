// fbbench save end to end, small: every format's rows (raw, zarr, zarr-lz4, zarr3, zarr3-lz4) are
// there with their baselines, and the files each zarr creates per second at 1 kHz are counted
// from the dataset (Zarr v3's shards make fewer files than v2's chunks). Timing is never
// asserted: only that each number was measured.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

TEST(FbbenchSave, EveryFormatHasItsRowsAndItsFilesPerSecondAt1kHz) {
  const Result r = run({FB_FBBENCH_BIN, "save", "--sizes", "64", "--frames", "64", "--paced-tries",
                        "1", "--baseline-runs", "1", "--free-seconds", "0.3", "--broker",
                        FB_BROKER_BIN, "--fbsave", FB_FBSAVE_BIN, "--json"},
                       110s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  std::map<std::string, json> paced;  // format -> its paced row
  std::set<std::string> formats;
  for (const json& row : j.at("rows")) {
    const std::string format = row.at("format");
    formats.insert(format);
    ASSERT_TRUE(row.contains("files")) << row.dump();
    ASSERT_TRUE(row.contains("files_per_s_at_1khz")) << row.dump();
    if (row.at("mode") == "paced") paced[format] = row;
  }
  EXPECT_EQ(formats, (std::set<std::string>{"raw", "zarr", "zarr-lz4", "zarr3", "zarr3-lz4"}));
  for (const char* f : {"zarr", "zarr-lz4", "zarr3", "zarr3-lz4"}) {
    SCOPED_TRACE(f);
    ASSERT_TRUE(paced.count(f));
    const json& row = paced[f];
    ASSERT_TRUE(row.at("error").is_null()) << row.dump();
    const uint64_t written = row.at("frames_written"), files = row.at("files");
    ASSERT_GT(written, 0u);
    ASSERT_GT(files, 0u);
    EXPECT_DOUBLE_EQ(row.at("files_per_s_at_1khz").get<double>(),
                     double(files) * 1000 / double(written));
    EXPECT_EQ(row.at("baseline"), std::string(f).ends_with("lz4") ? "py-zarr-lz4" : "py-zarr");
  }
  // 64 frames: v2 writes 4 chunks of 16 frames (+ 3 metadata files); v3 one shard (+ 2).
  EXPECT_GE(paced["zarr"].at("files").get<uint64_t>(), 4u + 3u);
  EXPECT_LT(paced["zarr3"].at("files_per_s_at_1khz").get<double>(),
            paced["zarr"].at("files_per_s_at_1khz").get<double>());
  EXPECT_EQ(paced["raw"].at("baseline"), "dd");
}

}  // namespace
