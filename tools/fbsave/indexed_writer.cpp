#include "fbsave/indexed_writer.hpp"

#include <stdexcept>
#include <utility>

#include "fbsave/frame_rows.hpp"

namespace framebroker::fbsave {

namespace {

std::string numpy_dtype(const DatasetInfo& i) {
  return std::string("<") + (i.floating ? "f" : "u") + std::to_string(i.bytes_per_sample);
}

}  // namespace

IndexedWriter::IndexedWriter(const char* format, std::string path, std::string index_path,
                             std::string summary_path)
    : path_(std::move(path)),
      index_path_(std::move(index_path)),
      summary_path_(std::move(summary_path)),
      format_(format) {}

void IndexedWriter::take_info(const DatasetInfo& info) {
  if (began_) throw std::runtime_error("cannot write " + path_ + ": begin() called twice");
  info_ = info;
  row_bytes_ = settle_rows(info_, path_);
  frame_bytes_ = info_.frame_bytes();
  if (info_.sequence) planes_.reset(*info_.sequence);
}

void IndexedWriter::check_usable() const {
  if (!began_ || finished_)
    throw std::runtime_error("cannot write " + path_ + ": the writer is not open");
  if (failed_)
    throw std::runtime_error("cannot write " + path_ + ": an earlier write failed (" + error_ +
                             ")");
}

void IndexedWriter::fail(const std::string& message) {
  failed_ = true;
  error_ = message;
  throw std::runtime_error(message);
}

int IndexedWriter::write_summary_errno(bool final) {
  nlohmann::json m =
      summary_json(format_, info_, frames_written(), index_.lines(), missed_, final, error_);
  m["dtype"] = numpy_dtype(info_);
  if (info_.sequence) m["sequence"] = planes_.json(*info_.sequence, missed_, final);
  if (!discontinuities_.empty()) m["discontinuities"] = discontinuities_;
  add_summary_fields(m);
  return write_file_atomic(summary_path_, m.dump(1) + "\n", final);
}

void IndexedWriter::write_summary(bool final) {
  if (const int e = write_summary_errno(final)) fail(cannot_write(summary_path_, e));
}

void IndexedWriter::finish() {
  if (finished_) return;
  finished_ = true;
  if (!began_) return;
  FinishErrors errors(failed_, error_);
  close_data(errors);
  if (const int e = index_.close(true)) errors.note(cannot_write(index_path_, e));
  if (const int e = write_summary_errno(true)) errors.note(cannot_write(summary_path_, e));
  errors.throw_first_new();
}

}  // namespace framebroker::fbsave
