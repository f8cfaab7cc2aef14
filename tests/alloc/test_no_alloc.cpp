// The frame path allocates nothing in steady state (issue 17): a real broker (a sim camera, or
// a publishing client) and two subscribers (`every` and `latest`, each on a connection of its
// own) run in this one process, with every heap allocation of every thread counted
// (alloc_counter.cpp). After a warm-up, 10,000 frames pass through both subscribers and the
// count must stay 0. FB_ALLOC_TRACE=1 prints the call stacks of the allocations counted.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "../support/broker_thread.hpp"
#include "alloc_counter.hpp"
#include "apply_config.hpp"
#include "broker.hpp"
#include "config.hpp"
#include "framebroker/client.hpp"

namespace fb = framebroker;
namespace fd = framebroker::daemon;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kWarmUp = 2000;
constexpr uint64_t kCounted = 10'000;
// Only a guard against a hang (the broker or a subscriber stuck), not a timing assertion.
constexpr auto kPatience = 120s;

using fbtest::BrokerThread;

// Takes frames on a thread of its own, looking at each, and lets each go before the next.
class Taker {
 public:
  Taker(fb::Client& client, const std::string& stream, fb::SubscribeOptions options)
      : sub_(client.subscribe(stream, options)), thread_([this] { run(); }) {}

  ~Taker() { halt(); }

  void halt() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  uint64_t frames() const { return frames_.load(); }
  uint64_t nonzero_pixels() const { return nonzero_.load(); }
  std::string error() const { return error_failed_.load() ? error_ : std::string(); }

 private:
  void run() {
    try {
      while (!stop_.load()) {
        const auto frame = sub_.next(100ms);
        if (!frame) continue;
        const auto pixels = frame->pixels();
        if (pixels.empty() || pixels[pixels.size() - 1] != std::byte{0}) nonzero_.fetch_add(1);
        last_seq_ = frame->seq();
        frames_.fetch_add(1);
      }
    } catch (const std::exception& e) {
      error_ = e.what();
      error_failed_.store(true);
    }
  }

  fb::Subscription sub_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> frames_{0}, nonzero_{0};
  uint64_t last_seq_ = 0;
  std::string error_;
  std::atomic<bool> error_failed_{false};
  std::thread thread_;
};

// Waits until every taker got `n` more frames than `from`; false if the patience ran out first.
bool wait_frames(const Taker& a, uint64_t a_from, const Taker& b, uint64_t b_from, uint64_t n) {
  const auto until = std::chrono::steady_clock::now() + kPatience;
  while (a.frames() < a_from + n || b.frames() < b_from + n) {
    if (std::chrono::steady_clock::now() > until) return false;
    if (!a.error().empty() || !b.error().empty()) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The counter counts: allocations made here, by operator new, malloc and inside libc, show.
void expect_counter_counts() {
  static void* volatile sink;  // (a new/delete or malloc/free pair may be optimised away)
  fb_alloc::start();
  sink = new int(1);
  delete static_cast<int*>(sink);
  sink = std::malloc(24);
  std::free(sink);
  std::free(::strdup("counted inside libc"));
  EXPECT_GE(fb_alloc::stop(), 3u) << "the allocation counter counts nothing: the test is vacuous";
}

// Warm-up, then 10,000 frames through both takers with the counter on.
void expect_no_allocation(Taker& every, Taker& latest) {
  ASSERT_TRUE(wait_frames(every, 0, latest, 0, kWarmUp))
      << "warm-up: every got " << every.frames() << ", latest " << latest.frames() << " frames "
      << every.error() << latest.error();
  expect_counter_counts();

  const uint64_t every_from = every.frames(), latest_from = latest.frames();
  fb_alloc::start();
  const bool through = wait_frames(every, every_from, latest, latest_from, kCounted);
  const uint64_t allocations = fb_alloc::stop();
  fb_alloc::print_stacks();
  ASSERT_TRUE(through) << "every got " << every.frames() - every_from << ", latest "
                       << latest.frames() - latest_from << " of " << kCounted << " frames "
                       << every.error() << latest.error();
  EXPECT_GE(every.frames() - every_from, kCounted);
  EXPECT_GE(latest.frames() - latest_from, kCounted);
  EXPECT_EQ(every.nonzero_pixels() + latest.nonzero_pixels(), 0u) << "the pattern is `empty`";

  size_t sizes[fb_alloc::kKeptSizes];
  const size_t n = fb_alloc::kept_sizes(sizes, fb_alloc::kKeptSizes);
  std::string first;
  for (size_t i = 0; i < n; ++i) first += (i ? ", " : "") + std::to_string(sizes[i]);
  EXPECT_EQ(allocations, 0u) << allocations << " allocation(s) while " << kCounted
                             << " frames went through both subscribers; the first sizes: " << first
                             << " (run with FB_ALLOC_TRACE=1 for their backtraces)";
}

class NoAllocation : public ::testing::Test {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::warn); }
};

TEST_F(NoAllocation, CameraFramesToAnEveryAndALatestSubscriber) {
  BrokerThread broker(
      "alloc",
      "sim:name=cam0,Width=64,Height=64,PixelType=Mono16,Pattern=empty,FrameRate=20000,slots=64");
  auto c1 = broker.connect("alloc-every");
  auto c2 = broker.connect("alloc-latest");
  Taker every(c1, "cam0", {.mode = fb::Mode::Every});
  Taker latest(c2, "cam0", {.mode = fb::Mode::Latest});
  expect_no_allocation(every, latest);
  every.halt();
  latest.halt();
}

// The same with a client publishing the stream (with advertise-level tags, copied into every
// frame's metadata) instead of a camera.
TEST_F(NoAllocation, PublishedFramesToAnEveryAndALatestSubscriber) {
  BrokerThread broker("alloc", "");
  auto pc = broker.connect("alloc-publisher");
  auto pub = pc.advertise("pub0", {.width = 64,
                                   .height = 64,
                                   .slots = 64,
                                   .tags = {{"objective", "Plan-Apochromat 63x/1.40 Oil DIC"},
                                            {"sample", "HeLa H2B-GFP, well B3, 37 C"}}});
  std::atomic<bool> stop{false};
  std::string error;
  std::thread producer([&] {
    try {
      while (!stop.load())
        if (auto loan = pub.loan(100ms)) {
          std::memset(loan->pixels().data(), 0, loan->pixels().size());
          loan->commit();
        }
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  {
    auto c1 = broker.connect("alloc-every");
    auto c2 = broker.connect("alloc-latest");
    Taker every(c1, "pub0", {.mode = fb::Mode::Every});
    Taker latest(c2, "pub0", {.mode = fb::Mode::Latest});
    expect_no_allocation(every, latest);
    every.halt();
    latest.halt();
  }
  stop.store(true);
  producer.join();
  EXPECT_EQ(error, "");
}

}  // namespace
