// The DevTools client against a real headless Chromium, with data: URL pages.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <stdexcept>

#include "cdp.hpp"

namespace fbtest::cdp {
namespace {

#define SKIP_WITHOUT_CHROMIUM()  \
  if (!Browser::find_chromium()) \
  GTEST_SKIP() << "chromium not installed (apt-get install chromium); skipping browser test"

bool contains(const std::vector<std::string>& v, const std::string& needle) {
  for (const auto& s : v)
    if (s.find(needle) != std::string::npos) return true;
  return false;
}

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no exception)";
}

std::uint32_t be32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(s.at(at + i));
  return v;
}

TEST(Cdp, CanvasEvaluateWaitForScreenshot) {
  SKIP_WITHOUT_CHROMIUM();
  Browser browser(640, 480);
  Page page = browser.open(data_url(R"(<!doctype html>
<body style="margin:0"><canvas id="c" width="200" height="100"></canvas>
<script>
  const ctx = document.getElementById('c').getContext('2d');
  ctx.fillStyle = 'rgb(255, 0, 0)';
  ctx.fillRect(0, 0, 200, 100);
  setTimeout(() => { window.late = 'ready'; }, 300);
</script></body>)"));

  EXPECT_EQ(page.evaluate("1 + 2"), 3);
  EXPECT_EQ(page.evaluate("document.getElementById('c').width * 2"), 400);
  EXPECT_EQ(page.evaluate("Array.from(document.getElementById('c').getContext('2d')"
                          ".getImageData(10, 10, 1, 1).data)"),
            nlohmann::json({255, 0, 0, 255}));
  EXPECT_EQ(page.evaluate("({a: [1, 'x'], b: null})"),
            nlohmann::json({{"a", {1, "x"}}, {"b", nullptr}}));
  EXPECT_EQ(page.evaluate("undefined"), nullptr);
  EXPECT_EQ(page.evaluate("new Promise(r => setTimeout(() => r(42), 20))"), 42);

  EXPECT_EQ(page.wait_for("window.late", 20s), "ready");
  EXPECT_EQ(page.wait_for("window.never", 300ms), nullptr);  // timed out: the last value
  EXPECT_EQ(page.wait_for("document.querySelector('#c').width", 5s), 200);

  const std::string png = page.screenshot_png();
  ASSERT_GT(png.size(), 24u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(png, 16), 640u);
  EXPECT_EQ(be32(png, 20), 480u);

  // A second navigation on the same page.
  page.navigate(data_url("<title>two</title>"));
  EXPECT_EQ(page.evaluate("document.title"), "two");
  EXPECT_TRUE(page.console_errors().empty());
}

TEST(Cdp, JsExceptionsThrow) {
  SKIP_WITHOUT_CHROMIUM();
  Browser browser;
  Page page = browser.open();
  EXPECT_NE(what_of([&] { page.evaluate("throw new Error('boom 123')"); }).find("boom 123"),
            std::string::npos);
  EXPECT_NE(what_of([&] { page.evaluate("no_such_variable + 1"); }).find("ReferenceError"),
            std::string::npos);
  EXPECT_NE(
      what_of([&] { page.evaluate("Promise.reject(new Error('async boom'))"); }).find("async boom"),
      std::string::npos);
  EXPECT_NE(what_of([&] { page.evaluate("throw 'plain string'"); }).find("plain string"),
            std::string::npos);
  // The page is still usable, and evaluate's own exceptions are not console errors.
  EXPECT_EQ(page.evaluate("'ok'"), "ok");
  EXPECT_TRUE(page.console_errors().empty());
  // A timeout throws, and the late reply does not confuse the next call.
  EXPECT_NE(what_of([&] {
              page.evaluate("new Promise(r => setTimeout(() => r('late'), 500))", 100ms);
            }).find("timed out"),
            std::string::npos);
  EXPECT_EQ(page.evaluate("'next'"), "next");
  // A failing poll is rethrown once wait_for gives up.
  EXPECT_NE(what_of([&] { page.wait_for("missing.thing", 200ms); }).find("ReferenceError"),
            std::string::npos);
}

TEST(Cdp, ConsoleErrorsAreCollected) {
  SKIP_WITHOUT_CHROMIUM();
  Browser browser;
  Page page = browser.open(data_url(R"(<script>
  console.log('not an error');
  console.warn('not an error either');
  console.error('hello', 7, {k: 1});
  null.foo;
</script>)"));
  auto errors = page.console_errors();
  ASSERT_EQ(errors.size(), 2u) << ::testing::PrintToString(errors);
  EXPECT_NE(errors[0].find("hello 7"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("TypeError"), std::string::npos) << errors[1];

  // Later ones, from a timer and an uncaught async exception.
  page.evaluate("new Promise(r => setTimeout(() => { console.error('later'); r(); }, 50))");
  page.evaluate("setTimeout(() => { throw new Error('uncaught in timer'); }, 10); 0");
  page.wait_for("new Promise(r => setTimeout(() => r(true), 100))", 5s);
  errors = page.console_errors();
  EXPECT_TRUE(contains(errors, "later")) << ::testing::PrintToString(errors);
  EXPECT_TRUE(contains(errors, "uncaught in timer")) << ::testing::PrintToString(errors);
}

}  // namespace
}  // namespace fbtest::cdp
