// The shared-memory segment of one stream generation:
//   [header page][slot records][slot 0][slot 1]...   every slot page-aligned.
// The broker creates it read-write (mode 0640); subscribers map it PROT_READ.
// Whoever can write the object can rewrite its header at any time, so a Segment checks the
// header once when it maps it and from then on uses that checked copy, never the shared page.
#pragma once

#include <boost/interprocess/mapped_region.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace framebroker::shm {

constexpr uint32_t kLayoutVersion = 1;
constexpr char kMagic[8] = {'F', 'B', 'R', 'I', 'N', 'G', '\0', '\0'};
// More than any ring a configuration can ask for in practice; a header claiming more is damaged.
constexpr uint32_t kMaxSlots = 1u << 24;

struct SegmentHeader {
  char magic[8];
  uint32_t layout_version;
  uint32_t gen;
  uint32_t slots;
  uint32_t page_bytes;
  uint64_t slot_bytes;   // usable bytes per slot
  uint64_t slot_stride;  // distance between slots (page multiple)
  uint64_t records_offset;
  uint64_t data_offset;  // first slot (page multiple)
  uint64_t total_bytes;
  char instance[64];
  char stream[64];
};

// In the header page, after the header: seq + 1 of the last frame committed, written by the broker
// at each commit. A spinning subscriber watches it instead of polling its socket (it says only
// "look now"; what a subscriber gets still comes over the wire).
constexpr size_t kPublishCounterOffset = 2048;
static_assert(sizeof(SegmentHeader) <= kPublishCounterOffset);

// Written by the broker at commit, for inspection tools; clients trust the
// wire, not these.
struct SlotRecord {
  uint64_t seq;
  uint64_t bytes;
};

// "/fb.<instance>.<stream>.<gen>"
std::string segment_name(const std::string& instance, const std::string& stream, uint32_t gen);
// The prefix shared by every segment of an instance: "fb.<instance>." (no slash),
// as the names appear in /dev/shm.
std::string instance_segment_prefix(const std::string& instance);

size_t page_size();
uint64_t round_up_to_page(uint64_t n);

// Thrown by Segment::open_readonly when there is no such object (e.g. the broker retired that
// generation since it announced it); other failures are std::runtime_error.
struct SegmentMissing : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Why a header read from an object of `object_bytes` cannot be used, or "" when it can (checked
// against `gen` when given). Segment::open_readonly checks with it, and so does a publisher that
// maps the fd the broker passed it.
std::string layout_problem(const SegmentHeader& h, uint64_t object_bytes,
                           std::optional<uint32_t> gen);

class Segment {
 public:
  // Creates (replacing any stale one), sizes, pre-faults. Throws std::runtime_error.
  static std::unique_ptr<Segment> create(const std::string& name, const std::string& instance,
                                         const std::string& stream, uint32_t gen, uint32_t slots,
                                         uint64_t slot_bytes, bool lock_memory,
                                         int group = -1);  // group: owner group id, -1 = ours
  // Opens read-only and checks the header: magic, layout version, page size, generation
  // (against `gen` when given), NUL-terminated names, slot count, alignment, and that the
  // records and slots lie inside the object, whose size must be total_bytes. Throws
  // std::runtime_error naming the segment and what is wrong.
  static std::unique_ptr<Segment> open_readonly(const std::string& name,
                                                std::optional<uint32_t> gen = std::nullopt);
  static bool remove(const std::string& name);

  // The header as checked at map time (a copy: later writes to the shared page are not seen).
  const SegmentHeader& header() const { return header_; }
  const std::string& name() const { return name_; }
  uint32_t slots() const { return header_.slots; }
  uint64_t slot_bytes() const { return header_.slot_bytes; }

  std::span<const std::byte> slot(uint32_t i) const;
  // The whole mapping: header, slot records and slots.
  std::span<const std::byte> bytes() const {
    return {static_cast<const std::byte*>(region_.get_address()), region_.get_size()};
  }
  std::span<std::byte> writable_slot(uint32_t i);  // broker only
  SlotRecord* records();                           // broker only
  void count_published(uint64_t seq_plus_one) {    // broker only
    __atomic_store_n(publish_counter(), seq_plus_one, __ATOMIC_RELEASE);
  }
  uint64_t published_count() const { return __atomic_load_n(publish_counter(), __ATOMIC_ACQUIRE); }

 private:
  Segment(std::string name, boost::interprocess::mapped_region region, const SegmentHeader& header,
          bool writable)
      : name_(std::move(name)), region_(std::move(region)), header_(header), writable_(writable) {}
  void* base() const { return region_.get_address(); }
  uint64_t* publish_counter() const {
    return reinterpret_cast<uint64_t*>(static_cast<char*>(base()) + kPublishCounterOffset);
  }

  std::string name_;
  boost::interprocess::mapped_region region_;
  SegmentHeader header_;
  bool writable_;
};

}  // namespace framebroker::shm
