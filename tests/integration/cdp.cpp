#include "cdp.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/websocket.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

extern char** environ;

namespace fbtest::cdp {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace base64 = boost::beast::detail::base64;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Text of a Runtime.ExceptionDetails: the error's description (message and
// stack) when there is one, else the thrown value, else the bare "Uncaught".
std::string exception_text(const json& details) {
  const json ex = details.value("exception", json::object());
  if (ex.contains("description")) return ex["description"].get<std::string>();
  if (ex.contains("value")) return details.value("text", "") + " " + ex["value"].dump();
  return details.value("text", "exception");
}

std::string remote_object_text(const json& obj) {
  if (obj.contains("value"))
    return obj["value"].is_string() ? obj["value"].get<std::string>() : obj["value"].dump();
  if (obj.contains("unserializableValue")) return obj["unserializableValue"].get<std::string>();
  return obj.value("description", obj.value("type", "?"));
}

bool truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string()) return !v.get<std::string>().empty();
  return true;
}

}  // namespace

// One DevTools websocket. All I/O is asynchronous on a private io_context run
// only until a deadline, so nothing blocks forever; a read still pending at a
// timeout is simply picked up by the next call.
class Connection {
 public:
  Connection(int port, const std::string& path, Clock::time_point deadline) : ws_(ioc_) {
    ws_.read_message_max(256 << 20);  // screenshots are large
    auto& sock = ws_.next_layer();
    await(
        [&](auto h) {
          sock.async_connect(
              {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}, h);
        },
        deadline, "connect");
    const std::string host = "127.0.0.1:" + std::to_string(port);
    await([&](auto h) { ws_.async_handshake(host, path, h); }, deadline, "handshake");
  }

  json call(const std::string& method, const json& params, Clock::time_point deadline) {
    const int id = next_id_++;
    out_ = json{{"id", id}, {"method", method}, {"params", params}}.dump();
    if (trace_) std::fprintf(stderr, "cdp >> %.500s\n", out_.c_str());
    await([&](auto h) { ws_.async_write(asio::buffer(out_), h); }, deadline, method.c_str());
    for (;;) {
      auto msg = read(deadline);
      if (!msg) throw std::runtime_error("cdp: " + method + " timed out");
      if (msg->contains("method")) {
        handle_event(*msg);
      } else if (msg->value("id", -1) == id) {
        if (msg->contains("error"))
          throw std::runtime_error("cdp: " + method + ": " + (*msg)["error"].dump());
        return msg->value("result", json::object());
      }  // else the late reply to an earlier call that timed out
    }
  }

  // Handles events until `done()` or the deadline; false on timeout.
  template <class Pred>
  bool wait_event(Pred done, Clock::time_point deadline) {
    while (!done()) {
      auto msg = read(deadline);
      if (!msg) return false;
      if (msg->contains("method")) handle_event(*msg);
    }
    return true;
  }

  int loads = 0;
  std::vector<std::string> errors;

 private:
  void handle_event(const json& msg) {
    const std::string& method = msg["method"].get_ref<const std::string&>();
    const json& p = msg.value("params", json::object());
    if (method == "Page.loadEventFired") {
      ++loads;
    } else if (method == "Runtime.consoleAPICalled") {
      const std::string type = p.value("type", "");
      if (type != "error" && type != "assert") return;
      std::string text;
      for (const auto& arg : p.value("args", json::array()))
        text += (text.empty() ? "" : " ") + remote_object_text(arg);
      errors.push_back(text);
    } else if (method == "Runtime.exceptionThrown") {
      errors.push_back(exception_text(p.value("exceptionDetails", json::object())));
    } else if (method == "Inspector.targetCrashed") {
      errors.push_back("page crashed (Inspector.targetCrashed)");
    }
  }

  // Starts an async operation with a completion handler and runs the
  // io_context until it completes; throws on error or timeout.
  template <class Start>
  void await(Start start, Clock::time_point deadline, const char* what) {
    // Shared so a handler that completes after a timeout writes nothing dangling.
    auto state = std::make_shared<std::pair<bool, beast::error_code>>();
    start([state](beast::error_code ec, auto&&...) { *state = {true, ec}; });
    run_until([&] { return state->first; }, deadline);
    if (!state->first) throw std::runtime_error(std::string("cdp: ") + what + " timed out");
    if (state->second)
      throw std::runtime_error(std::string("cdp: ") + what + ": " + state->second.message());
  }

  template <class Pred>
  void run_until(Pred done, Clock::time_point deadline) {
    ioc_.restart();
    while (!done() && ioc_.run_one_until(deadline) > 0) {
    }
  }

