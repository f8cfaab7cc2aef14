// A processor of your own: every frame of a Mono16 stream, binned 2x2 (the mean of each block),
// published as a stream that fbview, fbsave and fbctl see like a camera's.
//   fb_example_processor SOURCE OUTPUT [SOCKET]       e.g. fb_example_processor sim0 sim0.bin2
// It ends when SOURCE ends (a published source's producer went) or on Ctrl-C / SIGTERM.
#include <csignal>
#include <cstdio>
#include <framebroker/client.hpp>
#include <framebroker/provenance.hpp>

namespace fb = framebroker;
volatile std::sig_atomic_t stop = 0;

int main(int argc, char** argv) try {
  if (argc < 3) return std::fprintf(stderr, "usage: %s SOURCE OUTPUT [SOCKET]\n", argv[0]), 2;
  std::signal(SIGINT, [](int) { stop = 1; });
  std::signal(SIGTERM, [](int) { stop = 1; });
  auto client = fb::Client::connect({.socket_path = argc > 3 ? argv[3] : ""});
  auto in = client.subscribe(argv[1], {.mode = fb::Mode::Every});  // lossless, in order
  fb::PublishOptions format{.pixel_type = "Mono16", .overflow = fb::Overflow::Block};
  for (const auto& s : client.status().streams)  // advertise before the first frame comes
    if (s.name == argv[1] && s.pixel_type == "Mono16")
      format.width = s.width / 2, format.height = s.height / 2;
  if (format.width == 0) return std::fprintf(stderr, "%s is not a Mono16 stream\n", argv[1]), 1;
  auto out = client.advertise(argv[2], format);
  fb::CommitInfo info;  // made once: the loop allocates nothing
  while (!stop && !in.ended()) {
    auto frame = in.next(std::chrono::milliseconds(200));
    if (!frame) continue;
    if (frame->width() / 2 != out.width() || frame->height() / 2 != out.height())
      return std::fprintf(stderr, "%s changed its format\n", argv[1]), 1;
    auto loan = out.loan(std::chrono::seconds(10));  // Block: waits while a subscriber is full
    if (!loan) continue;                             // (after 10 s the frame is skipped)
    const auto* src = frame->pixels().data();
    auto* dst = reinterpret_cast<uint16_t*>(loan->pixels().data());
    for (uint32_t y = 0; y < out.height(); ++y) {
      const auto* r0 = reinterpret_cast<const uint16_t*>(src + size_t(2 * y) * frame->stride());
      const auto* r1 = reinterpret_cast<const uint16_t*>(src + size_t(2 * y + 1) * frame->stride());
      for (uint32_t x = 0; x < out.width(); ++x)
        dst[y * out.width() + x] =
            uint16_t((r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]) / 4);
    }
    fb::derive_from(*frame, info);  // provenance: where this frame came from
    loan->commit(info);
  }
  return 0;  // `out` goes: what is committed is sent, then OUTPUT ends after its last frame
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
