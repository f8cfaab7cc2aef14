#include "fbsave/chunk_pipeline.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <utility>

namespace framebroker::fbsave {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}  // namespace

ChunkPipeline::Region::~Region() {
  if (base) ::munmap(base, bytes);
}

size_t ChunkPipeline::memory_bytes(const Options& o) {
  const size_t buffers = o.buffers ? o.buffers : default_buffers(std::max(1u, o.encoders));
  return buffers *
         (round_up_direct(o.raw_bytes) + (o.out_bytes ? round_up_direct(o.out_bytes) : 0));
}

ChunkPipeline::ChunkPipeline(const Options& o, Encode encode, Write write)
    : encode_(std::move(encode)),
      write_(std::move(write)),
      raw_bytes_(round_up_direct(std::max<size_t>(o.raw_bytes, 1))),
      out_bytes_(o.out_bytes ? round_up_direct(o.out_bytes) : 0) {
  const uint32_t encoders = std::max(1u, o.encoders);
  const size_t buffers = o.buffers ? o.buffers : default_buffers(encoders);
  // One mapping, aligned to a huge page so that the kernel can back it with 2 MiB pages: their
  // first touch costs a half to a third of 4 KiB pages' on a VM (measured: 128 MiB in 180-330 ms
  // against 440-900 ms), and the TLB holds the whole buffer.
  const size_t need = buffers * (raw_bytes_ + out_bytes_);
  region_.bytes = need + kHugePage;
  void* p =
      ::mmap(nullptr, region_.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  region_.base = static_cast<std::byte*>(p);
  std::byte* at = region_.base + (kHugePage - reinterpret_cast<uintptr_t>(p) % kHugePage);
#ifdef MADV_HUGEPAGE
  ::madvise(at, need, MADV_HUGEPAGE);  // a hint: without it (or refused) 4 KiB pages serve
#endif
  slots_.resize(buffers);
  for (Slot& s : slots_) {
    s.raw = at;
    at += raw_bytes_;
    if (out_bytes_) {
      s.out = at;
      at += out_bytes_;
    }
  }
  free_.reserve(buffers);
  order_.assign(buffers, -1);
  prefault(0);  // the first buffer now; the others on prefaulter_, each free when touched
  free_.push_back(0);
  try {
    prefaulter_ = std::thread([this] { run_prefault(); });
    writer_ = std::thread([this] { run_writer(); });
    for (uint32_t i = 0; i < encoders; ++i) encoders_.emplace_back([this] { run_encoder(); });
  } catch (...) {
    finish();
    throw;
  }
}

// Writes every page, so that no page fault is left for the frame path (or for O_DIRECT, which
// would fault them in get_user_pages).
void ChunkPipeline::prefault(size_t slot) {
  std::memset(slots_[slot].raw, 0, raw_bytes_);
  if (out_bytes_) std::memset(slots_[slot].out, 0, out_bytes_);
}

void ChunkPipeline::run_prefault() {
  for (size_t i = 1; i < slots_.size(); ++i) {
    {
      std::lock_guard lk(mu_);
      if (stop_) return;  // finish() came first: nobody needs the others
    }
    prefault(i);
    {
      std::lock_guard lk(mu_);
      free_.insert(free_.begin(), int(i));  // behind those already free: reused buffers first
    }
    free_cv_.notify_all();
  }
}

ChunkPipeline::~ChunkPipeline() {
  finish();
}

std::byte* ChunkPipeline::acquire() {
  if (held_ >= 0) return slots_[size_t(held_)].raw;
  std::unique_lock lk(mu_);
  free_cv_.wait(lk, [&] { return !free_.empty() || failed_; });
  if (failed_) {
    reported_ = true;
    throw std::runtime_error(error_);
  }
  held_ = free_.back();
  free_.pop_back();
  return slots_[size_t(held_)].raw;
}

void ChunkPipeline::submit(uint64_t index, uint32_t frames) {
  if (held_ < 0) throw std::logic_error("ChunkPipeline::submit() without acquire()");
  Slot& s = slots_[size_t(held_)];
  s.index = index;
  s.frames = frames;
  s.encoded = false;
  s.error.clear();
  {
    std::lock_guard lk(mu_);
    order_[size_t(submitted_++ % order_.size())] = held_;
  }
  held_ = -1;
  encode_cv_.notify_one();
}

void ChunkPipeline::check() {
  std::lock_guard lk(mu_);
  if (failed_) {
    reported_ = true;
    throw std::runtime_error(error_);
  }
}

void ChunkPipeline::fail(const std::string& error) {
  {
    std::lock_guard lk(mu_);
    note_error(error);
    reported_ = true;
  }
  free_cv_.notify_all();
}

bool ChunkPipeline::failed() const {
  std::lock_guard lk(mu_);
  return failed_;
}

uint64_t ChunkPipeline::durable() const {
  std::lock_guard lk(mu_);
  return durable_;
}

void ChunkPipeline::note_error(std::string error) {
  if (failed_) return;
  failed_ = true;
  error_ = std::move(error);
}

void ChunkPipeline::run_encoder() {
  std::unique_lock lk(mu_);
  for (;;) {
    encode_cv_.wait(lk, [&] { return next_encode_ < submitted_ || stop_; });
    if (next_encode_ == submitted_) return;  // stopping, nothing left
    Slot& s = slots_[size_t(order_[size_t(next_encode_++ % order_.size())])];
    if (!failed_) {  // after an error nothing more is written: skip the work
      lk.unlock();
      try {
        s.result = encode_(s.index, s.raw, s.frames, s.out);
      } catch (const std::exception& e) {
        s.error = e.what();
      }
      if (s.error.empty() && s.result.empty())
        s.error = "encoding buffer " + std::to_string(s.index) + " gave no bytes";
      lk.lock();
    }
    s.encoded = true;
    write_cv_.notify_one();
  }
}

void ChunkPipeline::run_writer() {
  std::unique_lock lk(mu_);
  for (;;) {
    write_cv_.wait(lk, [&] {
      return (next_write_ < submitted_ &&
              slots_[size_t(order_[size_t(next_write_ % order_.size())])].encoded) ||
             (stop_ && next_write_ == submitted_);
    });
    if (next_write_ == submitted_) return;  // stopping, everything written
    const int id = order_[size_t(next_write_ % order_.size())];
    Slot& s = slots_[size_t(id)];
    if (!failed_) {
      std::string err = std::move(s.error);
      if (err.empty()) {
        lk.unlock();
        try {
          err = write_(s.index, s.result);
        } catch (const std::exception& e) {
          err = e.what();
        }
        lk.lock();
      }
      if (err.empty())
        durable_ += s.frames;
      else
        note_error(std::move(err));
    }
    ++next_write_;
    free_.push_back(id);
    free_cv_.notify_all();
  }
}

std::string ChunkPipeline::finish() {
  if (held_ >= 0) {  // never submitted: back to the free list
    std::lock_guard lk(mu_);
    free_.push_back(held_);
    held_ = -1;
  }
  {
    std::lock_guard lk(mu_);
    if (finished_) return {};
    finished_ = true;
    stop_ = true;
  }
  encode_cv_.notify_all();
  write_cv_.notify_all();
  for (std::thread& t : encoders_)
    if (t.joinable()) t.join();
  if (writer_.joinable()) writer_.join();
  if (prefaulter_.joinable()) prefaulter_.join();
  std::lock_guard lk(mu_);
  if (!failed_ || reported_) return {};
  reported_ = true;
  return error_;
}

}  // namespace framebroker::fbsave
