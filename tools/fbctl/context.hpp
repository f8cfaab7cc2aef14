// What every fbctl command shares: how to reach the broker, --json, and the
// exit code the command leaves behind.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "fbctl/exit_codes.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbctl {

struct Context {
  std::string socket;
  std::string instance = "default";
  bool json = false;
  int exit_code = kOk;

  Client connect() const;
};

// --socket, --instance and --json on fbctl itself, so they may come before the command. With
// fallthrough, an option the command does not know is tried on fbctl as well.
void add_global_options(CLI::App& app, Context& ctx);

// Adds a subcommand that lists --socket and --instance (and --json when `json`) in its own help.
// `run` is called when it is chosen, inside guarded(); its return is the exit code. A command
// without JSON output refuses --json given anywhere as a usage error.
CLI::App* add_command(CLI::App& app, Context& ctx, const std::string& name,
                      const std::string& description, bool json, std::function<int(Context&)> run);

// Each command file registers its commands.
void add_status_commands(CLI::App& app, Context& ctx);  // status streams subscribers cameras
void add_slots_command(CLI::App& app, Context& ctx);
void add_camera_commands(CLI::App& app, Context& ctx);  // props get set start stop
void add_snap_command(CLI::App& app, Context& ctx);
void add_watch_command(CLI::App& app, Context& ctx);
void add_top_command(CLI::App& app, Context& ctx);

}  // namespace framebroker::fbctl
