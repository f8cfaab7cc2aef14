#include "fbsave/zarr_group.hpp"

#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "fbsave/file_io.hpp"

namespace framebroker::fbsave::zarr {

namespace {

void write_text(const std::string& path, const std::string& text) {
  if (const int e = write_file_atomic(path, text, false))
    throw std::runtime_error(cannot_write(path, e));
}

}  // namespace

void write_group(const std::string& dir, int zarr_version, const nlohmann::json& attributes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir + ": " + ec.message());
  const auto dump = [](const nlohmann::json& j) {
    return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  };
  if (zarr_version == 3) {
    nlohmann::json group = {{"zarr_format", 3}, {"node_type", "group"}};
    if (!attributes.empty()) group["attributes"] = attributes;
    write_text(dir + "/zarr.json", dump(group));
    return;
  }
  write_text(dir + "/.zgroup", "{\"zarr_format\": 2}\n");
  if (!attributes.empty()) write_text(dir + "/.zattrs", dump(attributes));
}

}  // namespace framebroker::fbsave::zarr
