#include "framebroker/internal/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace bip = boost::interprocess;

namespace framebroker::shm {

namespace {

std::string num(uint64_t n) {
  return std::to_string(n);
}

}  // namespace

std::string layout_problem(const SegmentHeader& h, uint64_t object_bytes,
                           std::optional<uint32_t> gen) {
  const uint64_t page = page_size();
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0)
    return "its header has no framebroker magic (not a framebroker segment)";
  if (h.layout_version != kLayoutVersion)
    return "its layout version is " + num(h.layout_version) + ", this library reads version " +
           num(kLayoutVersion);
  if (h.page_bytes != page)
    return "it was laid out for " + num(h.page_bytes) + "-byte pages, this machine has " +
           num(page);
  if (gen && h.gen != *gen)
    return "it holds generation " + num(h.gen) + ", the broker announced generation " + num(*gen);
  if (!std::memchr(h.instance, '\0', sizeof h.instance))
    return "its instance name is not NUL-terminated";
  if (!std::memchr(h.stream, '\0', sizeof h.stream)) return "its stream name is not NUL-terminated";
  if (h.total_bytes != object_bytes)
    return "its header says total_bytes = " + num(h.total_bytes) +
           ", the shared memory object has " + num(object_bytes) + " bytes";
  if (h.slots == 0 || h.slots > kMaxSlots)
    return "slots = " + num(h.slots) + " (expected 1 to " + num(kMaxSlots) + ")";
  if (h.slot_bytes == 0) return "slot_bytes = 0";
  if (h.slot_bytes > h.slot_stride)
    return "slot_bytes = " + num(h.slot_bytes) + " exceeds slot_stride = " + num(h.slot_stride);
  if (h.slot_stride % page != 0)
    return "slot_stride = " + num(h.slot_stride) + " is not a multiple of the page size " +
           num(page);
  if (h.data_offset % page != 0)
    return "data_offset = " + num(h.data_offset) + " is not a multiple of the page size " +
           num(page);
  // The header page holds the publish counter too: the records start on a later page.
  if (h.records_offset < page || h.records_offset % alignof(SlotRecord) != 0)
    return "records_offset = " + num(h.records_offset) +
           " overlaps the header page or is misaligned";
  uint64_t records_end = 0;
  if (__builtin_mul_overflow(uint64_t(h.slots), sizeof(SlotRecord), &records_end) ||
      __builtin_add_overflow(records_end, h.records_offset, &records_end) ||
      records_end > h.data_offset)
    return "the records of " + num(h.slots) +
           " slots at records_offset = " + num(h.records_offset) +
           " run past data_offset = " + num(h.data_offset);
  uint64_t data_end = 0;
  if (__builtin_mul_overflow(uint64_t(h.slots), h.slot_stride, &data_end) ||
      __builtin_add_overflow(data_end, h.data_offset, &data_end) || data_end > object_bytes)
    return num(h.slots) + " slots of slot_stride = " + num(h.slot_stride) +
           " from data_offset = " + num(h.data_offset) + " run past the end of its " +
           num(object_bytes) + " bytes";
  return {};
}

std::string segment_name(const std::string& instance, const std::string& stream, uint32_t gen) {
  return "/" + instance_segment_prefix(instance) + stream + "." + std::to_string(gen);
}

std::string instance_segment_prefix(const std::string& instance) {
  return "fb." + instance + ".";
}

size_t page_size() {
  static const size_t page = size_t(sysconf(_SC_PAGESIZE));
  return page;
}

uint64_t round_up_to_page(uint64_t n) {
  const uint64_t p = page_size();
  return (n + p - 1) / p * p;
}

