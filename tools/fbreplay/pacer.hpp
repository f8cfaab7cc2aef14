// When each replayed frame is due: at a fixed rate (--fps), at the intervals between the saved
// timestamps (--as-recorded), or at once (neither: the subscribers' pace, through Block).
// Deadlines are absolute, so sleeping late does not accumulate drift; a replay that falls more
// than kMaxLag behind (a slow disk, a slow subscriber) starts its schedule again from now rather
// than rushing the frames it is late for.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <vector>

#include "fbreplay/dataset.hpp"

namespace framebroker::fbreplay {

class Pacer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kMaxLag = std::chrono::milliseconds(100);

  static Pacer unpaced() { return Pacer(); }
  static Pacer at_fps(double fps);
  // The saved mono_ns of each frame. Between the last frame and the first of the next pass
  // (--loop): the recording's mean frame interval.
  static Pacer as_recorded(const std::vector<SavedFrame>& frames);

  // Sleeps until frame `index` (of the dataset; replays go 0, 1, ..., n-1, 0, ...) is due.
  // Returns false, sooner, when `stop` becomes true.
  bool wait(size_t index, const std::atomic<bool>& stop);

 private:
  Pacer() = default;
  Clock::duration interval_before(size_t index) const;

  bool paced_ = false;
  Clock::duration period_{};               // --fps, and the loop gap of --as-recorded
  std::vector<Clock::duration> recorded_;  // --as-recorded: frame i - frame i-1 (0 for i = 0)
  bool started_ = false;
  Clock::time_point due_{};
};

}  // namespace framebroker::fbreplay
