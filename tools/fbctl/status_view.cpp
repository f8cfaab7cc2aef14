#include "fbctl/status_view.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

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

bool is_bridge(const ClientReport& c) {
  return c.role.starts_with("bridge");
}

// A field of a bridge's stats object as text ("-" when absent or not a number/string).
std::string field(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  if (it->is_number()) return fixed(it->get<double>(), 1);
  return "-";
}

std::string joined(const nlohmann::json& j, const char* key) {
  std::string out;
  if (const auto it = j.find(key); it != j.end() && it->is_array())
    for (const auto& v : *it)
      if (v.is_string()) out += (out.empty() ? "" : ",") + v.get<std::string>();
  return out.empty() ? "-" : out;
}

// Exporter: its streams and peers; importer: the peer it connects to and its local streams.
std::string streams_or_peer(const nlohmann::json& j) {
  if (j.value("side", "") == "import") return field(j, "peer") + " -> " + joined(j, "stream_names");
  return joined(j, "stream_names") + " @ " + field(j, "bind") + " (" + field(j, "mode") + ", " +
         field(j, "peers") + " peer" + (field(j, "peers") == "1" ? "" : "s") + ")";
}

std::string lag_ms(const nlohmann::json& j) {
  const auto it = j.find("lag_us");
  if (it == j.end() || !it->is_number() || it->get<double>() < 0) return "-";
  return fixed(it->get<double>() / 1000.0, 1);
}

}  // namespace

void print_bridges(std::ostream& out, const Status& s) {
  Table t({"ROLE", "CLIENT", "PID", "STREAMS / PEER", "LINK", "MB/S", "FRAMES", "GAPS", "LAG_MS",
           "IN_FLIGHT"});
  for (const auto& c : s.clients) {
    if (!is_bridge(c)) continue;
    const auto j = nlohmann::json::parse(c.stats, nullptr, false);
    if (!j.is_object()) continue;
    const bool importer = j.value("side", "") == "import";
    const auto bps = j.find("bytes_per_s");
    t.row({c.role, c.client, std::to_string(c.pid), streams_or_peer(j), field(j, "link"),
           bps != j.end() && bps->is_number() ? fixed(bps->get<double>() / 1e6, 1) : "-",
           field(j, "frames"), importer ? field(j, "gaps") : "-", importer ? lag_ms(j) : "-",
           importer ? "-" : field(j, "in_flight")});
  }
  t.print(out);
  if (t.empty()) out << "(no bridges)\n";
}

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
  // Clients that reported their own counters: bridges as a table, any other verbatim.
  if (std::any_of(s.clients.begin(), s.clients.end(), is_bridge)) {
    out << "\nBridges\n";
    print_bridges(out, s);
  }
  for (const auto& c : s.clients)
    if (!is_bridge(c))
      out << "\n"
          << c.client << " (pid " << c.pid << (c.role.empty() ? "" : ", " + c.role)
          << "): " << c.stats << "\n";
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
