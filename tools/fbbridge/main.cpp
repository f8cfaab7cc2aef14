// fbbridge: framebroker streams to other hosts over ZeroMQ, and back into a remote broker.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/run_tool.hpp"
#include "fbbridge/counters.hpp"
#include "fbbridge/curve_keys.hpp"
#include "fbbridge/exporter.hpp"
#include "fbbridge/importer.hpp"
#include "fbbridge/zmq_link.hpp"

using namespace framebroker;
using namespace framebroker::fbbridge;

int main(int argc, char** argv) {
  CLI::App app{
      "fbbridge: framebroker streams to other hosts over ZeroMQ (TCP), and back into a remote\n"
      "broker. `export` serves local streams; `import` connects to an exporter and publishes\n"
      "each remote stream in the local broker as PREFIX + its name, so every local tool (fbview,\n"
      "fbsave, fbproc, Python) uses it unchanged. Flow control is by credits: in `every` mode\n"
      "nothing is lost while the link keeps up (the exporter holds frames in the broker while the\n"
      "importer has granted no credit, within the subscriber's max_hold; beyond it the broker\n"
      "counts them missed), in `latest` mode a slow link always gets the newest frame.\n\n"
      "Examples:\n"
      "  # on the acquisition PC (10.0.0.1):\n"
      "  fbbridge export --bind tcp://10.0.0.1:5555 --stream cam0 --mode every\n"
      "  # on the processing PC:\n"
      "  fbbridge import --connect tcp://10.0.0.1:5555 --prefix acq.\n"
      "  fbsave acq.cam0 -o run1.ome.zarr --frames 1000\n\n"
      "  # encrypted and authenticated (CURVE): make keys once, copy client.key and server.pub\n"
      "  # to the importer's host\n"
      "  fbbridge keygen /etc/framebroker/bridge-keys\n"
      "  fbbridge export --bind tcp://10.0.0.1:5555 --curve-server-key keys/server.key \\\n"
      "      --curve-allow keys/client.pub\n"
      "  fbbridge import --connect tcp://10.0.0.1:5555 --curve-client-key keys/client.key \\\n"
      "      --curve-server-public keys/server.pub\n\n"
      "Both sides print a stats line on stderr every --stats-interval and, on exit, the\n"
      "counters as one JSON line on stdout. SIGINT/SIGTERM end either side within a second.\n"
      "Exit codes: 0 done, 1 error (the message says which), 2 usage, 3 broker not running or "
      "lost.",
      "fbbridge"};
  app.require_subcommand(1);

  ExportOptions eo;
  std::string mode = "every", compress = "none";
  int stats_ms = 1000;
  std::string socket, instance = "default";
  auto* ex = app.add_subcommand("export", "serve local streams to importers");
  ex->add_option("--bind", eo.bind, "the address to listen on, tcp://ADDR:PORT")->required();
  ex->add_option("--stream", eo.streams,
                 "a stream to export (repeat for more; default: every stream, and those that "
                 "appear later)");
  ex->add_option("--mode", mode, "every (lossless while the link keeps up) or latest (newest)")
      ->check(CLI::IsMember({"every", "latest"}))
      ->capture_default_str();
  ex->add_option("--compress", compress, "none or lz4 (Blosc, shuffled, on the exporter's CPU)")
      ->check(CLI::IsMember({"none", "lz4"}))
      ->capture_default_str();
  ex->add_option("--clevel", eo.clevel, "Blosc level for lz4 (1-9)")
      ->check(CLI::Range(1, 9))
      ->capture_default_str();
  ex->add_option("--max-window", eo.max_window,
                 "the most frames a peer may have in flight, whatever it asks")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  ex->add_option("--curve-server-key", eo.curve_server_key,
                 "this exporter's secret key file (fbbridge keygen): CURVE encryption on");
  ex->add_option("--curve-allow", eo.curve_allow,
                 "a client's public key file admitted (repeat; default: any client that has the "
                 "server's public key)");

  ImportOptions io;
  auto* im = app.add_subcommand("import", "publish an exporter's streams in the local broker");
  im->add_option("--connect", io.connect, "the exporter's address, tcp://HOST:PORT")->required();
  im->add_option("--prefix", io.prefix, "local stream name = PREFIX + remote name")
      ->capture_default_str();
  im->add_option("--window", io.window, "frames in flight on the link (credits)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  im->add_option("--max-message-mb", io.max_message_mb,
                 "ZMQ_MAXMSGSIZE: a larger message drops the connection (it reconnects)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  im->add_option("--slots", io.slots, "slots of each local ring (default: the broker's)");
  im->add_option("--curve-client-key", io.curve_client_key,
                 "this importer's secret key file: CURVE encryption on");
  im->add_option("--curve-server-public", io.curve_server_public,
                 "the exporter's public key file (server.pub)");

  std::string keydir;
  auto* kg = app.add_subcommand("keygen",
                                "write CURVE key pairs: DIR/server.{key,pub}, "
                                "DIR/client.{key,pub}");
  kg->add_option("DIR", keydir, "the directory (made if missing, mode 0700)")->required();

  for (auto* sub : {ex, im}) {
    sub->add_option("--socket", socket,
                    "broker socket (default: $FRAMEBROKER_SOCKET or the instance's)");
    sub->add_option("--instance", instance, "broker instance")->capture_default_str();
    sub->add_option("--stats-interval-ms", stats_ms, "stats line period on stderr (0: none)")
        ->capture_default_str();
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  auto logger = spdlog::stderr_color_mt("fbbridge");
  logger->set_pattern("[%H:%M:%S.%e] [%l] %v");
  spdlog::set_default_logger(logger);

  if (*kg)
    return tools::run_tool("fbbridge", [&] {
      std::fputs(keygen(keydir).c_str(), stdout);
      return 0;
    });

  std::atomic<bool> stop{false};
  const int wake_fd = install_stop_signals(stop);
  BridgeCounters counters;
  const char* side = *ex ? "export" : "import";
  const int rc = tools::run_tool("fbbridge", [&] {
    if (*ex) {
      eo.latest = mode == "latest";
      eo.lz4 = compress == "lz4";
      eo.stats_interval = std::chrono::milliseconds(stats_ms);
      eo.connect.socket_path = socket;
      eo.connect.instance = instance;
      eo.connect.role = "bridge-export";
      eo.connect.client_name = "fbbridge export " + eo.bind;
      return run_exporter(eo, counters, stop, wake_fd);
    }
    // ZeroMQ allocates each received message; keep freed frame-sized blocks in the heap for the
    // next one instead of mmap/munmap per message (fresh pages cost ~3 ms per 8 MiB on a VM).
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    io.stats_interval = std::chrono::milliseconds(stats_ms);
    io.local.socket_path = socket;
    io.local.instance = instance;
    io.local.role = "bridge-import";
    io.local.client_name = "fbbridge import " + io.connect;
    return run_importer(io, counters, stop, wake_fd);
  });
  StatsLine last;
  std::fprintf(stdout, "%s\n", StatsLine::json(side, counters).c_str());
  std::fflush(stdout);
  return rc;
}
