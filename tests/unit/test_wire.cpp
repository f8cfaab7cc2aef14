// Message framing: a u32 little-endian length, then one verified Envelope.
// FrameReader splits a byte stream, fed in arbitrary pieces, into messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "framebroker/internal/wire.hpp"

namespace wire = framebroker::wire;
using Bytes = std::vector<uint8_t>;
using Status = wire::FrameReader::Status;

namespace {

Bytes finished(flatbuffers::FlatBufferBuilder& fbb) {
  return Bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

Bytes hello(uint32_t rid, const std::string& name) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, rid, wire::Message::Hello,
               wire::CreateHelloDirect(fbb, wire::kProtocolVersion, name.c_str(), "viewer"));
  return finished(fbb);
}

Bytes release(uint32_t rid, size_t nrefs) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<wire::SlotRef> refs;
  for (size_t i = 0; i < nrefs; ++i) refs.emplace_back(i, 1, uint32_t(i % 32));
  wire::finish(fbb, rid, wire::Message::Release, wire::CreateReleaseDirect(fbb, "cam0", &refs));
  return finished(fbb);
}

Bytes error(uint32_t rid) {
  flatbuffers::FlatBufferBuilder fbb;
  wire::build_error(fbb, rid, wire::ErrorCode::NotHeld, "slot 3 seq 9 is not held");
  return finished(fbb);
}

Bytes prefix(uint32_t len) {
  return {uint8_t(len), uint8_t(len >> 8), uint8_t(len >> 16), uint8_t(len >> 24)};
}

uint32_t read_prefix(const Bytes& b) {
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

// Copies `data` into the reader, at most `piece` bytes per write_area/commit.
void feed(wire::FrameReader& r, const uint8_t* data, size_t n, size_t piece = SIZE_MAX,
          size_t min_free = 64 * 1024) {
  while (n > 0) {
    auto area = r.write_area(min_free);
    EXPECT_GE(area.size(), min_free);
    const size_t k = std::min({n, piece, area.size()});
    std::memcpy(area.data(), data, k);
    r.commit(k);
    data += k;
    n -= k;
  }
}
void feed(wire::FrameReader& r, const Bytes& b, size_t piece = SIZE_MAX) {
  feed(r, b.data(), b.size(), piece);
}

Bytes bytes_of(const wire::Received& m) {
  return *m.bytes;
}

}  // namespace

TEST(Wire, LengthPrefixIsLittleEndianAndCountsTheEnvelope) {
  const Bytes m = hello(7, "me");
  ASSERT_GT(m.size(), 4u);
  EXPECT_EQ(read_prefix(m), m.size() - 4);
  EXPECT_TRUE(wire::verify_envelope(m.data(), m.size()));
}

TEST(Wire, OneWholeMessage) {
  wire::FrameReader r;
  wire::Received got;
  EXPECT_EQ(r.next(got), Status::NeedMore);  // empty
  const Bytes m = hello(7, "viewer-1");
  feed(r, m);
  ASSERT_EQ(r.next(got), Status::Message);
  EXPECT_EQ(bytes_of(got), m);  // the prefix is kept
  const wire::Envelope* env = got.envelope();
  EXPECT_EQ(env->request_id(), 7u);
  ASSERT_EQ(env->message_type(), wire::Message::Hello);
  const auto* h = env->message_as_Hello();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->protocol_version(), wire::kProtocolVersion);
  EXPECT_EQ(h->client_name()->str(), "viewer-1");
  EXPECT_EQ(h->role()->str(), "viewer");
  EXPECT_EQ(r.next(got), Status::NeedMore);
}

TEST(Wire, PartialPrefixAndPartialBodyNeedMore) {
  const Bytes m = hello(1, "x");
  wire::FrameReader r;
  wire::Received got;
  for (size_t i = 0; i + 1 < m.size(); ++i) {
    feed(r, &m[i], 1);
    ASSERT_EQ(r.next(got), Status::NeedMore) << "after " << i + 1 << " of " << m.size() << " bytes";
  }
  feed(r, &m.back(), 1);
  ASSERT_EQ(r.next(got), Status::Message);
  EXPECT_EQ(bytes_of(got), m);
}

