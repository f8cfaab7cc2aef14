#include "fbreplay/pacer.hpp"

#include <algorithm>
#include <thread>

namespace framebroker::fbreplay {

Pacer Pacer::at_fps(double fps) {
  Pacer p;
  p.paced_ = true;
  p.period_ = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / fps));
  return p;
}

Pacer Pacer::as_recorded(const std::vector<SavedFrame>& frames) {
  Pacer p;
  p.paced_ = true;
  p.recorded_.resize(frames.size());
  for (size_t i = 1; i < frames.size(); ++i)  // a clock that went back: no wait
    p.recorded_[i] = std::chrono::nanoseconds(
        frames[i].mono_ns > frames[i - 1].mono_ns ? frames[i].mono_ns - frames[i - 1].mono_ns : 0);
  if (frames.size() > 1 && frames.back().mono_ns > frames.front().mono_ns)
    p.period_ = std::chrono::nanoseconds((frames.back().mono_ns - frames.front().mono_ns) /
                                         (frames.size() - 1));
  return p;
}

Pacer::Clock::duration Pacer::interval_before(size_t index) const {
  if (recorded_.empty()) return period_;
  return index == 0 ? period_ : recorded_[index];
}

bool Pacer::wait(size_t index, const std::atomic<bool>& stop) {
  if (!paced_) return !stop;
  const auto now = Clock::now();
  if (!started_) {
    started_ = true;
    due_ = now;
    return !stop;
  }
  due_ += interval_before(index);
  if (now - due_ > kMaxLag) due_ = now;  // too late to catch up: a new schedule from here
  while (!stop) {
    const auto left = due_ - Clock::now();
    if (left <= Clock::duration::zero()) return true;
    std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(50)));
  }
  return false;
}

}  // namespace framebroker::fbreplay
