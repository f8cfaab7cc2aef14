#include "logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace framebroker::daemon {
namespace {

// %* in a pattern: "<N>", the syslog priority of the line's level.
class PriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    char buf[8];
    const int n = std::snprintf(buf, sizeof buf, "<%d>", syslog_priority(msg.level));
    dest.append(buf, buf + n);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }
};

}  // namespace

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;
    case spdlog::level::err:
      return 3;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::info:
      return 6;
    default:
      return 7;
  }
}

bool stderr_is_journal() {
  const char* v = std::getenv("JOURNAL_STREAM");
  if (!v) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(v, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return ::fstat(2, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

void setup_logging(bool journal) {
  if (journal) {
    auto logger = spdlog::stderr_logger_mt("framebrokerd");
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<PriorityFlag>('*').set_pattern("%*%v");
    logger->set_formatter(std::move(formatter));
    logger->flush_on(spdlog::level::trace);  // a pipe to journald: each line as it happens
    spdlog::set_default_logger(std::move(logger));
  } else {
    spdlog::set_default_logger(spdlog::stderr_color_mt("framebrokerd"));
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
}

}  // namespace framebroker::daemon
