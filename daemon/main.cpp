// framebrokerd: serves camera frames to many processes through shared memory.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <iostream>

#include "broker.hpp"
#include "camera_factory.hpp"
#include "config.hpp"
#include "instance_lock.hpp"

using namespace framebroker;
using namespace framebroker::daemon;

namespace {

void add_cameras(Broker& broker, const BrokerConfig& config) {
  for (const auto& cam : config.cameras) {
    auto camera = make_camera(cam.driver, cam.stream.name);
    for (const auto& [k, v] : cam.properties) {
      try {
        camera->set(k, v);
      } catch (const std::exception& e) {
        throw ConfigError("camera " + cam.stream.name + ": " + e.what());
      }
    }
    auto& stream = broker.add_stream(cam.stream, std::move(camera));
    if (cam.start) stream.start(std::nullopt);
    const auto f = stream.camera().format();
    spdlog::info("camera {} ({}): {}x{} {}, {}", cam.stream.name, cam.driver, f.width, f.height,
                 cameras::to_string(f.pixel_type), cam.start ? "started" : "idle");
  }
}

int run(const BrokerConfig& config) {
  InstanceLock lock(config.runtime_dir, config.instance);
  if (int n = remove_stale_state(config.instance, config.socket_path))
    spdlog::warn("removed {} stale shared-memory segment(s) of instance {}", n, config.instance);

  boost::asio::io_context io(1);
  Broker broker(io, config.instance, config.socket_path);
  add_cameras(broker, config);
  broker.listen();
  spdlog::info("framebrokerd {} (pid {}) serving instance '{}' on {}", FRAMEBROKER_VERSION,
               getpid(), config.instance, config.socket_path);

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    broker.shutdown();
    io.stop();
  });
  io.run();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "framebrokerd: owns cameras and serves their frames to many processes through shared "
      "memory, with no pixel copied.\n\nWith no options it runs one simulated camera 'sim0' "
      "(512x512 Mono16, 100 fps) on the socket <runtime_dir>/default.sock.",
      "framebrokerd"};
  BrokerConfig config;
  std::string config_file;
  std::vector<std::string> camera_specs;
  bool no_default = false;
  app.add_option("--config", config_file, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--instance", config.instance, "instance name (one broker per instance)")
      ->capture_default_str();
  app.add_option("--runtime-dir", config.runtime_dir,
                 "where the socket and lock live (default: $RUNTIME_DIRECTORY, /run/framebroker "
                 "for root, $XDG_RUNTIME_DIR/framebroker, /tmp/framebroker-<uid>)");
  app.add_option("--socket", config.socket_path,
                 "socket path (default <runtime-dir>/<instance>.sock)");
  app.add_option("--camera", camera_specs,
                 "a camera, repeatable: DRIVER:key=value,... e.g. "
                 "sim:name=cam0,Width=1024,Height=1024,PixelType=Mono16,FrameRate=200,"
                 "Pattern=spots,slots=32,overflow=drop (stream keys: name, slots, ring_mb, "
                 "overflow=drop|block, start=true|false; other keys are camera properties)");
  app.add_flag("--no-default-camera", no_default, "start without the simulated camera sim0");
  app.add_flag("--lock-memory", config.lock_memory, "mlock the shared-memory rings");
  app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  spdlog::set_default_logger(spdlog::stderr_color_mt("framebrokerd"));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  try {
    if (!config_file.empty()) load_toml_file(config_file, config);
    for (const auto& spec : camera_specs) config.cameras.push_back(parse_camera_spec(spec));
    if (no_default) config.default_camera = false;
    finalize(config);
    spdlog::set_level(spdlog::level::from_str(config.log_level));
    return run(config);
  } catch (const std::exception& e) {
    std::cerr << "framebrokerd: " << e.what() << "\n";
    return 1;
  }
}
