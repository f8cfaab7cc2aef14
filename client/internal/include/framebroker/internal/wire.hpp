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
class FrameReader {
 public:
  enum class Status { NeedMore, Message, TooLarge, Malformed };

  // Where the next received bytes go (at least `min_free` bytes of room).
  std::span<uint8_t> write_area(size_t min_free = 64 * 1024);
  void commit(size_t n) { end_ += n; }

  // Extracts the next complete message, if any.
  Status next(Received& out);

 private:
  std::vector<uint8_t> buf_;
  size_t begin_ = 0, end_ = 0;
};

// Verifies a length-prefixed Envelope.
bool verify_envelope(const uint8_t* data, size_t size);

}  // namespace framebroker::wire