TEST(Wire, SplitsAStreamFedInOddPieces) {
  const std::vector<Bytes> msgs = {hello(1, "a"),
                                   release(2, 1000),
                                   error(3),
                                   hello(4, "b"),
                                   release(5, 0),
                                   error(6),
                                   hello(7, std::string(300, 'n'))};
  Bytes stream;
  for (const auto& m : msgs) stream.insert(stream.end(), m.begin(), m.end());

  for (size_t min_free : {size_t(1), size_t(13), size_t(64 * 1024)}) {
    SCOPED_TRACE(testing::Message() << "min_free " << min_free);
    const size_t pieces[] = {1, 2, 3, 5, 7, 11, 13, 4093, 17, 65537, 6};
    wire::FrameReader r;
    std::vector<Bytes> got;
    size_t at = 0, k = 0;
    while (at < stream.size()) {
      const size_t n = std::min(pieces[k++ % std::size(pieces)], stream.size() - at);
      feed(r, stream.data() + at, n, SIZE_MAX, min_free);
      at += n;
      wire::Received m;
      Status st;
      while ((st = r.next(m)) == Status::Message) got.push_back(bytes_of(m));
      ASSERT_EQ(st, Status::NeedMore);
    }
    ASSERT_EQ(got.size(), msgs.size());
    for (size_t i = 0; i < msgs.size(); ++i) EXPECT_EQ(got[i], msgs[i]) << "message " << i;
  }
}

TEST(Wire, SeveralMessagesInOneRead) {
  Bytes stream;
  for (uint32_t i = 0; i < 50; ++i) {
    const Bytes m = hello(i, "c" + std::to_string(i));
    stream.insert(stream.end(), m.begin(), m.end());
  }
  wire::FrameReader r;
  feed(r, stream);
  wire::Received m;
  for (uint32_t i = 0; i < 50; ++i) {
    ASSERT_EQ(r.next(m), Status::Message) << i;
    EXPECT_EQ(m.envelope()->request_id(), i);
    EXPECT_EQ(m.envelope()->message_as_Hello()->client_name()->str(), "c" + std::to_string(i));
  }
  EXPECT_EQ(r.next(m), Status::NeedMore);
}

TEST(Wire, ReceivedMessagesOutliveTheReaderBuffer) {
  wire::FrameReader r;
  std::vector<wire::Received> kept;
  for (uint32_t i = 0; i < 20; ++i) {
    feed(r, release(i, 2000), 999);  // ~32 KiB each: the buffer is compacted and grown
    wire::Received m;
    ASSERT_EQ(r.next(m), Status::Message);
    kept.push_back(m);
  }
  for (uint32_t i = 0; i < 20; ++i) {
    EXPECT_EQ(kept[i].envelope()->request_id(), i);
    const auto* rel = kept[i].envelope()->message_as_Release();
    ASSERT_NE(rel, nullptr);
    ASSERT_EQ(rel->refs()->size(), 2000u);
    EXPECT_EQ(rel->refs()->Get(1999)->seq(), 1999u);
  }
}

TEST(Wire, MessageJustUnderTheLimit) {
  // 16 bytes per SlotRef: about 1,008,000 bytes of envelope.
  const Bytes m = release(1, 63000);
  ASSERT_LE(read_prefix(m), wire::kMaxMessageBytes);
  wire::FrameReader r;
  wire::Received got;
  feed(r, m, 70000);
  ASSERT_EQ(r.next(got), Status::Message);
  EXPECT_EQ(got.envelope()->message_as_Release()->refs()->size(), 63000u);
}

