// fbctl: inspect and control a running framebrokerd.
#include "fbctl/context.hpp"

using namespace framebroker::fbctl;

int main(int argc, char** argv) {
  CLI::App app{
      "fbctl: inspect and control a running framebrokerd.\n\n"
      "Examples:\n"
      "  fbctl status                      broker, streams, subscribers\n"
      "  fbctl slots sim0                  who holds which slot of sim0\n"
      "  fbctl watch sim0 --duration 10    subscribe and print fps and drops\n"
      "  fbctl set sim0 FrameRate 200      change a camera property\n"
      "  fbctl snap sim0 -o frame.tif      save one frame\n"
      "  fbctl top                         live view; q quits\n"
      "  fbctl --socket /run/framebroker/lab.sock --json status\n"
      "                                    --socket, --instance and --json go before or after\n"
      "                                    the command\n\n"
      "Exit codes: 0 success, 1 the broker refused, 2 usage error, 3 broker not running.",
      "fbctl"};
  app.require_subcommand(1);
  Context ctx;
  add_global_options(app, ctx);
  add_status_commands(app, ctx);
  add_slots_command(app, ctx);
  add_camera_commands(app, ctx);
  add_snap_command(app, ctx);
  add_watch_command(app, ctx);
  add_top_command(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }
  return ctx.exit_code;
}
