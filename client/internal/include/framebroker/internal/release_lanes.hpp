// Release lanes: how a client gives frames back without waking the broker.
//
// At Hello the broker makes one memfd per connection (sealed against resizing, passed to that
// client alone with SCM_RIGHTS) holding kLanes single-producer single-consumer rings. Each
// subscription is given a lane and an epoch. The client appends a ReleaseRecord and advances
// `head`; the broker drains the lane on its own schedule (docs/DESIGN.md, "Release lanes") and
// advances `tail`. When the broker wants to hear of a release at once it sets `wake`; the
// client that finds it set clears it and sends ReleasesWritten.
//
// The broker treats everything here as written by a hostile process: it keeps its own tail,
// reads head once per drain, and checks every record as it checks a socket Release.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace framebroker::shm {

constexpr char kLanesMagic[8] = {'F', 'B', 'L', 'A', 'N', 'E', 'S', '\0'};
constexpr uint32_t kLanesVersion = 1;
constexpr uint32_t kLanes = 16;
constexpr uint32_t kLaneRecords = 256;  // a power of two
static_assert((kLaneRecords & (kLaneRecords - 1)) == 0);

struct ReleaseRecord {
  uint64_t seq;
  uint32_t gen;
  uint32_t slot;
  uint32_t epoch;  // the lane's assignment this release belongs to (Subscribed.release_epoch)
  uint32_t reserved;
};
static_assert(sizeof(ReleaseRecord) == 24);

// Each counter on its own cache line: the client writes head, the broker tail and wake.
struct alignas(64) ReleaseLane {
  alignas(64) std::atomic<uint64_t> head;  // records written (client)
  alignas(64) std::atomic<uint64_t> tail;  // records taken (broker; the client reads it for room)
  alignas(64) std::atomic<uint32_t> wake;  // 1: send ReleasesWritten after writing (broker sets)
  alignas(64) ReleaseRecord records[kLaneRecords];
};

struct LanesHeader {
  char magic[8];
  uint32_t version;
  uint32_t lanes;
  uint32_t records;
  uint32_t lane_bytes;
};

struct alignas(64) LanesLayout {
  LanesHeader header;
  ReleaseLane lanes[kLanes];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "the counters are shared between processes");

}  // namespace framebroker::shm