TEST(Wire, LengthPrefixOverOneMiBIsTooLarge) {
  for (uint32_t len : {uint32_t(wire::kMaxMessageBytes + 1), uint32_t(16 << 20), 0xffffffffu}) {
    SCOPED_TRACE(len);
    wire::FrameReader r;
    wire::Received got;
    // Known as soon as the prefix is in; the body never has to arrive.
    feed(r, prefix(len));
    EXPECT_EQ(r.next(got), Status::TooLarge);
    EXPECT_EQ(got.bytes, nullptr);
  }
  // Exactly 1 MiB is allowed: the reader waits for the body.
  wire::FrameReader r;
  wire::Received got;
  feed(r, prefix(uint32_t(wire::kMaxMessageBytes)));
  EXPECT_EQ(r.next(got), Status::NeedMore);
}

TEST(Wire, RealMessageOverTheLimitIsTooLarge) {
  const Bytes m = release(1, 70000);  // about 1.1 MB
  ASSERT_GT(read_prefix(m), wire::kMaxMessageBytes);
  wire::FrameReader r;
  wire::Received got;
  feed(r, m, 4096);
  EXPECT_EQ(r.next(got), Status::TooLarge);
}

TEST(Wire, GarbageBodiesAreMalformed) {
  std::vector<Bytes> bad;
  bad.push_back(prefix(0));  // an empty body
  {
    Bytes b = prefix(8);
    for (uint8_t x : {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04}) b.push_back(x);
    bad.push_back(b);
  }
  {
    Bytes b = prefix(64);
    for (int i = 0; i < 64; ++i) b.push_back(uint8_t(0xff));
    bad.push_back(b);
  }
  {
    Bytes b = hello(1, "abc");  // a root offset pointing far outside the buffer
    b[4] = 0xf0;
    b[5] = 0xff;
    b[6] = 0xff;
    b[7] = 0x7f;
    bad.push_back(b);
  }
  {
    Bytes b = hello(1, "abcdefgh");  // the string's length field made huge
    const Bytes good = b;
    const std::string needle = "abcdefgh";
    auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
    ASSERT_NE(it, b.end());
    const size_t at = size_t(it - b.begin()) - 4;
    b[at + 3] = 0x7f;
    bad.push_back(b);
  }
  {
    // A valid envelope cut short, with the prefix adjusted to match.
    Bytes b = release(1, 100);
    b.resize(b.size() - 40);
    const Bytes p = prefix(uint32_t(b.size() - 4));
    std::copy(p.begin(), p.end(), b.begin());
    bad.push_back(b);
  }
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "case " << i);
    EXPECT_FALSE(wire::verify_envelope(bad[i].data(), bad[i].size()));
    wire::FrameReader r;
    wire::Received got;
    feed(r, bad[i], 3);
    EXPECT_EQ(r.next(got), Status::Malformed);
    EXPECT_EQ(got.bytes, nullptr);
  }
}

TEST(Wire, VerifyEnvelope) {
  const Bytes m = error(5);
  EXPECT_TRUE(wire::verify_envelope(m.data(), m.size()));
  // The prefix must match the size exactly.
  EXPECT_FALSE(wire::verify_envelope(m.data(), m.size() - 1));
  Bytes longer = m;
  longer.push_back(0);
  EXPECT_FALSE(wire::verify_envelope(longer.data(), longer.size()));
  EXPECT_FALSE(wire::verify_envelope(m.data(), 3));
  EXPECT_FALSE(wire::verify_envelope(m.data(), 0));
  // Without its prefix it is not a size-prefixed envelope.
  EXPECT_FALSE(wire::verify_envelope(m.data() + 4, m.size() - 4));
}

TEST(Wire, BuildError) {
  const Bytes m = error(42);
  wire::FrameReader r;
  feed(r, m);
  wire::Received got;
  ASSERT_EQ(r.next(got), Status::Message);
  EXPECT_EQ(got.envelope()->request_id(), 42u);
  const auto* e = got.envelope()->message_as_Error();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->code(), wire::ErrorCode::NotHeld);
  EXPECT_EQ(e->message()->str(), "slot 3 seq 9 is not held");
}

