// framebrokerd: serves camera frames to many processes through shared memory.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <iostream>

#include "apply_config.hpp"
#include "broker.hpp"
#include "config.hpp"
#include "instance_lock.hpp"
#include "logging.hpp"
#include "service_manager.hpp"

using namespace framebroker;
using namespace framebroker::daemon;

namespace {

// What the command line gave; the configuration is rebuilt from it (and the file) on SIGHUP.
struct CommandLine {
  BrokerConfig flags;
  std::string config_file;
  std::vector<std::string> camera_specs;
  bool no_default = false;

  BrokerConfig load() const {
    BrokerConfig config = flags;
    if (!config_file.empty()) load_toml_file(config_file, config);
    for (const auto& spec : camera_specs) config.cameras.push_back(parse_camera_spec(spec));
    if (no_default) config.default_camera = false;
    finalize(config);
    return config;
  }
};

// Who may control the cameras and who may publish, and how large a published ring may be.
void apply_access(Broker& broker, const BrokerConfig& config) {
  broker.set_control_group(config.control_group_id, config.control_group);
  broker.set_publish_limits(config.publish_group_id, config.publish_group,
                            config.max_publish_mb << 20, config.group_id);
  broker.set_client_limits(
      {config.max_clients, config.max_subscriptions, config.max_queued_mb << 20});
}

// STATUS= for systemd, and WATCHDOG=1 from the event loop, so that a stuck loop stops the pings.
class ServiceHeartbeat {
 public:
  ServiceHeartbeat(boost::asio::io_context& io, Broker& broker)
      : broker_(broker), timer_(io), watchdog_(service::watchdog_interval()) {
    beat();
  }

 private:
  void beat() {
    if (watchdog_) service::notify_watchdog();
    if (std::string status = summary(); status != last_status_) {
      service::notify_status(status);
      last_status_ = std::move(status);
    }
    std::chrono::microseconds period = std::chrono::seconds(5);
    if (watchdog_) period = std::min(period, *watchdog_ / 2);
    timer_.expires_after(period);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) beat();
    });
  }

  std::string summary() {
    auto state = broker_.lock_state();
    return broker_.summary();
  }

  Broker& broker_;
  boost::asio::steady_timer timer_;
  std::optional<std::chrono::microseconds> watchdog_;
  std::string last_status_;
};

