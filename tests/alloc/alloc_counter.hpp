// Counts every heap allocation of this process, on every thread: the global operator new and
// delete (all variants) and malloc, calloc, realloc and the aligned allocators are replaced here
// (glibc supports replacing malloc: shared libraries' calls land here too), and forward to
// glibc's allocator (__libc_malloc and friends).
//
// Counting is off until start(). With FB_ALLOC_TRACE=1 in the environment, every allocation
// counted also records its call stack (up to kMaxStacks distinct ones, with how often each
// came), and print_stacks() prints them symbolised (file:line, by addr2line).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fb_alloc {

constexpr size_t kKeptSizes = 16;
constexpr size_t kMaxStacks = 64;

// Zeroes the count and starts counting.
void start();
// Stops counting; returns the allocations counted since start().
uint64_t stop();
uint64_t count();
// The sizes of the first allocations counted since start() (up to kKeptSizes).
size_t kept_sizes(size_t* out, size_t max);
bool tracing();
// With FB_ALLOC_TRACE=1: the distinct call stacks counted since start(), most frequent first, to
// stderr. Allocates (call it after stop()).
void print_stacks();

}  // namespace fb_alloc
