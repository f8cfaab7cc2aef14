// The shared-memory segment of one stream generation:
//   [header page][slot records][slot 0][slot 1]...   every slot page-aligned.
// The broker creates it read-write (mode 0640); subscribers map it PROT_READ.
#pragma once

#include <boost/interprocess/mapped_region.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace framebroker::shm {

constexpr uint32_t kLayoutVersion = 1;
constexpr char kMagic[8] = {'F', 'B', 'R', 'I', 'N', 'G', '\0', '\0'};

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

class Segment {
 public:
  // Creates (replacing any stale one), sizes, pre-faults. Throws std::runtime_error.
  static std::unique_ptr<Segment> create(const std::string& name, const std::string& instance,
                                         const std::string& stream, uint32_t gen, uint32_t slots,
                                         uint64_t slot_bytes, bool lock_memory,
                                         int group = -1);  // group: owner group id, -1 = ours
  // Opens read-only and checks the header. Throws std::runtime_error.
  static std::unique_ptr<Segment> open_readonly(const std::string& name);
  static bool remove(const std::string& name);

  const SegmentHeader& header() const { return *static_cast<const SegmentHeader*>(base()); }
  const std::string& name() const { return name_; }
  uint32_t slots() const { return header().slots; }
  uint64_t slot_bytes() const { return header().slot_bytes; }

  std::span<const std::byte> slot(uint32_t i) const;
  std::span<std::byte> writable_slot(uint32_t i);  // broker only
  SlotRecord* records();                           // broker only

 private:
  Segment(std::string name, boost::interprocess::mapped_region region, bool writable)
      : name_(std::move(name)), region_(std::move(region)), writable_(writable) {}
  void* base() const { return region_.get_address(); }

  std::string name_;
  boost::interprocess::mapped_region region_;
  bool writable_;
};

}  // namespace framebroker::shm
