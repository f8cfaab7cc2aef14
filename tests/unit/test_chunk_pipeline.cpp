// fbsave's ChunkPipeline: buffers written strictly in submission order whatever the encoders'
// timing, back-pressure when every buffer is busy, the first error stopping every later write,
// finish() idempotent.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fbsave/chunk_pipeline.hpp"

using framebroker::fbsave::ChunkPipeline;

namespace {

constexpr size_t kRaw = 4096 + 100;  // not a whole block: the buffer is rounded up

// A recorder for the writer callback: the indexes and first bytes it was given, in order.
struct Written {
  std::mutex mu;
  std::vector<uint64_t> index;
  std::vector<uint8_t> first_byte;
  std::vector<size_t> size;
  void add(uint64_t i, std::span<const std::byte> d) {
    std::lock_guard lk(mu);
    index.push_back(i);
    first_byte.push_back(uint8_t(d[0]));
    size.push_back(d.size());
  }
  std::vector<uint64_t> indexes() {
    std::lock_guard lk(mu);
    return index;
  }
};

// Fills `raw` with a byte that depends on the index, so the writer can tell whose bytes it got.
void fill(std::byte* raw, uint64_t index) {
  std::memset(raw, int(index * 7 + 1) & 0xff, kRaw);
}

TEST(ChunkPipeline, WritesInSubmissionOrderWithRandomEncodeDelays) {
  Written w;
  std::atomic<int> running{0}, most_running{0};
  std::mt19937 seed_rng(12345);
  std::vector<uint32_t> delays_us(200);
  for (auto& d : delays_us) d = seed_rng() % 3000;
  ChunkPipeline::Options o{kRaw, kRaw + 16, 4, 0};
  ChunkPipeline p(
      o,
      [&](uint64_t i, std::byte* raw, uint32_t frames, std::byte* out) {
        const int now = ++running;
        for (int m = most_running; now > m && !most_running.compare_exchange_weak(m, now);) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(delays_us[i % delays_us.size()]));
        // "compress": the raw bytes then the frame count, into out
        std::memcpy(out, raw, kRaw);
        std::memset(out + kRaw, int(frames), 16);
        --running;
        return std::span<const std::byte>(out, kRaw + 16);
      },
      [&](uint64_t i, std::span<const std::byte> d) {
        w.add(i, d);
        return std::string();
      });
  const uint64_t n = 200;
  for (uint64_t i = 0; i < n; ++i) {
    std::byte* raw = p.acquire();
    fill(raw, i);
    p.submit(i, uint32_t(i % 5 + 1));
  }
  EXPECT_EQ(p.finish(), "");
  const auto got = w.indexes();
  ASSERT_EQ(got.size(), n);
  uint64_t frames = 0;
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(got[i], i) << "written out of order at " << i;
    EXPECT_EQ(w.first_byte[i], uint8_t(i * 7 + 1)) << "buffer " << i << " got another's bytes";
    EXPECT_EQ(w.size[i], kRaw + 16);
    frames += i % 5 + 1;
  }
  EXPECT_EQ(p.durable(), frames);
  EXPECT_GT(most_running.load(), 1) << "the encoders never ran in parallel";
}

TEST(ChunkPipeline, DurableIsAPrefixWhileRunning) {
  // The writer is slow; durable() read from here is always the frames of a prefix written.
  std::mutex mu;
  uint64_t written_frames = 0;
  ChunkPipeline p(
      {kRaw, 0, 2, 0},
      [](uint64_t, std::byte* raw, uint32_t, std::byte* out) {
        EXPECT_EQ(out, nullptr);
        return std::span<const std::byte>(raw, kRaw);
      },
      [&](uint64_t, std::span<const std::byte>) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::lock_guard lk(mu);
        written_frames += 3;
        return std::string();
      });
  for (int i = 0; i < 50; ++i) {
    p.acquire();
    p.submit(uint64_t(i), 3);
    const uint64_t d = p.durable();
    EXPECT_EQ(d % 3, 0u);
    std::lock_guard lk(mu);
    EXPECT_LE(d, written_frames);
  }
  EXPECT_EQ(p.finish(), "");
  EXPECT_EQ(p.durable(), 150u);
}

