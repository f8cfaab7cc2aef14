// What the raw and TIFF writers share: beside their data file, a line per frame (FrameIndex), the
// missed seqs and a summary JSON rewritten at every checkpoint; the writer's life (begun,
// finished, and the first failure, which every later call reports); and finish(), which closes
// the data file, then the index, and writes the final summary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fbsave/file_io.hpp"
#include "fbsave/frame_index.hpp"
#include "fbsave/writer.hpp"

namespace framebroker::fbsave {

class IndexedWriter : public Writer {
 public:
  void missed(uint64_t first_seq, uint64_t count) final { missed_.add(first_seq, count); }
  void discontinuity(const Discontinuity& d) final {
    missed_.cut();
    discontinuities_.push_back(discontinuity_json(d));
  }
  void finish() final;
  Totals totals() const final {
    const uint64_t n = frames_written();
    return Totals{n, missed_.count(), n * frame_bytes_};
  }

 protected:
  // `path` is the dataset, named in every error; `format` goes in the summary.
  IndexedWriter(const char* format, std::string path, std::string index_path,
                std::string summary_path);

  // The start of begin(): takes `info` and settles its rows (see settle_rows).
  void take_info(const DatasetInfo& info);
  // Throws unless begin() succeeded, finish() has not run and nothing failed.
  void check_usable() const;
  // Records the failure, which every later call reports, and throws it.
  [[noreturn]] void fail(const std::string& message);
  // The summary through a temporary file: 0 or the errno, or (write_summary) thrown.
  int write_summary_errno(bool final);
  void write_summary(bool final);

  // Complete frames in the data file; read by totals() from other threads.
  virtual uint64_t frames_written() const = 0;
  // The format's own fields, added to summary_json()'s and "dtype".
  virtual void add_summary_fields(nlohmann::json& summary) const = 0;
  // finish()'s part for the data file: flush and close it, noting each error.
  virtual void close_data(FinishErrors& errors) = 0;

  const std::string path_, index_path_, summary_path_;
  DatasetInfo info_;
  size_t row_bytes_ = 0, frame_bytes_ = 0;
  FrameIndex index_;
  MissedSeqs missed_;
  SequencePlanes planes_;  // in a sequence: the planes written
  nlohmann::json discontinuities_ = nlohmann::json::array();
  bool began_ = false, finished_ = false, failed_ = false;
  std::string error_;

 private:
  const char* const format_;
};

}  // namespace framebroker::fbsave
