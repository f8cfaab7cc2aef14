// Packaging test consumer: connects to a framebrokerd, takes N frames of one stream and checks
// them. Built against an installed framebroker (CMake package and pkg-config), see
// tests/packaging/install_consumer_test.sh.
//
// Usage: consumer SOCKET STREAM N [WIDTHxHEIGHT]
// Exit 0 when N frames came, each with the expected size and a seq above the previous one;
// otherwise prints why and exits 1 (2 for bad usage).
#include <framebroker/client.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>

namespace fb = framebroker;
using namespace std::chrono_literals;

namespace {

// Bytes per pixel as stored in a slot (frame_meta.fbs: Mono10..14 are stored in u16).
std::optional<uint32_t> bytes_per_pixel(fb::PixelType t) {
  switch (t) {
    case fb::PixelType::Mono8:
      return 1;
    case fb::PixelType::Mono10:
    case fb::PixelType::Mono12:
    case fb::PixelType::Mono14:
    case fb::PixelType::Mono16:
      return 2;
    case fb::PixelType::Mono32F:
      return 4;
    case fb::PixelType::RGB8:
      return 3;
    case fb::PixelType::RGB16:
      return 6;
    default:
      return std::nullopt;
  }
}

int fail(const std::string& why) {
  std::fprintf(stderr, "consumer: FAIL: %s\n", why.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: %s SOCKET STREAM N [WIDTHxHEIGHT]\n", argv[0]);
    return 2;
  }
  const std::string socket = argv[1], stream = argv[2];
  const long want = std::strtol(argv[3], nullptr, 10);
  uint32_t want_w = 0, want_h = 0;
  if (argc == 5 && std::sscanf(argv[4], "%ux%u", &want_w, &want_h) != 2) {
    std::fprintf(stderr, "consumer: bad size '%s', want WIDTHxHEIGHT\n", argv[4]);
    return 2;
  }
  if (want <= 0) {
    std::fprintf(stderr, "consumer: N must be > 0\n");
    return 2;
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;

  try {
    auto client = fb::Client::connect({.socket_path = socket, .client_name = "packaging-consumer"});
    auto sub = client.subscribe(stream, {.mode = fb::Mode::Every});
    long got = 0;
    std::optional<uint64_t> first_seq, last_seq;
    size_t frame_bytes = 0;
    while (got < want) {
      if (std::chrono::steady_clock::now() > deadline)
        return fail("only " + std::to_string(got) + " of " + std::to_string(want) + " frames of '" +
                    stream + "' within 10 s");
      auto frame = sub.next(500ms);
      if (!frame) continue;
      const auto px = frame->pixels();
      const auto bpp = bytes_per_pixel(frame->pixel_type());
      if (!bpp)
        return fail(std::string("unknown pixel type ") + fb::to_string(frame->pixel_type()));
      if (frame->width() == 0 || frame->height() == 0 || px.empty())
        return fail("empty frame seq " + std::to_string(frame->seq()));
      if (want_w && (frame->width() != want_w || frame->height() != want_h))
        return fail("frame is " + std::to_string(frame->width()) + "x" +
                    std::to_string(frame->height()) + ", expected " + argv[4]);
      // Rows may be padded: stride is the row pitch, at least width * bytes per pixel.
      const uint64_t row = uint64_t(frame->width()) * *bpp;
      const uint64_t stride = frame->stride() ? frame->stride() : row;
      const uint64_t expect = stride * (frame->height() - 1) + row;
      if (stride < row || px.size() < expect || px.size() > stride * frame->height())
        return fail("frame seq " + std::to_string(frame->seq()) + " has " +
                    std::to_string(px.size()) + " bytes, expected " + std::to_string(expect) +
                    ".." + std::to_string(stride * frame->height()) + " for " +
                    std::to_string(frame->width()) + "x" + std::to_string(frame->height()) + " " +
                    fb::to_string(frame->pixel_type()));
      if (last_seq && frame->seq() <= *last_seq)
        return fail("seq went from " + std::to_string(*last_seq) + " to " +
                    std::to_string(frame->seq()));
      if (!first_seq) first_seq = frame->seq();
      last_seq = frame->seq();
      frame_bytes = px.size();
      ++got;
    }
    std::printf("consumer: OK %ld frames of '%s' (%zu bytes each), seq %llu..%llu, broker %s\n",
                got, stream.c_str(), frame_bytes, static_cast<unsigned long long>(*first_seq),
                static_cast<unsigned long long>(*last_seq), client.broker_version().c_str());
    return 0;
  } catch (const fb::Error& e) {
    return fail(std::string(fb::to_string(e.code())) + ": " + e.what());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
