// A small Chrome DevTools Protocol client for tests: a headless Chromium as a
// child process, and pages driven over their DevTools websockets.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace fbtest::cdp {

using namespace std::chrono_literals;

class Connection;  // one DevTools websocket (cdp.cpp)

// One tab. Must not outlive its Browser. Every method throws
// std::runtime_error on a timeout or protocol error; after a timeout the page
// stays usable (the late reply is skipped).
class Page {
 public:
  explicit Page(std::unique_ptr<Connection> conn);  // enables Page and Runtime events
  Page(Page&&) noexcept;
  Page& operator=(Page&&) noexcept;
  ~Page();

  // Page.navigate, then waits for the load event.
  void navigate(const std::string& url, std::chrono::milliseconds timeout = 30s);
  // Runtime.evaluate by value, awaiting promises; undefined comes back as null.
  // A JS exception (or rejected promise) throws with its message and stack.
  nlohmann::json evaluate(const std::string& js, std::chrono::milliseconds timeout = 10s);
  // Polls the expression every 50 ms until it is truthy (JS rules) or the
  // timeout passes, and returns the last value. Exceptions count as "not yet";
  // if the last poll still threw, that exception is rethrown.
  nlohmann::json wait_for(const std::string& js, std::chrono::milliseconds timeout = 10s);
  // Page.captureScreenshot of the viewport, as PNG bytes.
  std::string screenshot_png(std::chrono::milliseconds timeout = 30s);
  // console.error / console.assert messages and uncaught exceptions, oldest
  // first, including everything the page did before this call.
  std::vector<std::string> console_errors();
  // Any other command, e.g. call("Emulation.setDeviceMetricsOverride", {...}).
  nlohmann::json call(const std::string& method,
                      const nlohmann::json& params = nlohmann::json::object(),
                      std::chrono::milliseconds timeout = 10s);

 private:
  std::unique_ptr<Connection> conn_;
};

// A headless Chromium with a fresh profile; killed (whole process group) and
// its temporary directory removed in the destructor.
class Browser {
 public:
  // The Chromium executable, or nullopt (tests then GTEST_SKIP).
  static std::optional<std::string> find_chromium();

  // Starts Chromium for width x height pages and waits (up to 30 s) for
  // DevTools; throws std::runtime_error with Chromium's output on failure.
  explicit Browser(int width = 1280, int height = 800);
  ~Browser();
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;

  // A new tab (Target.createTarget) showing `url`, loaded when this returns.
  Page open(const std::string& url = "about:blank", std::chrono::milliseconds timeout = 30s);

  int port() const { return port_; }
  std::string log() const;  // Chromium's stdout and stderr so far

 private:
  void stop();

  int width_, height_;
  pid_t reaper_ = -1;  // our child; Chromium is its child
  pid_t pid_ = -1;     // Chromium, leader of its own process group
  int port_ = 0;
  std::string dir_;                   // holds profile/ and chromium.log
  std::unique_ptr<Connection> conn_;  // the browser target
};

// A data: URL for an HTML document (base64, so no escaping worries).
std::string data_url(const std::string& html);

}  // namespace fbtest::cdp
