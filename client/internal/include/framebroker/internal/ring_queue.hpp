// RingQueue: a FIFO in one growable circular buffer. Unlike std::deque, which allocates and
// frees a block every few elements as items pass through, it allocates only when it holds more
// than ever before: in steady state, pushing and popping allocate nothing.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace framebroker::internal {

template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  void reserve(size_t n) {
    if (n > buf_.size()) regrow(n);
  }

  void push_back(T v) {
    if (size_ == buf_.size()) regrow(buf_.empty() ? 8 : buf_.size() * 2);
    buf_[(head_ + size_) % buf_.size()] = std::move(v);
    ++size_;
  }
  T& front() { return buf_[head_]; }
  const T& front() const { return buf_[head_]; }
  // The element i places behind the front.
  T& operator[](size_t i) { return buf_[(head_ + i) % buf_.size()]; }
  const T& operator[](size_t i) const { return buf_[(head_ + i) % buf_.size()]; }
  void pop_front() {
    buf_[head_] = T();  // lets go of what it owns now, not when the place is reused
    head_ = (head_ + 1) % buf_.size();
    --size_;
  }
  void clear() {
    while (!empty()) pop_front();
    head_ = 0;
  }

  template <typename F>
  void for_each(F&& f) const {
    for (size_t i = 0; i < size_; ++i) f((*this)[i]);
  }

 private:
  void regrow(size_t capacity) {
    std::vector<T> next(capacity);
    for (size_t i = 0; i < size_; ++i) next[i] = std::move((*this)[i]);
    buf_ = std::move(next);
    head_ = 0;
  }

  std::vector<T> buf_;
  size_t head_ = 0, size_ = 0;
};

}  // namespace framebroker::internal
