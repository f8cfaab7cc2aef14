// An ordered pipeline for writers that fill buffers with frames, encode them (compress) and write
// them out: a fixed set of buffers, several encoder threads, one writer thread.
//
// The caller's thread acquire()s a buffer (waiting while every buffer is busy: that is the
// back-pressure), fills it and submit()s it with its index and frame count. Encoder threads run
// `encode` on submitted buffers in parallel, each with the buffer's own output buffer; the writer
// thread runs `write` on the encoded results strictly in submission order and then counts the
// buffer's frames as durable, so durable() is always a prefix of the frames submitted.
//
// The first error (from encode or write, reached in submission order, or given to fail()) stops
// every later write: what is on disk stays a prefix. It is thrown once to the caller by acquire()
// or check(), or returned by finish(). finish() drains and joins (idempotent).
//
// All buffers are allocated when the pipeline is made, in one region of transparent huge pages,
// and pre-faulted: the first buffer before the constructor returns, the others by a short-lived
// thread, each becoming free as soon as it is touched. On a VM that hands memory back to its host
// the first touch costs 2-7 ms per MiB (4 KiB pages at the high end), so pre-faulting 3 x 128 MiB
// before the first frame could be written took 5 s; now the frame path waits for one buffer.
// Nothing is allocated per buffer submitted. Memory: buffers x (raw_bytes + out_bytes), each
// rounded up to 4096, plus at most 2 MiB of huge-page alignment.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "fbsave/file_io.hpp"

namespace framebroker::fbsave {

class ChunkPipeline {
 public:
  // Encodes buffer `index` (its first `frames` frames in `raw`) into `out` (null when out_bytes is
  // 0) or in place; returns the bytes to write (a prefix of raw or out). Runs on several threads
  // at once, each call with its own buffers. May throw std::runtime_error (its text is the error).
  using Encode = std::function<std::span<const std::byte>(uint64_t index, std::byte* raw,
                                                          uint32_t frames, std::byte* out)>;
  // Writes the encoded bytes of buffer `index`; returns "" or a sentence naming the file and the
  // cause. Runs on the writer thread only, in submission order.
  using Write = std::function<std::string(uint64_t index, std::span<const std::byte> data)>;

  struct Options {
    size_t raw_bytes = 0;
    size_t out_bytes = 0;   // 0: encode works in place (or not at all)
    uint32_t encoders = 1;  // at least 1
    uint32_t buffers = 0;   // 0: encoders + 2
  };

  // Allocates every buffer, pre-faults the first, then starts the threads (the others are
  // pre-faulted on one of them). Throws std::bad_alloc.
  ChunkPipeline(const Options& options, Encode encode, Write write);
  ~ChunkPipeline();  // finish(), its error ignored
  ChunkPipeline(const ChunkPipeline&) = delete;
  ChunkPipeline& operator=(const ChunkPipeline&) = delete;

  static uint32_t default_buffers(uint32_t encoders) { return encoders + 2; }
  // What Options asks for, in bytes.
  static size_t memory_bytes(const Options& options);

  // A free raw buffer of raw_bytes (its old contents left as they are), held by the caller until
  // submit(); the same one again when already held. Waits while every buffer is busy. Throws
  // std::runtime_error with the first error (it then counts as reported).
  std::byte* acquire();
  // The held buffer, or null.
  std::byte* held() const { return held_ < 0 ? nullptr : slots_[size_t(held_)].raw; }
  // Queues the held buffer for encoding and writing.
  void submit(uint64_t index, uint32_t frames);
  // Throws the first error, if there was one (it then counts as reported).
  void check();
  // Records `error` as the first error unless there is one already, and counts it as reported
  // (the caller throws it): nothing more is written.
  void fail(const std::string& error);
  bool failed() const;
  // Frames of the buffers written so far, in order.
  uint64_t durable() const;

  // Drops a held buffer, waits until every submitted buffer is written (or skipped after an
  // error), joins the threads. Returns the first error if it was never reported, else "" (and
  // "" on later calls).
  std::string finish();

 private:
  struct Region {  // one anonymous mapping
    std::byte* base = nullptr;
    size_t bytes = 0;
    ~Region();
  };
  struct Slot {
    std::byte *raw = nullptr, *out = nullptr;
    uint64_t index = 0;
    uint32_t frames = 0;
    bool encoded = false;
    std::span<const std::byte> result;
    std::string error;  // from encode
  };

  void prefault(size_t slot);
  void run_prefault();
  void run_encoder();
  void run_writer();
  // Under mu_.
  void note_error(std::string error);

  const Encode encode_;
  const Write write_;
  const size_t raw_bytes_, out_bytes_;
  Region region_;
  std::vector<Slot> slots_;
  int held_ = -1;  // the caller's

  mutable std::mutex mu_;
  std::condition_variable encode_cv_, write_cv_, free_cv_;
  std::vector<int> free_;   // capacity reserved for every slot
  std::vector<int> order_;  // ring of submitted slots, by submission count % size
  uint64_t submitted_ = 0, next_encode_ = 0, next_write_ = 0;
  uint64_t durable_ = 0;
  bool stop_ = false, failed_ = false, reported_ = false, finished_ = false;
  std::string error_;
  std::vector<std::thread> encoders_;
  std::thread writer_, prefaulter_;
};

}  // namespace framebroker::fbsave