TEST(ChunkPipeline, AcquireWaitsWhileEveryBufferIsBusy) {
  // The writer blocks until released: with 3 buffers, the caller gets 3 and then waits.
  std::mutex gate;
  gate.lock();
  std::atomic<int> writes{0};
  ChunkPipeline p(
      {kRaw, 0, 1, 3},
      [](uint64_t, std::byte* raw, uint32_t, std::byte*) {
        return std::span<const std::byte>(raw, kRaw);
      },
      [&](uint64_t, std::span<const std::byte>) {
        std::lock_guard lk(gate);
        ++writes;
        return std::string();
      });
  std::vector<std::byte*> seen;
  for (int i = 0; i < 3; ++i) {
    std::byte* b = p.acquire();
    EXPECT_EQ(p.acquire(), b) << "a held buffer is handed out again";
    seen.push_back(b);
    p.submit(uint64_t(i), 1);
  }
  EXPECT_NE(seen[0], seen[1]);
  EXPECT_NE(seen[1], seen[2]);
  EXPECT_NE(seen[0], seen[2]);
  std::atomic<bool> got{false};
  std::thread t([&] {
    p.acquire();
    got = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(got.load()) << "acquire() returned while all 3 buffers were queued";
  EXPECT_EQ(writes.load(), 0);
  gate.unlock();
  t.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(p.finish(), "");  // drops the held buffer unwritten
  EXPECT_EQ(writes.load(), 3);
  EXPECT_EQ(p.durable(), 3u);
}

TEST(ChunkPipeline, AWriteErrorStopsEveryLaterWriteAndIsReportedOnce) {
  Written w;
  ChunkPipeline p(
      {kRaw, 0, 3, 0},
      [](uint64_t, std::byte* raw, uint32_t, std::byte*) {
        return std::span<const std::byte>(raw, kRaw);
      },
      [&](uint64_t i, std::span<const std::byte> d) {
        if (i == 5) return std::string("cannot write chunk 5: No space left on device");
        w.add(i, d);
        return std::string();
      });
  std::string thrown;
  int i = 0;
  try {
    for (; i < 1000; ++i) {
      p.acquire();
      p.submit(uint64_t(i), 2);
    }
  } catch (const std::runtime_error& e) {
    thrown = e.what();
  }
  EXPECT_EQ(thrown, "cannot write chunk 5: No space left on device");
  EXPECT_LT(i, 1000) << "acquire() never reported the error";
  EXPECT_TRUE(p.failed());
  EXPECT_THROW(p.check(), std::runtime_error);
  EXPECT_EQ(p.finish(), "") << "an error already thrown is not returned again";
  EXPECT_EQ(w.indexes(), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(p.durable(), 10u);
}

TEST(ChunkPipeline, AnEncodeErrorKeepsTheEarlierBuffersAndIsReturnedByFinish) {
  Written w;
  ChunkPipeline p(
      {kRaw, kRaw, 2, 0},
      [](uint64_t i, std::byte* raw, uint32_t, std::byte*) {
        if (i == 3) throw std::runtime_error("cannot write chunk 3: Blosc compression failed");
        // The later ones finish first: they must still not be written.
        if (i < 3) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return std::span<const std::byte>(raw, kRaw);
      },
      [&](uint64_t i, std::span<const std::byte> d) {
        w.add(i, d);
        return std::string();
      });
  for (int i = 0; i < 4; ++i) {
    p.acquire();
    p.submit(uint64_t(i), 1);
  }
  EXPECT_EQ(p.finish(), "cannot write chunk 3: Blosc compression failed");
  EXPECT_EQ(p.finish(), "") << "finish() returns the error once";
  EXPECT_EQ(w.indexes(), (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(p.durable(), 3u);
}

TEST(ChunkPipeline, FailStopsLaterWritesAndCountsAsReported) {
  Written w;
  std::mutex gate;
  gate.lock();
  ChunkPipeline p(
      {kRaw, 0, 1, 4},
      [](uint64_t, std::byte* raw, uint32_t, std::byte*) {
        return std::span<const std::byte>(raw, kRaw);
      },
      [&](uint64_t i, std::span<const std::byte> d) {
        if (i == 0) std::lock_guard lk(gate);  // holds the queue until fail() was called
        w.add(i, d);
        return std::string();
      });
  for (int i = 0; i < 3; ++i) {
    p.acquire();
    p.submit(uint64_t(i), 1);
  }
  p.fail("cannot write .zattrs: Permission denied");
  gate.unlock();
  EXPECT_THROW(p.acquire(), std::runtime_error);
  EXPECT_EQ(p.finish(), "");
  // Buffer 0 was being written when fail() came; nothing after it was.
  EXPECT_LE(w.indexes().size(), 1u);
}

TEST(ChunkPipeline, FinishIsIdempotentAndTheDestructorFinishes) {
  std::atomic<int> writes{0};
  {
    ChunkPipeline p(
        {kRaw, 0, 2, 0},
        [](uint64_t, std::byte* raw, uint32_t, std::byte*) {
          return std::span<const std::byte>(raw, kRaw);
        },
        [&](uint64_t, std::span<const std::byte>) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          ++writes;
          return std::string();
        });
    EXPECT_EQ(p.finish(), "");  // nothing submitted
    EXPECT_EQ(p.finish(), "");
    EXPECT_EQ(p.durable(), 0u);
  }
  {
    ChunkPipeline p(
        {kRaw, 0, 2, 0},
        [](uint64_t, std::byte* raw, uint32_t, std::byte*) {
          return std::span<const std::byte>(raw, kRaw);
        },
        [&](uint64_t, std::span<const std::byte>) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          ++writes;
          return std::string();
        });
    for (int i = 0; i < 6; ++i) {
      p.acquire();
      p.submit(uint64_t(i), 1);
    }
  }  // the destructor drains what was submitted
  EXPECT_EQ(writes.load(), 6);
}

TEST(ChunkPipeline, MemoryIsBuffersTimesRawPlusOut) {
  EXPECT_EQ(ChunkPipeline::default_buffers(3), 5u);
  EXPECT_EQ(ChunkPipeline::memory_bytes({4096, 8192, 3, 0}), 5u * (4096 + 8192));
  EXPECT_EQ(ChunkPipeline::memory_bytes({100, 0, 1, 0}), 3u * 4096);
  EXPECT_EQ(ChunkPipeline::memory_bytes({4096, 4097, 1, 7}), 7u * (4096 + 8192));
}

}  // namespace
