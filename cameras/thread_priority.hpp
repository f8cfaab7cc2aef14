// Raising the calling thread's scheduling priority, for the threads that must not fall behind a
// camera: the broker's camera threads (realtime_priority) and fbsave's writer
// (--realtime-priority). Header-only: fbsave includes it without linking the camera drivers.
//
// SCHED_FIFO at `priority` where permitted (root, CAP_SYS_NICE, or RLIMIT_RTPRIO >= priority, as
// systemd's LimitRTPRIO= gives). Where it is not, the thread gets nice kFallbackNice instead
// (permitted by CAP_SYS_NICE or RLIMIT_NICE, systemd's LimitNICE=); where neither is, it stays
// as it was. The caller logs what happened (describe()).
#pragma once

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace framebroker::cameras {

struct ThreadPriorityResult {
  enum class Kind { Fifo, Nice, Unchanged } kind = Kind::Unchanged;
  int priority = 0;    // what was asked for
  int fifo_errno = 0;  // why SCHED_FIFO was refused (0: it was not)
  int nice_errno = 0;  // why the nice fallback was refused
  bool raised() const { return kind != Kind::Unchanged; }
  // One sentence: "SCHED_FIFO 20", or why not and what instead.
  std::string describe() const {
    if (kind == Kind::Fifo) return "SCHED_FIFO priority " + std::to_string(priority);
    std::string s = "SCHED_FIFO priority " + std::to_string(priority) + " not permitted (" +
                    std::strerror(fifo_errno) + "; allow it with CAP_SYS_NICE or RLIMIT_RTPRIO, " +
                    "e.g. systemd LimitRTPRIO=)";
    if (kind == Kind::Nice) return s + ": nice " + std::to_string(kFallbackNice) + " instead";
    return s + ", nor nice " + std::to_string(kFallbackNice) + " (" + std::strerror(nice_errno) +
           "): normal priority";
  }
  static constexpr int kFallbackNice = -10;
};

// Only the calling thread changes (sched_setscheduler and setpriority on its tid).
inline ThreadPriorityResult raise_thread_priority(int priority) {
  ThreadPriorityResult r;
  r.priority = priority;
  const pid_t tid = pid_t(::syscall(SYS_gettid));
  sched_param sp{};
  sp.sched_priority = priority;
  if (::sched_setscheduler(tid, SCHED_FIFO, &sp) == 0) {
    r.kind = ThreadPriorityResult::Kind::Fifo;
    return r;
  }
  r.fifo_errno = errno;
  if (::setpriority(PRIO_PROCESS, id_t(tid), ThreadPriorityResult::kFallbackNice) == 0) {
    r.kind = ThreadPriorityResult::Kind::Nice;
    return r;
  }
  r.nice_errno = errno;
  return r;
}

}  // namespace framebroker::cameras
