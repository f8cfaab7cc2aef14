// fbctl top: a full-screen live view, refreshed every second; q quits.
#include <ncurses.h>

#include <sstream>

#include "common/table.hpp"
#include "fbctl/context.hpp"
#include "fbctl/status_view.hpp"

namespace framebroker::fbctl {

using tools::count_or_dash;
using tools::fixed;
using tools::Table;

namespace {

// The screen as text, so that it is the same in any terminal (and in tmux).
std::string render(Client& client) {
  const Status s = client.status();
  std::ostringstream out;
  out << "framebroker top  instance " << s.broker.instance << "  pid " << s.broker.pid << "  up "
      << fixed(s.broker.uptime_s, 0) << " s  clients " << s.broker.clients << "    (q quits)\n\n";
  Table streams(
      {"STREAM", "FORMAT", "FPS", "MB/S", "PUBLISHED", "DROPPED", "LATEST", "FREE/SLOTS"});
  for (const auto& st : s.streams)
    streams.row({st.name,
                 std::to_string(st.width) + "x" + std::to_string(st.height) + " " + st.pixel_type,
                 fixed(st.fps, 1), fixed(st.mb_per_s, 1), std::to_string(st.published),
                 std::to_string(st.dropped), count_or_dash(st.latest_seq),
                 std::to_string(st.free) + "/" + std::to_string(st.slots)});
  streams.print(out);
  out << "\n";
  for (const auto& st : s.streams) {
    const auto map = client.status(st.name).slot_map;
    if (map) out << st.name << " [" << ring_bar(*map) << "]\n";
  }
  out << "\n";
  Table subs({"ID", "CLIENT", "PID", "STREAM", "MODE", "HELD", "QUEUED", "LAG", "DELIVERED",
              "MISSED", "CONFLATED"});
  for (const auto& sub : s.subscribers)
    subs.row({std::to_string(sub.id), sub.client, std::to_string(sub.pid), sub.stream, sub.mode,
              std::to_string(sub.held), std::to_string(sub.queued), std::to_string(sub.lag),
              std::to_string(sub.delivered), std::to_string(sub.missed),
              std::to_string(sub.conflated)});
  subs.print(out);
  if (subs.empty()) out << "(no subscribers)\n";
  return out.str();
}

struct Curses {
  Curses() {
    initscr();
    cbreak();
    noecho();
    curs_set(0);
    keypad(stdscr, TRUE);
    timeout(1000);  // getch waits at most a second: the refresh period
  }
  ~Curses() { endwin(); }
};

int run_top(Context& c) {
  auto client = c.connect();  // fail with a clear message before taking the screen
  Curses screen;
  for (;;) {
    const std::string text = render(client);
    erase();
    mvaddnstr(0, 0, text.c_str(), int(text.size()));
    refresh();
    const int key = getch();
    if (key == 'q' || key == 'Q') return kOk;
  }
}

}  // namespace

void add_top_command(CLI::App& app, Context& ctx) {
  add_command(app, ctx, "top",
              "a full-screen live view, refreshed every second: streams (fps, MB/s, drops), a\n"
              "ring bar per stream, subscribers (held, lag); q quits\n  e.g. fbctl top",
              false, run_top);
}

}  // namespace framebroker::fbctl
