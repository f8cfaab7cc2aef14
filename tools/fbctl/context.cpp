#include "fbctl/context.hpp"

namespace framebroker::fbctl {

Client Context::connect() const {
  ConnectOptions o;
  o.socket_path = socket;
  o.instance = instance;
  o.client_name = "fbctl";
  o.role = "control";
  return Client::connect(o);
}

namespace {

void add_connection_options(CLI::App& app, Context& ctx) {
  app.add_option(
      "--socket", ctx.socket,
      "broker socket (default: $FRAMEBROKER_SOCKET, else <runtime_dir>/<instance>.sock)");
  app.add_option("--instance", ctx.instance, "broker instance")->capture_default_str();
}

const char* const kJsonHelp = "print JSON (keys are stable: added, never renamed)";

}  // namespace

void add_global_options(CLI::App& app, Context& ctx) {
  add_connection_options(app, ctx);
  app.add_flag("--json", ctx.json, kJsonHelp);
  app.fallthrough();
}

CLI::App* add_command(CLI::App& app, Context& ctx, const std::string& name,
                      const std::string& description, bool json, std::function<int(Context&)> run) {
  auto* cmd = app.add_subcommand(name, description);
  add_connection_options(*cmd, ctx);
  if (json) cmd->add_flag("--json", ctx.json, kJsonHelp);
  cmd->callback([&ctx, run, json, name] {
    if (ctx.json && !json)
      throw CLI::ValidationError("--json", "fbctl " + name + " prints no JSON");
    ctx.exit_code = guarded([&] { return run(ctx); });
  });
  return cmd;
}

}  // namespace framebroker::fbctl