  // The next message, or nullopt at the deadline.
  std::optional<json> read(Clock::time_point deadline) {
    if (!reading_ && !ready_) {
      reading_ = true;
      ws_.async_read(buf_, [this](beast::error_code ec, std::size_t) {
        reading_ = false;
        ready_ = true;
        read_ec_ = ec;
      });
    }
    run_until([this] { return ready_; }, deadline);
    if (!ready_) return std::nullopt;
    ready_ = false;
    if (read_ec_) throw std::runtime_error("cdp: websocket read: " + read_ec_.message());
    json msg = json::parse(beast::buffers_to_string(buf_.data()));
    if (trace_) std::fprintf(stderr, "cdp << %.500s\n", msg.dump().c_str());
    buf_.consume(buf_.size());
    return msg;
  }

  asio::io_context ioc_;  // declared first: destroyed after the stream
  beast::websocket::stream<asio::ip::tcp::socket> ws_;
  beast::flat_buffer buf_;
  bool reading_ = false, ready_ = false;
  beast::error_code read_ec_;
  std::string out_;
  int next_id_ = 1;
  const bool trace_ = std::getenv("FBTEST_CDP_TRACE") != nullptr;  // log traffic to stderr
};

// ---- Page ----

Page::Page(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {
  call("Page.enable");
  call("Runtime.enable");
}
Page::Page(Page&&) noexcept = default;
Page& Page::operator=(Page&&) noexcept = default;
Page::~Page() = default;

json Page::call(const std::string& method, const json& params, std::chrono::milliseconds timeout) {
  return conn_->call(method, params, Clock::now() + timeout);
}

void Page::navigate(const std::string& url, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const int before = conn_->loads;
  json r = conn_->call("Page.navigate", {{"url", url}}, deadline);
  if (r.contains("errorText"))
    throw std::runtime_error("cdp: navigate " + url + ": " + r["errorText"].dump());
  if (!conn_->wait_event([&] { return conn_->loads > before; }, deadline))
    throw std::runtime_error("cdp: no load event for " + url.substr(0, 200));
}

json Page::evaluate(const std::string& js, std::chrono::milliseconds timeout) {
  json r = call("Runtime.evaluate",
                {{"expression", js}, {"returnByValue", true}, {"awaitPromise", true}}, timeout);
  if (r.contains("exceptionDetails"))
    throw std::runtime_error("cdp: JS exception: " + exception_text(r["exceptionDetails"]));
  return r["result"].value("value", json());
}

json Page::wait_for(const std::string& js, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    json value;
    std::string error;
    try {
      // Slack beyond the deadline so the final poll can still finish.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      value = evaluate(js, std::max(left, 0ms) + 5s);
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    if (error.empty() && truthy(value)) return value;
    if (Clock::now() >= deadline) {
      if (!error.empty()) throw std::runtime_error("wait_for(" + js + "): " + error);
      return value;
    }
    std::this_thread::sleep_for(50ms);
  }
}

std::string Page::screenshot_png(std::chrono::milliseconds timeout) {
  const std::string b64 = call("Page.captureScreenshot", {{"format", "png"}}, timeout).at("data");
  std::string png(base64::decoded_size(b64.size()), '\0');
  png.resize(base64::decode(png.data(), b64.data(), b64.size()).first);
  return png;
}

std::vector<std::string> Page::console_errors() {
  // A round trip: events are delivered in order, so everything the page
  // logged before it has been handled once the reply is in.
  call("Runtime.evaluate", {{"expression", "0"}});
  return conn_->errors;
}

// ---- Browser ----

std::optional<std::string> Browser::find_chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (access(path, X_OK) == 0) return path;
  return std::nullopt;
}

