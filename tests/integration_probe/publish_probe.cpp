// fb_test_publisher SOCKET STREAM MODE [N]
//   count N : publishes N 64x64 Mono16 frames, frame i filled with the value i (blocking), then
//             exits (the stream ends)
//   hold    : publishes 3 frames, then takes every loan it can and sleeps holding them (to be
//             killed with SIGKILL)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "framebroker/client.hpp"

namespace {

void fill(std::span<std::byte> px, uint16_t v) {
  auto* p = reinterpret_cast<uint16_t*>(px.data());
  std::fill(p, p + px.size() / 2, v);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: fb_test_publisher SOCKET STREAM count N | hold\n");
    return 2;
  }
  const std::string mode = argv[3];
  auto client = framebroker::Client::connect({.socket_path = argv[1], .client_name = "publisher"});
  auto pub =
      client.advertise(argv[2], {.width = 64, .height = 64, .pixel_type = "Mono16", .slots = 8});
  const int n = mode == "count" && argc > 4 ? std::stoi(argv[4]) : 3;
  for (int i = 0; i < n; ++i) {
    auto loan = pub.loan(std::chrono::seconds(20));
    if (!loan) {
      std::fprintf(stderr, "no loan for frame %d\n", i);
      return 3;
    }
    fill(loan->pixels(), uint16_t(i));
    loan->commit({.camera_frame_id = uint64_t(i)});
  }
  if (mode == "hold") {
    std::vector<framebroker::Loan> held;
    while (auto l = pub.loan(std::chrono::milliseconds(300))) held.push_back(std::move(*l));
    std::printf("holding %zu loans\n", held.size());
    std::fflush(stdout);
    ::pause();
  }
  std::printf("published %d\n", n);
  return 0;
}
