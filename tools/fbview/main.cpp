// fbview: a live viewer of framebroker streams in the browser.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <iostream>
#include <thread>

#include "fbview/frame_pump.hpp"
#include "fbview/stream_directory.hpp"
#include "fbview/web_server.hpp"
#include "framebroker/runtime.hpp"

namespace asio = boost::asio;
using namespace framebroker;
using namespace framebroker::fbview;

namespace {

// "127.0.0.1:8080", "[::1]:8080", ":8080" (loopback), "0.0.0.0:8080".
asio::ip::tcp::endpoint parse_listen(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("--listen wants HOST:PORT");
  std::string host = s.substr(0, colon);
  const std::string port_text = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "127.0.0.1";
  size_t used = 0;
  int port = -1;
  try {
    port = std::stoi(port_text, &used);
  } catch (const std::exception&) {
  }
  if (used != port_text.size() || port < 0 || port > 65535)
    throw std::invalid_argument("--listen: '" + port_text + "' is not a port number");
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) throw std::invalid_argument("--listen: '" + host + "' is not an IP address");
  return {address, uint16_t(port)};
}

void open_in_browser(const std::string& url) {
  const std::string cmd = "xdg-open '" + url + "' >/dev/null 2>&1 &";
  if (std::system(cmd.c_str()) != 0) spdlog::warn("could not run xdg-open; open {} yourself", url);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fbview: watch framebroker streams live in a web browser.\n\n"
      "Serves a page (embedded in this program) with the live image, auto-contrast or manual\n"
      "levels and gamma, a colour LUT, the histogram, 1:1 zoom and pan, the value under the\n"
      "cursor, a stream picker, and for a sequence the frame's index (t, p, c, z) and channel,\n"
      "with a picker to show one channel only. Each browser tab asks for a frame only after it\n"
      "drew the last one, and fbview subscribes in `latest` mode: a slow browser or network\n"
      "costs the viewer frames (shown as conflated), never the camera or a saver.\n\n"
      "Examples:\n"
      "  fbview                       # all streams, http://127.0.0.1:8080/\n"
      "  fbview sim0 --listen 127.0.0.1:9000 --open\n"
      "  fbview --listen 0.0.0.0:8080   # visible to the network (a warning says so)\n"
      "  fbview sim0 --channel 561      # a sequence's channel 561 only (or open\n"
      "                               # http://127.0.0.1:8080/?stream=sim0&channel=561)\n"
      "  fbview --listen 0.0.0.0:8080 --allow-origin http://scope-pc.lab:8080\n"
      "                               # the page opened by that name from other machines\n\n"
      "Only pages of fbview's own origin may open its WebSocket (http:// with its port and host\n"
      "localhost, 127.0.0.1, [::1] or the address it was reached at), and those named with\n"
      "--allow-origin; other pages in your browser get 403. Programs that send no Origin may.\n\n"
      "Exit codes: 0 stopped by SIGINT/SIGTERM, 1 error (e.g. the port is taken), 2 usage.",
      "fbview"};
  std::vector<std::string> streams;
  std::string listen = "127.0.0.1:8080";
  bool open = false;
  ConnectOptions connect;
  std::string instance = "default";
  app.add_option("streams", streams, "streams to offer (default: every stream of the broker)");
  app.add_option("--listen", listen,
                 "HOST:PORT to serve on; loopback unless you name another address (port 0: any "
                 "free port, printed at start)")
      ->capture_default_str();
  std::vector<std::string> allow_origins;
  app.add_option("--allow-origin", allow_origins,
                 "ORIGIN (scheme://host[:port]) whose pages may also open the WebSocket, e.g. "
                 "http://scope-pc.lab:8080 for a name fbview is reached by; repeatable")
      ->allow_extra_args(false);
  std::string channel;
  app.add_option("--channel", channel,
                 "in a sequence, show one channel only: its name (e.g. 561) or index on the c axis "
                 "(e.g. 1); frames of other channels are skipped. A page's ?channel= overrides it");
  app.add_flag("--open", open, "open the page in the desktop's browser (xdg-open)");
  app.add_option("--socket", connect.socket_path,
                 "broker socket (default: $FRAMEBROKER_SOCKET, else the instance's)");
  app.add_option("--instance", instance, "broker instance")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("fbview"));  // stdout is for the URL
  spdlog::set_pattern("fbview: %^%l%$: %v");
  if (connect.socket_path.empty()) connect.socket_path = resolve_socket_path(instance);

  try {
    const auto at = parse_listen(listen);
    asio::io_context io(1);
    StreamDirectory directory(connect, streams);
    WebServer server(io, at, directory, allow_origins, channel);
    const auto bound = server.local_endpoint();
    const std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                                     : bound.address().to_string();
    const std::string url = "http://" + host + ":" + std::to_string(bound.port()) + "/";
    if (!bound.address().is_loopback())
      spdlog::warn(
          "listening on {}: anyone who can reach this address can watch the cameras (a page "
          "opened by host name needs --allow-origin http://NAME:{})",
          bound.address().to_string(), bound.port());
    std::cout << "fbview: serving " << url << " (broker " << connect.socket_path << ")"
              << std::endl;
    if (open) open_in_browser(url);

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) {
      server.stop();
      io.stop();
    });
    io.run();
    // No pump may post to `io` once it is gone.
    FramePump::stop_all(std::chrono::seconds(3));
  } catch (const std::invalid_argument& e) {
    std::cerr << "fbview: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fbview: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
