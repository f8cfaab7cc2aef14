// fbview's page in a real headless Chromium, against a real broker and a real fbview.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

#include "cdp.hpp"
#include "fbview_client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;

namespace {

// The seq the overlay shows ("... seq 1234 ..."), or -1.
int64_t overlay_seq(cdp::Page& page) {
  const std::string text = page.evaluate("document.getElementById('overlay').textContent");
  std::smatch m;
  static const std::regex seq(R"(seq\s+(\d+))");
  return std::regex_search(text, m, seq) ? std::stoll(m[1]) : -1;
}

// Statistics of what the canvas shows: size, darkest and brightest grey, lit pixels.
json canvas_stats(cdp::Page& page) {
  return page.evaluate(R"JS((() => {
    const c = document.getElementById('view');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lo = 255, hi = 0, lit = 0;
    for (let i = 0; i < d.length; i += 4) {
      const v = d[i + 1];
      lo = Math.min(lo, v); hi = Math.max(hi, v); if (v > 16) lit++;
    }
    return {width: c.width, height: c.height, lo, hi, lit};
  })())JS");
}

bool is_png(const std::string& bytes) {
  return bytes.size() > 1000 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

}  // namespace

TEST(FbviewBrowser, ThePageShowsLiveFramesWhileAnEverySubscriberMissesNothing) {
  if (!cdp::Browser::find_chromium()) GTEST_SKIP() << "chromium is not installed";
  Broker broker({"--no-default-camera", "--camera",
                 "sim:name=cam,Width=512,Height=512,FrameRate=200,Pattern=counter,slots=32",
                 "--camera", "sim:name=spots,Width=640,Height=480,FrameRate=50,Pattern=spots"});
  Viewer viewer(broker);
  cdp::Browser browser(1280, 800);
  cdp::Page page = browser.open(viewer.url() + "?stream=cam");
  page.wait_for("window.fbview && window.fbview.framesDrawn > 5", 30s);

  // A saver-like subscriber of the same stream at 200 fps while the page runs flat out.
  auto saver =
      broker.fbctl_async({"watch", "cam", "--frames", "1000", "--verify-counter", "--json"});
  const int64_t drawn_before = page.evaluate("window.fbview.framesDrawn");
  const std::string first = page.screenshot_png();
  const int64_t seq1 = overlay_seq(page);
  const json stats1 = canvas_stats(page);
  std::this_thread::sleep_for(1500ms);
  const std::string second = page.screenshot_png();
  const int64_t seq2 = overlay_seq(page);
  const json stats2 = canvas_stats(page);
  const int64_t drawn_after = page.evaluate("window.fbview.framesDrawn");

  EXPECT_TRUE(is_png(first) && is_png(second));
  EXPECT_NE(first, second) << "the picture did not change";
  EXPECT_GE(seq1, 0) << page.evaluate("document.getElementById('overlay').textContent");
  EXPECT_GT(seq2, seq1) << "the overlay's seq did not rise";
  for (const json& s : {stats1, stats2}) {  // min-max contrast over a counter ramp
    EXPECT_GT(s["width"].get<int>(), 100) << s;
    EXPECT_GT(s["hi"].get<int>() - s["lo"].get<int>(), 200) << s;
    EXPECT_GT(s["lit"].get<int>(), 10000) << s;
  }
  EXPECT_GT(drawn_after - drawn_before, 10) << "the page drew few frames in 1.5 s";

  expect_lossless(watch_summary(*saver), 1000);
  EXPECT_EQ(stream_of(broker.status(), "cam")["dropped"], 0);

  // The stream picker switches the page to another stream.
  page.evaluate(
      "(() => { const s = document.getElementById('stream'); s.value = 'spots';"
      " s.dispatchEvent(new Event('change')); })()");
  page.wait_for(
      "window.fbview.lastHeader && window.fbview.lastHeader.stream === 'spots' &&"
      " window.fbview.framesDrawn > 3",
      30s);
  EXPECT_EQ(page.evaluate("window.fbview.lastHeader.source_width"), 640);
  EXPECT_TRUE(page.console_errors().empty()) << page.console_errors().front();
  if (const char* path = std::getenv("FBVIEW_SCREENSHOT")) {  // the README's picture
    std::this_thread::sleep_for(1s);
    std::ofstream(path, std::ios::binary) << page.screenshot_png();
  }
}

TEST(FbviewBrowser, ThePageSaysTheBrokerIsGoneAndComesBackWithIt) {
  if (!cdp::Browser::find_chromium()) GTEST_SKIP() << "chromium is not installed";
  const std::vector<std::string> camera = {"--no-default-camera", "--camera",
                                           "sim:name=cam,FrameRate=100,Pattern=spots"};
  Broker broker(camera);
  Viewer viewer(broker);
  cdp::Browser browser(1024, 700);
  cdp::Page page = browser.open(viewer.url() + "?stream=cam");
  page.wait_for("window.fbview && window.fbview.framesDrawn > 2", 30s);
  broker.process().signal(SIGTERM);
  ASSERT_TRUE(broker.process().wait(10s));
  page.wait_for("window.fbview.broker === 'lost'", 20s);
  EXPECT_NE(page.evaluate("document.body.innerText").get<std::string>().find("broker gone"),
            std::string::npos);
  const int64_t drawn = page.evaluate("window.fbview.framesDrawn");
  broker.start(camera);
  page.wait_for("window.fbview.broker === 'connected' && window.fbview.framesDrawn > " +
                    std::to_string(drawn + 2),
                30s);
}
