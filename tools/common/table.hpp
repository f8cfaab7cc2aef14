// A plain-text table whose columns fit their widest cell; numbers align right (fbctl, fbbench).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace framebroker::tools {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  bool empty() const { return rows_.empty(); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

std::string fixed(double v, int digits);
std::string count_or_dash(int64_t v);  // "-" for negative values

}  // namespace framebroker::tools