Browser::Browser(int width, int height) : width_(width), height_(height) {
  const auto exe = find_chromium();
  if (!exe) throw std::runtime_error("cdp: chromium not found");
  char tmpl[] = "/tmp/fbtest-chromium-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("cdp: mkdtemp failed");
  dir_ = tmpl;
  try {
    const std::string profile = dir_ + "/profile";
    std::vector<std::string> args = {
        *exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",  // else it tries the network and logs errors
        "--no-first-run",
        "--no-default-browser-check",
        "--mute-audio",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",  // screenshot pixels == CSS pixels
        "--window-size=" + std::to_string(width) + "," + std::to_string(height),
        "--user-data-dir=" + profile,
        "--remote-debugging-port=0",
        "about:blank"};
    // HOME too, or it writes ~/.config/chromium and ~/.cache.
    std::vector<std::string> env = {"HOME=" + dir_};
    for (char** e = environ; *e; ++e)
      if (!std::string_view(*e).starts_with("HOME=") && !std::string_view(*e).starts_with("XDG_"))
        env.push_back(*e);
    auto c_strings = [](std::vector<std::string>& v) {
      std::vector<char*> p;
      for (auto& s : v) p.push_back(s.data());
      p.push_back(nullptr);
      return p;
    };
    std::vector<char*> argv = c_strings(args), envp = c_strings(env);
    const int log_fd =
        ::open((dir_ + "/chromium.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pipe_fds[2];
    if (log_fd < 0 || null_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0)
      throw std::runtime_error("cdp: open/pipe failed");

    // Chromium runs under a reaper child: a killed Chromium orphans its zygote
    // children, and PID 1 in a container may never reap them. The reaper is a
    // child subreaper that reaps every descendant and exits when none is left.
    // After fork only async-signal-safe calls. PDEATHSIG (tied to the forking
    // thread) takes everything down if the test process dies.
    const pid_t parent = getpid();
    reaper_ = fork();
    if (reaper_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      prctl(PR_SET_CHILD_SUBREAPER, 1);
      pid_t chromium = fork();
      if (chromium == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setpgid(0, 0);  // its own group, so it is killed with all its helpers
        dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        execve(argv[0], argv.data(), envp.data());
        _exit(127);
      }
      if (chromium > 0) setpgid(chromium, chromium);  // also here: no race with kill(-pid)
      (void)!write(pipe_fds[1], &chromium, sizeof chromium);
      while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
      }
      _exit(0);
    }
    close(pipe_fds[1]);
    close(log_fd);
    close(null_fd);
    const bool got_pid =
        reaper_ > 0 && read(pipe_fds[0], &pid_, sizeof pid_) == sizeof pid_ && pid_ > 0;
    close(pipe_fds[0]);
    if (!got_pid) throw std::runtime_error("cdp: cannot start " + *exe);

    // DevToolsActivePort holds "<port>\n/devtools/browser/<uuid>"; it is not
    // written atomically, so wait until the uuid is complete.
    const auto deadline = Clock::now() + 30s;
    std::string path;
    for (;;) {
      std::istringstream in(read_file(profile + "/DevToolsActivePort"));
      if (in >> port_ >> path && port_ > 0 && path.size() == std::strlen("/devtools/browser/") + 36)
        break;
      if (kill(pid_, 0) != 0)
        throw std::runtime_error("cdp: chromium exited during startup:\n" + log());
      if (Clock::now() > deadline)
        throw std::runtime_error("cdp: no DevToolsActivePort after 30 s:\n" + log());
      std::this_thread::sleep_for(50ms);
    }
    conn_ = std::make_unique<Connection>(port_, path, Clock::now() + 30s);
  } catch (...) {
    stop();
    throw;
  }
}

Browser::~Browser() {
  stop();
}

void Browser::stop() {
  conn_.reset();
  if (pid_ > 0) kill(-pid_, SIGKILL);
  if (reaper_ > 0) {
    // The reaper exits once every descendant is gone.
    bool gone = false;
    for (int i = 0; i < 500 && !(gone = waitpid(reaper_, nullptr, WNOHANG) != 0); ++i)
      std::this_thread::sleep_for(10ms);
    if (!gone) {
      kill(reaper_, SIGKILL);
      waitpid(reaper_, nullptr, 0);
    }
  }
  pid_ = reaper_ = -1;
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string Browser::log() const {
  return read_file(dir_ + "/chromium.log");
}

Page Browser::open(const std::string& url, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  json r = conn_->call("Target.createTarget", {{"url", "about:blank"}}, deadline);
  Page page(std::make_unique<Connection>(
      port_, "/devtools/page/" + r.at("targetId").get<std::string>(), deadline));
  // --window-size includes window decorations even when headless; this makes
  // the viewport (and screenshots) exactly width x height.
  page.call("Emulation.setDeviceMetricsOverride",
            {{"width", width_}, {"height", height_}, {"deviceScaleFactor", 1}, {"mobile", false}});
  if (url != "about:blank")
    page.navigate(url,
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  return page;
}

std::string data_url(const std::string& html) {
  std::string b64(base64::encoded_size(html.size()), '\0');
  b64.resize(base64::encode(b64.data(), html.data(), html.size()));
  return "data:text/html;base64," + b64;
}

}  // namespace fbtest::cdp