TEST(Wire, WriteAreaAlwaysHasTheRoomAskedFor) {
  wire::FrameReader r;
  const Bytes m = hello(1, "q");
  for (size_t ask : {size_t(1), size_t(100), size_t(70000), size_t(1)}) {
    auto area = r.write_area(ask);
    EXPECT_GE(area.size(), ask);
  }
  // Half a message stays put across a growth of the buffer.
  feed(r, m.data(), 5);
  auto area = r.write_area(200000);
  ASSERT_GE(area.size(), 200000u);
  std::memcpy(area.data(), m.data() + 5, m.size() - 5);
  r.commit(m.size() - 5);
  wire::Received got;
  ASSERT_EQ(r.next(got), Status::Message);
  EXPECT_EQ(bytes_of(got), m);
}

// Appended to the union: the messages that were there keep their numbers, so older clients and
// brokers still read each other.
static_assert(int(wire::Message::CameraReply) == 12);
static_assert(int(wire::Message::DiscoverRequest) > int(wire::Message::CameraReply));
static_assert(int(wire::Message::DiscoverReply) > int(wire::Message::CameraReply));

TEST(Wire, DiscoverRequestAndReplyVerifyAndReadBack) {
  flatbuffers::FlatBufferBuilder req;
  wire::finish(req, 3, wire::Message::DiscoverRequest, wire::CreateDiscoverRequest(req, true));
  flatbuffers::FlatBufferBuilder rep;
  std::vector<flatbuffers::Offset<wire::DeviceInfo>> devices = {
      wire::CreateDeviceInfoDirect(rep, "Fake_1", "Fake_1", "Aravis", "Fake", "1", "Fake",
                                   "0.0.0.0"),
      wire::CreateDeviceInfoDirect(rep, "Basler-21234567", "00:30:53:00:00:01", "Basler",
                                   "acA1920-25gm", "21234567", "GigEVision", "192.168.1.20"),
  };
  wire::finish(rep, 3, wire::Message::DiscoverReply,
               wire::CreateDiscoverReply(rep, rep.CreateVector(devices)));

  wire::FrameReader r;
  feed(r, finished(req));
  feed(r, finished(rep), 7);
  wire::Received got;
  ASSERT_EQ(r.next(got), Status::Message);
  const auto* q = got.envelope()->message_as_DiscoverRequest();
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(got.envelope()->request_id(), 3u);
  EXPECT_TRUE(q->include_fake());
  ASSERT_EQ(r.next(got), Status::Message);
  const auto* a = got.envelope()->message_as_DiscoverReply();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(got.envelope()->request_id(), 3u);
  ASSERT_EQ(a->devices()->size(), 2u);
  const auto* d = a->devices()->Get(1);
  EXPECT_EQ(d->id()->str(), "Basler-21234567");
  EXPECT_EQ(d->physical_id()->str(), "00:30:53:00:00:01");
  EXPECT_EQ(d->vendor()->str(), "Basler");
  EXPECT_EQ(d->model()->str(), "acA1920-25gm");
  EXPECT_EQ(d->serial()->str(), "21234567");
  EXPECT_EQ(d->protocol()->str(), "GigEVision");
  EXPECT_EQ(d->address()->str(), "192.168.1.20");
  EXPECT_EQ(r.next(got), Status::NeedMore);
}

// Receive buffers are recycled (no allocation per message in steady state), but never while
// anything still refers to one: frames point into them.
TEST(Wire, BufferIsReusedOnceItsLastHolderLetsGo) {
  wire::FrameReader r;
  wire::Received a, b, c;
  feed(r, hello(1, "first"));
  ASSERT_EQ(r.next(a), Status::Message);
  const auto* first = a.bytes.get();
  feed(r, hello(2, "second"));
  ASSERT_EQ(r.next(b), Status::Message);
  EXPECT_NE(b.bytes.get(), first);  // a still holds its buffer
  a.bytes.reset();
  const Bytes m3 = hello(3, std::string(200, 't'));  // longer: reuse must not truncate
  feed(r, m3);
  ASSERT_EQ(r.next(c), Status::Message);
  EXPECT_EQ(c.bytes.get(), first);
  EXPECT_EQ(bytes_of(c), m3);
  EXPECT_EQ(c.envelope()->request_id(), 3u);
  EXPECT_EQ(bytes_of(b), hello(2, "second"));  // untouched
  EXPECT_EQ(r.pooled(), 2u);
}

