#include "fbctl/status_view.hpp"

#include <iomanip>
#include <sstream>

namespace framebroker::fbctl {

namespace {

std::string fixed(double v, int digits) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(digits) << v;
  return o.str();
}

}  // namespace

void print_status(std::ostream& out, const Status& s) {
  out << "broker  instance " << s.broker.instance << "  pid " << s.broker.pid << "  version "
      << s.broker.version << "  up " << fixed(s.broker.uptime_s, 0) << " s  clients "
      << s.broker.clients << "\n\n";

  out << std::left << std::setw(12) << "STREAM" << std::setw(18) << "FORMAT" << std::right
      << std::setw(5) << "GEN" << std::setw(16) << "SLOTS f/w/r" << std::setw(9) << "FPS"
      << std::setw(12) << "PUBLISHED" << std::setw(10) << "DROPPED" << std::setw(12) << "LATEST"
      << "\n";
  for (const auto& st : s.streams) {
    std::string format =
        std::to_string(st.width) + "x" + std::to_string(st.height) + " " + st.pixel_type;
    std::string slots = std::to_string(st.free) + "/" + std::to_string(st.writing) + "/" +
                        std::to_string(st.ready) + " of " + std::to_string(st.slots);
    out << std::left << std::setw(12) << st.name << std::setw(18) << format << std::right
        << std::setw(5) << st.gen << std::setw(16) << slots << std::setw(9) << fixed(st.fps, 1)
        << std::setw(12) << st.published << std::setw(10) << st.dropped << std::setw(12)
        << (st.latest_seq < 0 ? std::string("-") : std::to_string(st.latest_seq)) << "\n";
  }
  if (s.streams.empty()) out << "(no streams)\n";

  out << "\n"
      << std::left << std::setw(5) << "ID" << std::setw(16) << "CLIENT" << std::right
      << std::setw(8) << "PID"
      << "  " << std::left << std::setw(12) << "STREAM" << std::setw(8) << "MODE" << std::right
      << std::setw(6) << "HELD" << std::setw(8) << "QUEUED" << std::setw(11) << "DELIVERED"
      << std::setw(9) << "MISSED" << std::setw(11) << "CONFLATED"
      << "\n";
  for (const auto& sub : s.subscribers) {
    out << std::left << std::setw(5) << sub.id << std::setw(16) << sub.client.substr(0, 15)
        << std::right << std::setw(8) << sub.pid << "  " << std::left << std::setw(12) << sub.stream
        << std::setw(8) << sub.mode << std::right << std::setw(6) << sub.held << std::setw(8)
        << sub.queued << std::setw(11) << sub.delivered << std::setw(9) << sub.missed
        << std::setw(11) << sub.conflated << "\n";
  }
  if (s.subscribers.empty()) out << "(no subscribers)\n";
}

}  // namespace framebroker::fbctl
