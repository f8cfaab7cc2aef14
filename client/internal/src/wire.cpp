#include "framebroker/internal/wire.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

namespace framebroker::wire {

void build_error(flatbuffers::FlatBufferBuilder& fbb, uint32_t request_id, ErrorCode code,
                 const std::string& message) {
  auto msg = fbb.CreateString(message);
  finish(fbb, request_id, Message::Error, CreateError(fbb, code, msg));
}

bool verify_envelope(const uint8_t* data, size_t size) {
  flatbuffers::Verifier verifier(data, size, /*max_depth=*/64, /*max_tables=*/1'000'000);
  return VerifySizePrefixedEnvelopeBuffer(verifier);
}

std::span<uint8_t> FrameReader::write_area(size_t min_free) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (buf_.size() - end_ < min_free) {
    if (begin_ > 0) {  // compact before growing
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < min_free) buf_.resize(end_ + min_free);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

FrameReader::Status FrameReader::next(Received& out) {
  if (end_ - begin_ < 4) return Status::NeedMore;
  const uint8_t* p = buf_.data() + begin_;
  const uint32_t len =
      uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  if (len > kMaxMessageBytes) return Status::TooLarge;
  if (end_ - begin_ < 4 + size_t(len)) return Status::NeedMore;
  out.bytes.reset();  // its buffer may be the one reused now
  auto bytes = buffer_for(4 + size_t(len));
  bytes->assign(p, p + 4 + len);
  begin_ += 4 + size_t(len);
  if (!verify_envelope(bytes->data(), bytes->size())) return Status::Malformed;
  out.bytes = std::move(bytes);
  return Status::Message;
}

std::shared_ptr<std::vector<uint8_t>> FrameReader::buffer_for(size_t size) {
  if (size > kPooledMessageBytes) return std::make_shared<std::vector<uint8_t>>();
  // A free buffer (only the pool refers to it: nobody can copy it any more) large enough, else
  // any free one, which then grows to the next power of two so that it seldom grows again.
  // Round-robin from the last one taken: the oldest messages are the likeliest released.
  std::shared_ptr<std::vector<uint8_t>>* free_one = nullptr;
  for (size_t i = 0; i < pool_.size(); ++i) {
    const size_t at = (pool_next_ + i) % pool_.size();
    auto& b = pool_[at];
    if (b.use_count() != 1) continue;
    if (!free_one) free_one = &b;
    if (b->capacity() >= size) {
      free_one = &b;
      break;
    }
  }
  if (free_one) {
    // use_count() is a relaxed load: the fence orders the last holder's reads (before its
    // release-ordered decrement) before our writes into the buffer.
    std::atomic_thread_fence(std::memory_order_acquire);
    pool_next_ = size_t(free_one - pool_.data() + 1) % pool_.size();
    if ((*free_one)->capacity() < size) (*free_one)->reserve(std::bit_ceil(size));
    return *free_one;
  }
  auto b = std::make_shared<std::vector<uint8_t>>();
  if (pool_.size() < kPoolBuffers) {
    b->reserve(std::max<size_t>(std::bit_ceil(size), kFirstCapacity));
    pool_.push_back(b);
  }
  return b;
}

void FrameReader::prepare(size_t buffers) {
  pool_.reserve(kPoolBuffers);
  while (pool_.size() < std::min(buffers, kPoolBuffers)) {
    auto b = std::make_shared<std::vector<uint8_t>>();
    b->reserve(kFirstCapacity);
    pool_.push_back(std::move(b));
  }
}

}  // namespace framebroker::wire
