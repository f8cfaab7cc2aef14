// fbctl slots STREAM: the slot map, and who holds what.
#include <iostream>

#include "fbctl/context.hpp"
#include "fbctl/status_view.hpp"

namespace framebroker::fbctl {

void add_slots_command(CLI::App& app, Context& ctx) {
  static std::string stream;
  auto* cmd = add_command(
      app, ctx, "slots",
      "each slot of a stream: state, seq, age and holders (id, client, pid), with the ring drawn\n"
      "one character per slot, so a stuck holder shows at a glance\n  e.g. fbctl slots sim0",
      true, [](Context& c) {
        auto s = c.connect().status(stream);
        if (!s.slot_map) throw Error(Errc::Protocol, "the broker sent no slot map");
        if (c.json)
          std::cout << to_json(*s.slot_map) << "\n";
        else
          print_slots(std::cout, *s.slot_map);
        return int(kOk);
      });
  cmd->add_option("stream", stream, "stream name")->required();
}

}  // namespace framebroker::fbctl
