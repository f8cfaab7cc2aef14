// fb_test_probe SOCKET STREAM write
//   Subscribes, takes one frame and writes into its pixels. The mapping is
//   read-only, so this must die of SIGSEGV; exit code 0 would mean a client
//   could corrupt frames that others see.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "framebroker/client.hpp"

int main(int argc, char** argv) {
  if (argc != 4 || std::string(argv[3]) != "write") {
    std::fprintf(stderr, "usage: fb_test_probe SOCKET STREAM write\n");
    return 2;
  }
  auto client = framebroker::Client::connect({.socket_path = argv[1], .client_name = "probe"});
  auto sub = client.subscribe(argv[2], {.mode = framebroker::Mode::Latest, .from_latest = true});
  auto frame = sub.next(std::chrono::seconds(5));
  if (!frame) return 3;
  std::printf("writing into slot %u\n", frame->slot());
  std::fflush(stdout);
  auto* p = const_cast<std::byte*>(frame->pixels().data());
  std::memset(p, 0xff, 16);
  std::printf("write succeeded\n");
  return 0;
}
