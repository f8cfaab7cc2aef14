// framebroker::Status: a snapshot of the broker, as `fbctl status --json` shows it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "framebroker/sequence.hpp"

namespace framebroker {

struct BrokerStatus {
  std::string instance;
  int pid = 0;
  std::string version;
  double uptime_s = 0;
  uint32_t clients = 0;
};

// The sequence a stream runs, or ran last.
struct SequenceStatus {
  uint64_t id = 0;
  SequenceSpec spec;
  uint64_t positions = 0;  // used so far (frames + missed)
  uint64_t missed = 0;
  std::vector<uint32_t> last_index;  // of the last frame, in spec.axes order
  bool running = false, complete = false;
};

struct StreamStatus {
  std::string name, camera;
  uint32_t gen = 0, slots = 0;
  uint64_t slot_bytes = 0;
  uint32_t free = 0, writing = 0, ready = 0;
  uint64_t published = 0, dropped = 0;
  uint64_t dropped_ring_full = 0, dropped_camera = 0;  // dropped, by reason
  uint64_t frame_bytes = 0;
  double mb_per_s = 0;
  uint32_t retired_gens = 0;  // older generations some client still holds
  // commit -> every client released the frame, over the frames since the camera last started
  uint64_t recycled = 0;
  double recycle_p50_us = 0, recycle_p99_us = 0, recycle_p999_us = 0, recycle_max_us = 0;
  double fps = 0;
  int64_t latest_seq = -1;  // -1 before the first frame
  uint32_t width = 0, height = 0;
  std::string pixel_type;
  std::string overflow;
  std::string segment;
  std::string producer;         // "camera", or "client" for a published stream
  std::string producer_client;  // the publishing client's name
  int producer_pid = 0;
  std::string
      state;  // a camera's "running", "idle" or "error"; a published one's "live" or "ended"
  std::optional<SequenceStatus> sequence;
};

struct SubscriberStatus {
  uint64_t id = 0;
  std::string client;
  int pid = 0;
  uint32_t uid = 0;
  std::string stream;
  std::string mode;  // "every" or "latest"
  uint32_t max_hold = 0, window = 0;
  uint32_t held = 0, queued = 0;
  uint64_t delivered = 0, missed = 0, conflated = 0;
  int64_t last_seq = -1;  // last seq sent to it
  int64_t lag = 0;        // the stream's latest seq - last_seq
  int64_t connected_unix_ms = 0;
  uint32_t gid = 0;
  std::string role;  // ConnectOptions::role of its client (fbsave: "saver", fbctl: "control")
};

struct CameraStatus {
  std::string name, driver;
  bool running = false;
  uint64_t frames = 0;
  std::string state;  // idle, running, error
  std::string error;
  double fps = 0;
};

struct SlotHolderStatus {
  uint64_t subscriber = 0;  // 0: the stream's latest cache
  std::string client;
  int pid = 0;
  bool queued = false;  // queued for the client, not sent yet
};

struct SlotStatus {
  uint32_t index = 0;
  std::string state;  // free, writing, ready
  int64_t seq = -1;
  double age_ms = 0;
  std::vector<SlotHolderStatus> holders;
};

struct SlotMapStatus {
  std::string stream;
  uint32_t gen = 0;
  std::vector<SlotStatus> slots;
};

// A client that reported its own counters (Client::report_stats), e.g. an fbbridge.
struct ClientReport {
  uint64_t id = 0;  // the broker's connection id
  std::string client;
  int pid = 0;
  std::string role;   // ConnectOptions::role (fbbridge: "bridge-export", "bridge-import")
  std::string stats;  // the JSON object it sent last, verbatim
};

struct Status {
  BrokerStatus broker;
  std::vector<StreamStatus> streams;
  std::vector<SubscriberStatus> subscribers;
  std::vector<CameraStatus> cameras;
  std::optional<SlotMapStatus> slot_map;  // when asked for
  std::vector<ClientReport> clients;      // the clients that reported stats
};

// The JSON document of `fbctl status --json` (keys are stable: add, never rename).
std::string to_json(const Status& s, int indent = 2);
// {"stream", "gen", "slots": [{"index", "state", "seq", "age_ms", "holders": [...]}]}
std::string to_json(const SlotMapStatus& m, int indent = 2);

}  // namespace framebroker