TEST(Wire, BufferIsNotReusedWhileACopyOfItsReceivedLives) {
  wire::FrameReader r;
  wire::Received got;
  feed(r, hello(1, "kept"));
  ASSERT_EQ(r.next(got), Status::Message);
  const wire::Received frame_keeps = got;  // as a frame handle keeps its message
  feed(r, error(2));
  ASSERT_EQ(r.next(got), Status::Message);  // `got` lets go of the first message, the copy not
  EXPECT_NE(got.bytes.get(), frame_keeps.bytes.get());
  EXPECT_EQ(bytes_of(frame_keeps), hello(1, "kept"));
  EXPECT_EQ(bytes_of(got), error(2));
}

TEST(Wire, OneReceivedReadInALoopKeepsUsingOneBuffer) {
  wire::FrameReader r;
  wire::Received got;
  const std::vector<Bytes> msgs = {hello(1, "a"), release(2, 40), error(3), hello(4, "b")};
  const std::vector<uint8_t>* buffer = nullptr;
  for (int round = 0; round < 3; ++round) {
    for (const auto& m : msgs) feed(r, m, 5);
    for (const auto& m : msgs) {
      ASSERT_EQ(r.next(got), Status::Message);
      EXPECT_EQ(bytes_of(got), m);
      if (!buffer) buffer = got.bytes.get();
      EXPECT_EQ(got.bytes.get(), buffer);
    }
  }
  EXPECT_EQ(r.pooled(), 1u);
}

TEST(Wire, MessagesHeldBeyondThePoolStillArriveIntact) {
  wire::FrameReader r;
  std::vector<wire::Received> held;
  const size_t n = wire::FrameReader::kPoolBuffers + 10;
  for (size_t i = 0; i < n; ++i) {
    feed(r, hello(uint32_t(i), "m" + std::to_string(i)));
    ASSERT_EQ(r.next(held.emplace_back()), Status::Message);
  }
  EXPECT_EQ(r.pooled(), wire::FrameReader::kPoolBuffers);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(bytes_of(held[i]), hello(uint32_t(i), "m" + std::to_string(i))) << i;
    for (size_t j = 0; j < i; ++j) ASSERT_NE(held[i].bytes.get(), held[j].bytes.get());
  }
  // Let every other one go: exactly those are reused, and nothing still held changes.
  std::vector<const std::vector<uint8_t>*> freed;
  for (size_t i = 0; i < wire::FrameReader::kPoolBuffers; i += 2) {
    freed.push_back(held[i].bytes.get());
    held[i].bytes.reset();
  }
  for (size_t k = 0; k < freed.size(); ++k) {
    wire::Received got;
    feed(r, error(uint32_t(1000 + k)));
    ASSERT_EQ(r.next(got), Status::Message);
    EXPECT_NE(std::find(freed.begin(), freed.end(), got.bytes.get()), freed.end());
    EXPECT_EQ(bytes_of(got), error(uint32_t(1000 + k)));
    held.push_back(std::move(got));  // keep it, so that the next one takes another
  }
  for (size_t i = 1; i < n; i += 2)
    EXPECT_EQ(bytes_of(held[i]), hello(uint32_t(i), "m" + std::to_string(i))) << i;
  EXPECT_EQ(r.pooled(), wire::FrameReader::kPoolBuffers);
}

TEST(Wire, LargeMessagesDoNotStayInThePool) {
  wire::FrameReader r;
  wire::Received got;
  const Bytes big = release(1, 8000);  // 8000 refs of 16 bytes: over kPooledMessageBytes
  ASSERT_GT(big.size(), wire::FrameReader::kPooledMessageBytes);
  feed(r, big);
  ASSERT_EQ(r.next(got), Status::Message);
  EXPECT_EQ(bytes_of(got), big);
  EXPECT_EQ(r.pooled(), 0u);
}
