// Fuzz target: the broker's distrustful drain of a connection's release lanes
// (daemon/release_lanes.hpp). Each input is a script run against a fresh ReleaseLanes: the
// broker's side (assign, unassign, set_wake, drain, drain_all) interleaved with what a hostile
// client does to the shared memfd it was given (any bytes in any record, any head), next to a
// model of which frames each subscriber holds. One op per byte (value % 9), arguments after it:
//   0 SUB          assign          1 SUB   unassign        2 SUB B  set_wake(B & 1)
//   3 SUB G S Q    the broker hands SUB frame {G, S, Q}
//   4 L P 24 bytes a raw record at lane L, position P       5 L B + 8 bytes  head: B&1 ? the
//                                                                      8 bytes : head + (B >> 1)
//   6 SUB          drain           7       drain_all
//   8 SUB K        the client releases its K-th held frame properly (record + head)
// Checks: a drain releases only frames held (once each) and counts them right; a violation says
// why and kills the lanes, which then release nothing; nothing the client writes crashes.
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "release_lanes.hpp"

namespace fd = framebroker::daemon;
namespace shm = framebroker::shm;

namespace {

[[noreturn]] void bug(const char* why) {
  std::fprintf(stderr, "fuzz_release_records: %s\n", why);
  std::abort();
}

struct Script {
  const uint8_t* p;
  const uint8_t* end;
  bool more() const { return p < end; }
  uint8_t u8() { return p < end ? *p++ : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(u8()) << (8 * i);
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fd::ReleaseLanes lanes;
  // The client's view: its own mapping of the memfd it was passed.
  void* mem =
      ::mmap(nullptr, sizeof(shm::LanesLayout), PROT_READ | PROT_WRITE, MAP_SHARED, lanes.fd(), 0);
  if (mem == MAP_FAILED) bug("cannot map the lanes' memfd");
  auto* layout = static_cast<shm::LanesLayout*>(mem);

  std::map<uint64_t, std::vector<fd::FrameRef>> held;  // by subscriber
  std::map<uint64_t, fd::ReleaseLanes::Assignment> assigned;
  bool dead = false;
  auto release = [&](uint64_t sub, const fd::FrameRef& f) {
    auto& h = held[sub];
    for (auto it = h.begin(); it != h.end(); ++it)
      if (*it == f) {
        h.erase(it);
        return true;
      }
    return false;
  };
  auto after_drain = [&](const std::optional<uint32_t>& n, const std::string& problem,
                         size_t held_before, size_t held_after) {
    if (dead && n && *n != 0) bug("dead lanes released frames");
    if (n) {
      if (held_before - held_after != *n) bug("the count released is not the frames let go");
    } else {
      if (problem.empty()) bug("a violation with no reason");
      if (!lanes.dead()) bug("a violation left the lanes alive");
      dead = true;
    }
  };
  auto total_held = [&] {
    size_t n = 0;
    for (const auto& [s, h] : held) n += h.size();
    return n;
  };

  Script in{data, data + size};
  while (in.more()) {
    const uint8_t op = in.u8() % 9;
    switch (op) {
      case 0: {
        const uint64_t sub = 1 + in.u8() % 24;
        if (const auto a = lanes.assign(sub)) {
          if (a->lane < 1 || a->lane > shm::kLanes || a->epoch == 0) bug("a bad assignment");
          assigned[sub] = *a;
        }
        break;
      }
      case 1: {
        const uint64_t sub = 1 + in.u8() % 24;
        lanes.unassign(sub);
        assigned.erase(sub);
        held.erase(sub);  // an ended subscription's holds went back another way
        if (lanes.has(sub)) bug("unassign left the lane");
        break;
      }
      case 2: {
        const uint64_t sub = 1 + in.u8() % 24;
        lanes.set_wake(sub, in.u8() & 1);
        break;
      }
      case 3: {
        const uint64_t sub = 1 + in.u8() % 24;
        const uint32_t gen = in.u8(), slot = in.u8();
        held[sub].push_back({gen, slot, in.u8()});
        break;
      }
      case 4: {
        auto& lane = layout->lanes[in.u8() % shm::kLanes];
        uint8_t bytes[sizeof(shm::ReleaseRecord)];
        const uint8_t pos = in.u8();
        for (auto& b : bytes) b = in.u8();
        std::memcpy(&lane.records[pos % shm::kLaneRecords], bytes, sizeof bytes);
        break;
      }
      case 5: {
        auto& lane = layout->lanes[in.u8() % shm::kLanes];
        const uint8_t how = in.u8();
        if (how & 1)
          lane.head.store(in.u64());
        else
          lane.head.store(lane.head.load() + (how >> 1));
        break;
      }
      case 6: {
        const uint64_t sub = 1 + in.u8() % 24;
        std::string problem;
        const size_t before = total_held();
        const auto n = lanes.drain(
            sub, [&](const fd::FrameRef& f) { return release(sub, f); }, problem);
        after_drain(n, problem, before, total_held());
        break;
      }
      case 7: {
        std::string problem;
        const size_t before = total_held();
        const auto n = lanes.drain_all(release, problem);
        after_drain(n, problem, before, total_held());
        break;
      }
      case 8: {  // as LaneWriter does it
        const uint64_t sub = 1 + in.u8() % 24;
        const uint8_t k = in.u8();
        const auto a = assigned.find(sub);
        auto& h = held[sub];
        if (a == assigned.end() || h.empty()) break;
        const fd::FrameRef f = h[k % h.size()];
        auto& lane = layout->lanes[a->second.lane - 1];
        const uint64_t head = lane.head.load();
        if (head - lane.tail.load() >= shm::kLaneRecords) break;  // full: the socket instead
        lane.records[head % shm::kLaneRecords] = {f.seq, f.gen, f.slot, a->second.epoch, 0};
        lane.head.store(head + 1);
        break;
      }
    }
  }
  ::munmap(mem, sizeof(shm::LanesLayout));
  return 0;
}
