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

CLI::App* add_command(CLI::App& app, Context& ctx, const std::string& name,
                      const std::string& description, bool json, std::function<int(Context&)> run) {
  auto* cmd = app.add_subcommand(name, description);
  cmd->add_option(
      "--socket", ctx.socket,
      "broker socket (default: $FRAMEBROKER_SOCKET, else <runtime_dir>/<instance>.sock)");
  cmd->add_option("--instance", ctx.instance, "broker instance")->capture_default_str();
  if (json) cmd->add_flag("--json", ctx.json, "print JSON (keys are stable: added, never renamed)");
  cmd->callback([&ctx, run] { ctx.exit_code = guarded([&] { return run(ctx); }); });
  return cmd;
}

}  // namespace framebroker::fbctl
