// framebroker::Status: a snapshot of the broker, as `fbctl status --json` shows it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace framebroker {

struct BrokerStatus {
  std::string instance;
  int pid = 0;
  std::string version;
  double uptime_s = 0;
  uint32_t clients = 0;
};

struct StreamStatus {
  std::string name, camera;
  uint32_t gen = 0, slots = 0;
  uint64_t slot_bytes = 0;
  uint32_t free = 0, writing = 0, ready = 0;
  uint64_t published = 0, dropped = 0;
  double fps = 0;
  int64_t latest_seq = -1;  // -1 before the first frame
  uint32_t width = 0, height = 0;
  std::string pixel_type;
  std::string overflow;
  std::string segment;
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
};

struct CameraStatus {
  std::string name, driver;
  bool running = false;
  uint64_t frames = 0;
};

struct Status {
  BrokerStatus broker;
  std::vector<StreamStatus> streams;
  std::vector<SubscriberStatus> subscribers;
  std::vector<CameraStatus> cameras;
};

// The JSON document of `fbctl status --json` (keys are stable: add, never rename).
std::string to_json(const Status& s, int indent = 2);

}  // namespace framebroker