std::unique_ptr<Segment> Segment::create(const std::string& name, const std::string& instance,
                                         const std::string& stream, uint32_t gen, uint32_t slots,
                                         uint64_t slot_bytes, bool lock_memory, int group) {
  if (slots == 0 || slot_bytes == 0) throw std::runtime_error("segment needs slots and bytes");
  if (slots > kMaxSlots)
    throw std::runtime_error("a segment holds at most " + std::to_string(kMaxSlots) + " slots");
  if (instance.size() >= 64 || stream.size() >= 64)
    throw std::runtime_error("instance and stream names must be shorter than 64 bytes");
  const uint64_t stride = round_up_to_page(slot_bytes);
  const uint64_t records_offset = round_up_to_page(sizeof(SegmentHeader));
  const uint64_t data_offset = round_up_to_page(records_offset + slots * sizeof(SlotRecord));
  const uint64_t total = data_offset + stride * slots;

  bip::shared_memory_object::remove(name.c_str());
  bip::permissions perm(0640);
  bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, perm);
  const int fd = shm.get_mapping_handle().handle;
  // Mode 0640 whatever the umask; the group (e.g. framebroker) is who may map it.
  if (::fchmod(fd, 0640) != 0 || (group >= 0 && ::fchown(fd, uid_t(-1), gid_t(group)) != 0)) {
    const int err = errno;
    bip::shared_memory_object::remove(name.c_str());
    throw std::runtime_error("cannot set the owner group or mode of " + name + ": " +
                             strerror(err));
  }
  shm.truncate(bip::offset_t(total));
  // Reserve the tmpfs pages now: a full /dev/shm is then an error here rather
  // than a SIGBUS in the pre-fault below.
  if (int err = ::posix_fallocate(shm.get_mapping_handle().handle, 0, off_t(total))) {
    bip::shared_memory_object::remove(name.c_str());
    throw std::runtime_error("cannot reserve " + std::to_string(total >> 20) +
                             " MiB of shared memory for " + name + ": " + strerror(err) +
                             " (is /dev/shm large enough?)");
  }
  bip::mapped_region region(shm, bip::read_write, 0, total);
  // Pre-fault: the VM hands freed pages back to the host, so a first touch
  // during acquisition would cost milliseconds per frame.
  std::memset(region.get_address(), 0, total);
  if (lock_memory) ::mlock(region.get_address(), total);  // best effort

  auto* h = static_cast<SegmentHeader*>(region.get_address());
  std::memcpy(h->magic, kMagic, sizeof kMagic);
  h->layout_version = kLayoutVersion;
  h->gen = gen;
  h->slots = slots;
  h->page_bytes = uint32_t(page_size());
  h->slot_bytes = slot_bytes;
  h->slot_stride = stride;
  h->records_offset = records_offset;
  h->data_offset = data_offset;
  h->total_bytes = total;
  std::strncpy(h->instance, instance.c_str(), sizeof h->instance - 1);
  std::strncpy(h->stream, stream.c_str(), sizeof h->stream - 1);
  return std::unique_ptr<Segment>(new Segment(name, std::move(region), *h, true));
}

std::unique_ptr<Segment> Segment::open_readonly(const std::string& name,
                                                std::optional<uint32_t> gen) {
  auto unusable = [&](const std::string& why) {
    return std::runtime_error("shared memory segment " + name + " is unusable: " + why);
  };
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_only);
    bip::offset_t size = 0;
    if (!shm.get_size(size)) throw unusable("its size cannot be read");
    if (size < bip::offset_t(sizeof(SegmentHeader)))
      throw unusable("it is " + num(uint64_t(size)) + " bytes, smaller than its header");
    bip::mapped_region region(shm, bip::read_only, 0, size_t(size));
    // One copy, checked and kept: the shared header may change under us after this.
    SegmentHeader h;
    std::memcpy(&h, region.get_address(), sizeof h);
    if (const std::string why = layout_problem(h, uint64_t(size), gen); !why.empty())
      throw unusable(why);
    // Map the pages now rather than fault them in one by one on the first pass
    // through the ring, in the middle of an acquisition.
    ::madvise(region.get_address(), region.get_size(), MADV_WILLNEED);
    return std::unique_ptr<Segment>(new Segment(name, std::move(region), h, false));
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error)
      throw SegmentMissing("shared memory segment " + name + " does not exist");
    throw std::runtime_error("cannot open shared memory " + name + ": " + e.what());
  }
}

bool Segment::remove(const std::string& name) {
  return bip::shared_memory_object::remove(name.c_str());
}

std::span<const std::byte> Segment::slot(uint32_t i) const {
  const auto& h = header_;
  if (i >= h.slots) throw std::out_of_range("slot index out of range");
  const auto* p = static_cast<const std::byte*>(base()) + h.data_offset + i * h.slot_stride;
  return {p, h.slot_bytes};
}

std::span<std::byte> Segment::writable_slot(uint32_t i) {
  if (!writable_) throw std::logic_error("segment is mapped read-only");
  auto s = slot(i);
  return {const_cast<std::byte*>(s.data()), s.size()};
}

SlotRecord* Segment::records() {
  if (!writable_) throw std::logic_error("segment is mapped read-only");
  return reinterpret_cast<SlotRecord*>(static_cast<std::byte*>(base()) + header_.records_offset);
}

}  // namespace framebroker::shm
