// Log set-up. On a terminal or a file: timestamped, coloured lines. Under systemd, when stderr
// is the journal: no timestamps (the journal has its own) and a syslog priority prefix such as
// "<4>" so that `journalctl -p warning` works.
#pragma once

#include <spdlog/common.h>

namespace framebroker::daemon {

// True when $JOURNAL_STREAM names our stderr (device:inode), as sd_journal_stream_fd(3) advises.
bool stderr_is_journal();
void setup_logging(bool journal);
// syslog(3) priority of a level: 7 debug ... 2 critical.
int syslog_priority(spdlog::level::level_enum level);

}  // namespace framebroker::daemon
