#include "fbctl/status_view.hpp"

#include <chrono>
#include <ctime>

#include "common/table.hpp"

namespace framebroker::fbctl {

using tools::count_or_dash;
using tools::fixed;
using tools::Table;

namespace {

std::string format_of(const StreamStatus& st) {
  return std::to_string(st.width) + "x" + std::to_string(st.height) + " " + st.pixel_type;
}

// "camera sim0", or the publishing client and its pid.
std::string producer_of(const StreamStatus& st) {
  if (st.producer == "client")
    return "client '" + st.producer_client + "' pid " + std::to_string(st.producer_pid);
  return "camera " + st.camera;
}

std::string limit_of(const SubscriberStatus& s) {
  return s.mode == "latest" ? "window " + std::to_string(s.window)
                            : "max_hold " + std::to_string(s.max_hold);
}

std::string since(int64_t unix_ms) {
  const std::time_t t = std::time_t(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return std::string(buf) + " (" + fixed(double(now_ms - unix_ms) / 1000.0, 0) + " s)";
}

std::string holder_text(const SlotHolderStatus& h) {
  if (h.subscriber == 0) return "latest cache";
  return "#" + std::to_string(h.subscriber) + " " + h.client + " (pid " + std::to_string(h.pid) +
         (h.queued ? ", queued)" : ")");
}

}  // namespace

std::string sequence_text(const SequenceStatus& q) {
  std::string t = "sequence " + std::to_string(q.id) + ":";
  for (size_t i = 0; i < q.spec.axes.size(); ++i) {
    const auto& a = q.spec.axes[i];
    const uint32_t at = q.positions && i < q.last_index.size() ? q.last_index[i] + 1 : 0;
    t += (i ? "  " : " ") + std::string(1, a.name) + " " + std::to_string(at) + "/" +
         std::to_string(a.size);
  }
  t += "  (" + std::to_string(q.positions) + "/" + std::to_string(q.spec.frames()) + ", " +
       std::to_string(q.missed) + " missed)  ";
  t += q.running ? "running" : q.complete ? "complete" : "stopped early";
  return t;
}

void print_status(std::ostream& out, const Status& s) {
  out << "broker  instance " << s.broker.instance << "  pid " << s.broker.pid << "  version "
      << s.broker.version << "  up " << fixed(s.broker.uptime_s, 0) << " s  clients "
      << s.broker.clients << "\n\n";
  Table streams({"STREAM", "FORMAT", "PRODUCER", "STATE", "GEN", "SLOTS f/w/r", "FPS", "PUBLISHED",
                 "DROPPED", "LATEST"});
  for (const auto& st : s.streams)
    streams.row({st.name, format_of(st), producer_of(st), st.state, std::to_string(st.gen),
                 std::to_string(st.free) + "/" + std::to_string(st.writing) + "/" +
                     std::to_string(st.ready) + " of " + std::to_string(st.slots),
                 fixed(st.fps, 1), std::to_string(st.published), std::to_string(st.dropped),
                 count_or_dash(st.latest_seq)});
  streams.print(out);
  if (streams.empty()) out << "(no streams)\n";
  bool sequences = false;
  for (const auto& st : s.streams) {
    if (!st.sequence) continue;
    if (!sequences) out << "\n";
    sequences = true;
    out << st.name << "  " << sequence_text(*st.sequence) << "\n";
  }
  out << "\n";
  Table subs({"ID", "CLIENT", "PID", "STREAM", "MODE", "HELD", "QUEUED", "DELIVERED", "MISSED",
              "CONFLATED"});
  for (const auto& sub : s.subscribers)
    subs.row({std::to_string(sub.id), sub.client, std::to_string(sub.pid), sub.stream, sub.mode,
              std::to_string(sub.held), std::to_string(sub.queued), std::to_string(sub.delivered),
              std::to_string(sub.missed), std::to_string(sub.conflated)});
  subs.print(out);
  if (subs.empty()) out << "(no subscribers)\n";
}

void print_streams(std::ostream& out, const Status& s) {
  Table t({"STREAM", "PRODUCER", "STATE", "GEN", "SLOTS", "SLOT_MB", "FREE", "WRITING", "READY",
           "FPS", "MB/S", "PUBLISHED", "DROPPED", "RING_FULL", "CAMERA_LOST", "LATEST", "FORMAT"});
  for (const auto& st : s.streams)
    t.row({st.name, producer_of(st), st.state, std::to_string(st.gen), std::to_string(st.slots),
           fixed(double(st.slot_bytes) / 1048576.0, 2), std::to_string(st.free),
           std::to_string(st.writing), std::to_string(st.ready), fixed(st.fps, 1),
           fixed(st.mb_per_s, 1), std::to_string(st.published), std::to_string(st.dropped),
           std::to_string(st.dropped_ring_full), std::to_string(st.dropped_camera),
           count_or_dash(st.latest_seq), format_of(st)});
  t.print(out);
  if (t.empty()) out << "(no streams)\n";
}

void print_subscribers(std::ostream& out, const Status& s) {
  Table t({"ID", "CLIENT", "ROLE", "PID", "UID", "STREAM", "MODE", "LIMIT", "HELD", "QUEUED",
           "DELIVERED", "MISSED", "CONFLATED", "LAG", "CONNECTED"});
  for (const auto& sub : s.subscribers)
    t.row({std::to_string(sub.id), sub.client, sub.role.empty() ? "-" : sub.role,
           std::to_string(sub.pid), std::to_string(sub.uid), sub.stream, sub.mode, limit_of(sub),
           std::to_string(sub.held), std::to_string(sub.queued), std::to_string(sub.delivered),
           std::to_string(sub.missed), std::to_string(sub.conflated), std::to_string(sub.lag),
           since(sub.connected_unix_ms)});
  t.print(out);
  if (t.empty()) out << "(no subscribers)\n";
}

void print_cameras(std::ostream& out, const Status& s) {
  Table t({"CAMERA", "DRIVER", "STATE", "FRAMES", "FPS", "ERROR"});
  for (const auto& c : s.cameras)
    t.row({c.name, c.driver, c.state, std::to_string(c.frames), fixed(c.fps, 1), c.error});
  t.print(out);
  if (t.empty()) out << "(no cameras)\n";
}

std::string ring_bar(const SlotMapStatus& m) {
  std::string bar;
  for (const auto& sl : m.slots) {
    char c = '.';
    if (sl.state == "writing") {
      c = 'w';
    } else if (sl.state == "ready") {
      c = 'c';
      for (const auto& h : sl.holders) {
        if (h.subscriber != 0 && !h.queued) c = 'H';
        if (h.subscriber != 0 && h.queued && c != 'H') c = 'q';
      }
    }
    bar += c;
  }
  return bar;
}

void print_slots(std::ostream& out, const SlotMapStatus& m) {
  out << m.stream << "  gen " << m.gen << "  " << m.slots.size() << " slots\n";
  out << "[" << ring_bar(m) << "]\n";
  out << "  . free  w writing  c latest cache only  q queued for a client  H held by a client\n\n";
  Table t({"SLOT", "STATE", "SEQ", "AGE_MS", "HOLDERS"});
  size_t free = 0;
  for (const auto& sl : m.slots) {
    if (sl.state == "free") {
      ++free;
      continue;
    }
    std::string holders;
    for (const auto& h : sl.holders) holders += (holders.empty() ? "" : ", ") + holder_text(h);
    t.row({std::to_string(sl.index), sl.state, count_or_dash(sl.seq),
           sl.seq < 0 ? "-" : fixed(sl.age_ms, 1), holders.empty() ? "-" : holders});
  }
  t.print(out);
  out << "(" << free << " free slot" << (free == 1 ? "" : "s") << " not listed)\n";
}

}  // namespace framebroker::fbctl
