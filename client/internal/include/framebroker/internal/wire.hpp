// Message framing shared by the client library and the broker: a u32
// little-endian length, then one verified FlatBuffers Envelope.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "framebroker/framebroker_generated.h"

namespace framebroker::wire {

constexpr uint32_t kProtocolVersion = 1;
constexpr size_t kMaxMessageBytes = 1 << 20;

// Finishes fbb with the length prefix. The bytes to send are then
// {fbb.GetBufferPointer(), fbb.GetSize()}.
template <typename T>
void finish(flatbuffers::FlatBufferBuilder& fbb, uint32_t request_id, Message type,
            flatbuffers::Offset<T> body) {
  EnvelopeBuilder env(fbb);
  env.add_request_id(request_id);
  env.add_message_type(type);
  env.add_message(body.Union());
  fbb.FinishSizePrefixed(env.Finish());
}

// Builds a complete Error message.
void build_error(flatbuffers::FlatBufferBuilder& fbb, uint32_t request_id, ErrorCode code,
                 const std::string& message);

// One received message: its bytes, length prefix included (FlatBuffers aligns
// relative to the prefixed start), kept alive by shared ownership so that
// frames can point into them.
struct Received {
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  const Envelope* envelope() const { return GetSizePrefixedEnvelope(bytes->data()); }
};

// Splits a byte stream into verified messages.
//
// Each message gets its own buffer, kept alive by whoever holds its Received (frames point into
// it). The buffers are recycled: the reader keeps up to kPoolBuffers of them and reuses one once
// it alone refers to it again (nobody else can then copy it), keeping its capacity, so that in
// steady state receiving a message allocates nothing. Messages over kPooledMessageBytes, or
// arriving while every pooled buffer is still in use, get a buffer of their own as before.
class FrameReader {
 public:
  enum class Status { NeedMore, Message, TooLarge, Malformed };

  // Where the next received bytes go (at least `min_free` bytes of room).
  std::span<uint8_t> write_area(size_t min_free = 64 * 1024);
  void commit(size_t n) { end_ += n; }

  // Extracts the next complete message, if any. `out` lets go of its previous message first.
  Status next(Received& out);

  static constexpr size_t kPoolBuffers = 64;
  static constexpr size_t kPooledMessageBytes = 64 * 1024;
  // A new pooled buffer's capacity (most messages fit; a larger one grows it, once).
  static constexpr size_t kFirstCapacity = 16 * 1024;
  // Makes pooled buffers up to `buffers` (at most kPoolBuffers) now, so that a reader expecting
  // that many messages to be held at once does not allocate when they first are.
  void prepare(size_t buffers);
  // Buffers in the pool (for tests and inspection).
  size_t pooled() const { return pool_.size(); }

 private:
  // A buffer holding `size` bytes: a free pooled one when there is one.
  std::shared_ptr<std::vector<uint8_t>> buffer_for(size_t size);

  std::vector<uint8_t> buf_;
  size_t begin_ = 0, end_ = 0;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> pool_;
  size_t pool_next_ = 0;  // where the search for a free buffer starts
};

// Verifies a length-prefixed Envelope.
bool verify_envelope(const uint8_t* data, size_t size);

}  // namespace framebroker::wire
