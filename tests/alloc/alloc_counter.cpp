#include "alloc_counter.hpp"

#include <dlfcn.h>
#include <execinfo.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace fb_alloc {
namespace {

std::atomic<bool> counting{false};
std::atomic<uint64_t> counted{0};
std::atomic<size_t> sizes[kKeptSizes];
std::atomic<int> trace_mode{-1};  // -1: FB_ALLOC_TRACE not read yet
thread_local bool in_trace = false;

constexpr int kDepth = 24;
struct Stack {
  void* frames[kDepth];
  int depth = 0;
  uint64_t hits = 0;
  size_t size = 0;  // of its first allocation
};
Stack stacks[kMaxStacks];
size_t stack_count = 0;
uint64_t stacks_lost = 0;  // allocations whose stack found no room
std::atomic_flag stacks_lock = ATOMIC_FLAG_INIT;

void record_stack(size_t size) {
  in_trace = true;  // backtrace may allocate (the first time): not counted, not traced
  void* frames[kDepth];
  const int depth = backtrace(frames, kDepth);
  while (stacks_lock.test_and_set(std::memory_order_acquire)) {
  }
  bool found = false;
  for (size_t i = 0; i < stack_count && !found; ++i) {
    Stack& s = stacks[i];
    if (s.depth == depth && std::memcmp(s.frames, frames, sizeof(void*) * size_t(depth)) == 0) {
      ++s.hits;
      found = true;
    }
  }
  if (!found && stack_count < kMaxStacks) {
    Stack& s = stacks[stack_count++];
    std::memcpy(s.frames, frames, sizeof(void*) * size_t(depth));
    s.depth = depth;
    s.hits = 1;
    s.size = size;
  } else if (!found) {
    ++stacks_lost;
  }
  stacks_lock.clear(std::memory_order_release);
  in_trace = false;
}

void note(size_t size) {
  if (!counting.load(std::memory_order_relaxed) || in_trace) return;
  const uint64_t n = counted.fetch_add(1);
  if (n < kKeptSizes) sizes[n].store(size);
  if (tracing()) record_stack(size);
}

// backtrace() loads libgcc on its first call, which allocates: done before counting starts.
[[maybe_unused]] const bool warm = [] {
  void* frames[4];
  backtrace(frames, 4);
  return true;
}();

void* aligned(size_t align, size_t size) {
  if (align < sizeof(void*)) align = sizeof(void*);
  return __libc_memalign(align, size ? size : 1);
}

}  // namespace

bool tracing() {
  int t = trace_mode.load(std::memory_order_relaxed);
  if (t < 0) {
    const char* e = std::getenv("FB_ALLOC_TRACE");  // allocates nothing
    t = e && *e && std::strcmp(e, "0") != 0 ? 1 : 0;
    trace_mode.store(t);
  }
  return t == 1;
}

void start() {
  for (auto& s : sizes) s.store(0);
  stack_count = 0;
  stacks_lost = 0;
  counted.store(0);
  counting.store(true);
}

uint64_t stop() {
  counting.store(false);
  return counted.load();
}

uint64_t count() {
  return counted.load();
}

size_t kept_sizes(size_t* out, size_t max) {
  const size_t n = size_t(std::min<uint64_t>(counted.load(), std::min(max, kKeptSizes)));
  for (size_t i = 0; i < n; ++i) out[i] = sizes[i].load();
  return n;
}