int run(const CommandLine& cli, BrokerConfig config) {
  const int inherited = service::take_listen_socket();
  InstanceLock lock(config.runtime_dir, config.instance);
  // A socket systemd passed in is systemd's file: not stale, not ours to remove.
  const std::string own_socket = inherited >= 0 ? std::string() : config.socket_path;
  if (int n = remove_stale_state(config.instance, own_socket))
    spdlog::warn("removed {} stale shared-memory segment(s) of instance {}", n, config.instance);

  boost::asio::io_context io(1);
  Broker broker(io, config.instance, config.socket_path);
  apply_access(broker, config);
  // Signals are taken before the socket exists: a SIGTERM that comes as soon as a client can
  // connect must still stop the broker cleanly.
  boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  stop_signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    service::notify_stopping();
    auto state = broker.lock_state();
    broker.shutdown();
    io.stop();
  });
  boost::asio::signal_set reload_signal(io, SIGHUP);
  std::function<void(boost::system::error_code, int)> on_reload = [&](boost::system::error_code ec,
                                                                      int) {
    if (ec) return;
    spdlog::info("SIGHUP: reloading {}",
                 cli.config_file.empty() ? "(no --config file)" : cli.config_file);
    service::notify_reloading();
    auto state = broker.lock_state();
    try {
      const BrokerConfig next = cli.load();
      config = apply_reload(broker, config, next);
      // Who may control the cameras or publish changes live: tightening it needs no restart.
      config.control_group = next.control_group;
      config.control_group_id = next.control_group_id;
      config.publish_group = next.publish_group;
      config.publish_group_id = next.publish_group_id;
      config.max_publish_mb = next.max_publish_mb;
      config.max_clients = next.max_clients;
      config.max_subscriptions = next.max_subscriptions;
      config.max_queued_mb = next.max_queued_mb;
      apply_access(broker, config);
      spdlog::info(
          "reload: control_group = '{}', publish_group = '{}', max_publish_mb = {}, max_clients "
          "= {}, max_subscriptions = {}, max_queued_mb = {}",
          config.control_group, config.publish_group, config.max_publish_mb, config.max_clients,
          config.max_subscriptions, config.max_queued_mb);
      spdlog::info("reload: done; {}", broker.summary());
    } catch (const std::exception& e) {
      spdlog::error("reload: {}; the running configuration stays", e.what());
    }
    service::notify_ready(broker.summary());
    reload_signal.async_wait(on_reload);
  };
  reload_signal.async_wait(on_reload);

  {
    auto state = broker.lock_state();
    for (const auto& cam : config.cameras) add_camera(broker, cam);
    if (inherited >= 0)
      broker.listen_on(inherited);
    else
      broker.listen(config.group_id);
    spdlog::info("framebrokerd {} (pid {}) serving instance '{}' on {}{}", FRAMEBROKER_VERSION,
                 getpid(), config.instance, broker.socket_path(),
                 inherited >= 0 ? " (socket from systemd)" : "");
    service::notify_ready(broker.summary());
  }
  ServiceHeartbeat heartbeat(io, broker);
  io.run();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "framebrokerd: owns cameras and serves their frames to many processes through shared "
      "memory, with no pixel copied.\n\nWith no options it runs one simulated camera 'sim0' "
      "(512x512 Mono16, 100 fps) on the socket <runtime_dir>/default.sock.\n\nSignals: SIGTERM "
      "or SIGINT stop it cleanly; SIGHUP reloads --config (cameras added or removed, properties "
      "of idle cameras changed; what cannot change live is logged and left).\nUnder systemd it "
      "reports readiness and status (Type=notify), pings the watchdog, takes the socket of a "
      ".socket unit, and logs with syslog priorities when stderr is the journal.",
      "framebrokerd"};
  CommandLine cli;
  BrokerConfig& config = cli.flags;
  app.add_option("--config", cli.config_file, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--instance", config.instance, "instance name (one broker per instance)")
      ->capture_default_str();
  app.add_option("--runtime-dir", config.runtime_dir,
                 "where the socket and lock live (default: $RUNTIME_DIRECTORY, /run/framebroker "
                 "for root, $XDG_RUNTIME_DIR/framebroker, /tmp/framebroker-<uid>)");
  app.add_option("--socket", config.socket_path,
                 "socket path (default <runtime-dir>/<instance>.sock)");
  app.add_option("--camera", cli.camera_specs,
                 "a camera, repeatable: DRIVER:key=value,... e.g. "
                 "sim:name=cam0,Width=1024,Height=1024,PixelType=Mono16,FrameRate=200,"
                 "Pattern=spots,overflow=drop (stream keys: name, slots, ring_mb, ring_ms (default "
                 "1000: the ring holds 1 s of frames at FrameRate), overflow=drop|block, "
                 "start=true|false; other keys are camera properties)");
  app.add_flag("--no-default-camera", cli.no_default, "start without the simulated camera sim0");
  app.add_flag("--lock-memory", config.lock_memory, "mlock the shared-memory rings");
  app.add_option("--realtime-priority", config.realtime_priority,
                 "run the camera threads at SCHED_FIFO priority N (1-99; 0: normal); where that "
                 "is not permitted, at nice -10, logged once (e.g. --realtime-priority 10)")
      ->check(CLI::Range(0, 99));
  app.add_option("--group", config.group,
                 "group that owns the socket (mode 0660) and the segments (mode 0640), for a "
                 "broker run as root; default: the broker's own (under systemd: framebroker)");
  app.add_option("--control-group", config.control_group,
                 "only members of this group (and root, and the broker's own user) may start, "
                 "stop, snap or set a camera; default: anyone who can connect");
  app.add_option("--publish-group", config.publish_group,
                 "only members of this group (and root, and the broker's own user) may publish a "
                 "stream; default: anyone who can connect");
  app.add_option("--max-publish-mb", config.max_publish_mb,
                 "the largest ring a publishing client may ask for, in MiB; default: a quarter of "
                 "the RAM");
  app.add_option("--max-clients", config.max_clients,
                 "clients connected at once; one more is refused with an error")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--max-subscriptions", config.max_subscriptions,
                 "subscriptions one client may have")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--max-queued-mb", config.max_queued_mb,
                 "MiB of messages a client may leave unread before it is disconnected")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // usage errors exit 2, like fbctl and fbsave
  }

  const bool journal = stderr_is_journal();
  setup_logging(journal);
  try {
    BrokerConfig running = cli.load();
    spdlog::set_level(spdlog::level::from_str(running.log_level));
    return run(cli, std::move(running));
  } catch (const std::exception& e) {
    if (journal)
      spdlog::critical("{}", e.what());
    else
      std::cerr << "framebrokerd: " << e.what() << "\n";
    return 1;
  }
}
