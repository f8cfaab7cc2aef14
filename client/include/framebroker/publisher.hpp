// framebroker::Publisher: make a stream of your own that every tool sees like a camera's.
//
//   auto client = framebroker::Client::connect({});
//   auto pub = client.advertise("sim0.bin2", {.width = 256, .height = 256,
//                                             .pixel_type = "Mono16"});
//   while (auto loan = pub.loan(std::chrono::seconds(1))) {
//     fill(loan->pixels());              // writable, straight in the shared-memory slot
//     loan->commit({.source_stream = "sim0", .source_seq = in.seq()});
//   }                                    // a loan neither committed nor aborted goes back
//
// The broker owns the stream's segment; the publisher gets write access through a file
// descriptor the broker passes it, never through the file's mode. Slots are lent ahead
// (credits), so loan() costs no round trip while the subscribers keep up. With the default
// overflow, Block, loan() waits (up to its timeout) until every `every` subscriber has room:
// a chain of `every` subscribers and blocking publishers loses nothing. With Drop, loan()
// returns nullopt at once when no slot is free, and the frame counts as dropped (its seq is
// skipped downstream). When the publisher goes (or its process dies), its loans are freed, and
// the subscribers see the end of the stream after its last frame.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "framebroker/sequence.hpp"

namespace framebroker {

namespace detail {
class Core;
struct PublisherState;
}  // namespace detail

enum class Overflow { Block, Drop };

struct PublishOptions {
  uint32_t width = 0;
  uint32_t height = 0;
  std::string pixel_type = "Mono16";  // Mono8, Mono10/12/14 (in u16), Mono16, Mono32F, RGB8, ...
  uint32_t stride = 0;                // bytes per row; 0 = width x pixel size
  uint8_t bit_depth = 0;              // 0 = the pixel type's
  uint32_t slots = 0;                 // 0 = 16, or from ring_mb
  uint32_t ring_mb = 0;
  Overflow overflow = Overflow::Block;
  std::vector<std::pair<std::string, std::string>> tags;  // added to every frame
};

// What a committed frame says about itself (the broker adds seq, timestamps and format).
struct CommitInfo {
  uint64_t camera_frame_id = 0;
  std::optional<uint64_t> hw_timestamp_ns;
  double exposure_us = 0;
  // Provenance: the stream and seq this frame was derived from, so a loss upstream shows as a
  // gap in source_seq downstream.
  std::string source_stream;
  int64_t source_seq = -1;
  std::vector<std::pair<std::string, std::string>> tags;
  size_t bytes = 0;  // 0 = a whole frame of the advertised format
  // Within a sequence: the frame's index on each axis, in the spec's axis order. Empty: from its
  // position (the n-th frame committed or dropped since begin_sequence).
  std::vector<uint32_t> index;
};

// One slot lent to the publisher: fill it, then commit() or abort(). Move-only, like Frame.
class Loan {
 public:
  Loan(Loan&&) noexcept;
  Loan& operator=(Loan&&) noexcept;
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;
  ~Loan();  // aborts a loan neither committed nor aborted

  std::span<std::byte> pixels() const { return pixels_; }
  uint32_t slot() const { return slot_; }
  uint32_t gen() const { return gen_; }
  // Publishes the frame to every subscriber. Throws Error(BrokerLost) if the broker is gone.
  void commit(const CommitInfo& info = {});
  // Gives the slot back unpublished; it keeps no seq.
  void abort();

 private:
  friend class Publisher;
  Loan(std::shared_ptr<detail::PublisherState> state, uint32_t gen, uint32_t slot,
       std::span<std::byte> pixels)
      : state_(std::move(state)), gen_(gen), slot_(slot), pixels_(pixels) {}
  std::shared_ptr<detail::PublisherState> state_;
  uint32_t gen_ = 0, slot_ = 0;
  std::span<std::byte> pixels_;
};

// A Publisher does not reconnect, even with ConnectOptions::reconnect: its ring dies with the
// broker, so after a broker restart its calls throw Error(BrokerLost); advertise again.
class Publisher {
 public:
  // Made by Client::advertise. It has a connection of its own.
  explicit Publisher(std::shared_ptr<detail::PublisherState> state);
  Publisher(Publisher&&) noexcept = default;
  Publisher& operator=(Publisher&&) noexcept = default;
  ~Publisher();  // sends what is committed, then ends the stream

  // A writable slot, waiting up to `timeout` for one (Block), or nullopt at once when none is
  // free (Drop: the frame is counted as dropped). Throws Error(BrokerLost) when the broker is
  // gone.
  std::optional<Loan> loan(std::chrono::milliseconds timeout = std::chrono::seconds(1));
  // Sends commits still batched (commit() sends at once unless more are coming).
  void flush();
  // Starts an acquisition sequence on this stream (ending one still running): subscribers get
  // SequenceStarted after the frames committed so far. Returns its id. Throws
  // Error(InvalidArgument) with the reason for a bad spec.
  uint64_t begin_sequence(const SequenceSpec& spec);
  // Ends it after the frames committed so far (subscribers get SequenceFinished).
  void end_sequence();

  const std::string& stream() const;
  uint32_t width() const;
  uint32_t height() const;
  uint32_t stride() const;
  uint32_t gen() const;
  uint32_t slots() const;
  uint64_t committed() const;
  uint64_t dropped() const;  // loans a Drop publisher could not get
  // Errors the broker reported about commits (a hostile or buggy producer's).
  std::vector<std::string> take_async_errors();

 private:
  std::shared_ptr<detail::PublisherState> state_;
};

}  // namespace framebroker