// "func at file:line" for an address, by addr2line on the object it lies in.
std::string symbolise(void* addr) {
  Dl_info info{};
  if (!dladdr(addr, &info) || !info.dli_fname) return "?";
  // The return address points after the call: look up the call itself.
  const auto offset = uintptr_t(addr) - uintptr_t(info.dli_fbase) - 1;
  char cmd[1024];
  std::snprintf(cmd, sizeof cmd, "addr2line -Cfpi -e '%s' 0x%lx 2>/dev/null", info.dli_fname,
                static_cast<unsigned long>(offset));
  std::string out;
  if (FILE* f = popen(cmd, "r")) {
    char line[1024];
    while (std::fgets(line, sizeof line, f)) out += line;
    pclose(f);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  if (out.empty() || out.starts_with("??")) out = std::string(info.dli_fname) + " (no symbols)";
  return out;
}

void print_stacks() {
  if (!tracing()) return;
  std::vector<Stack*> order;
  for (size_t i = 0; i < stack_count; ++i) order.push_back(&stacks[i]);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->hits > b->hits; });
  std::fprintf(stderr, "==== %zu distinct allocating call stack(s)%s\n", order.size(),
               stacks_lost ? " (more were not kept)" : "");
  for (const Stack* s : order) {
    std::fprintf(stderr, "---- %llu allocation(s), the first of %zu bytes, from:\n",
                 static_cast<unsigned long long>(s->hits), s->size);
    // Only the frames in this project's sources (where a fix would go), shortened; the first
    // outside the allocator says what allocated (a std::vector, a std::set node...).
    bool said_what = false;
    for (int i = 1; i < s->depth; ++i) {
      std::string lines = symbolise(s->frames[i]);
      size_t from = 0;
      while (from < lines.size()) {
        size_t to = lines.find('\n', from);
        if (to == std::string::npos) to = lines.size();
        std::string line = lines.substr(from, to - from);
        from = to + 1;
        if (line.starts_with(" (inlined by) ")) line = line.substr(14);
        const size_t at = line.rfind(" at ");
        const std::string file = at == std::string::npos ? "" : line.substr(at + 4);
        const bool ours = file.find(FB_SOURCE_DIR) != std::string::npos &&
                          file.find("alloc_counter") == std::string::npos;
        const bool allocator = line.find("operator new") != std::string::npos ||
                               line.find("alloc_counter") != std::string::npos;
        if (!ours && (said_what || allocator)) continue;
        said_what = true;
        std::string fn = at == std::string::npos ? line : line.substr(0, at);
        if (fn.size() > 110) fn = fn.substr(0, 107) + "...";
        std::fprintf(stderr, "    %s  %s\n", fn.c_str(), file.c_str());
      }
    }
  }
}

}  // namespace fb_alloc

using fb_alloc::note;

// ---- C allocator ----

extern "C" {

void* malloc(size_t size) {
  note(size);
  return __libc_malloc(size);
}

void* calloc(size_t n, size_t size) {
  note(n * size);
  return __libc_calloc(n, size);
}

void* realloc(void* p, size_t size) {
  note(size);
  return __libc_realloc(p, size);
}

void free(void* p) {
  __libc_free(p);
}

void* memalign(size_t align, size_t size) {
  note(size);
  return __libc_memalign(align, size);
}

void* aligned_alloc(size_t align, size_t size) {
  note(size);
  return __libc_memalign(align, size);
}

int posix_memalign(void** out, size_t align, size_t size) {
  note(size);
  void* p = __libc_memalign(align, size);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

void* valloc(size_t size) {
  note(size);
  return __libc_memalign(size_t(sysconf(_SC_PAGESIZE)), size);
}

}  // extern "C"

// ---- C++ allocator ----

namespace {

void* checked(void* p) {
  if (!p) throw std::bad_alloc();
  return p;
}

void* plain(size_t size) {
  note(size);
  return __libc_malloc(size ? size : 1);
}

void* over_aligned(size_t size, std::align_val_t align) {
  note(size);
  return fb_alloc::aligned(size_t(align), size);
}

}  // namespace

void* operator new(size_t size) {
  return checked(plain(size));
}
void* operator new[](size_t size) {
  return checked(plain(size));
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  return plain(size);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  return plain(size);
}
void* operator new(size_t size, std::align_val_t a) {
  return checked(over_aligned(size, a));
}
void* operator new[](size_t size, std::align_val_t a) {
  return checked(over_aligned(size, a));
}
void* operator new(size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return over_aligned(size, a);
}
void* operator new[](size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return over_aligned(size, a);
}

void operator delete(void* p) noexcept {
  __libc_free(p);
}
void operator delete[](void* p) noexcept {
  __libc_free(p);
}
void operator delete(void* p, size_t) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, size_t) noexcept {
  __libc_free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  __libc_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  __libc_free(p);
}
