// Which of fbsave's formats a path holds, from what is on disk: a directory with .zattrs (or
// .zgroup) is OME-Zarr, one with meta.json is raw; a file that starts as a TIFF does is OME-TIFF.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

#include "fbreplay/dataset.hpp"
#include "fbreplay/saved_metadata.hpp"

namespace framebroker::fbreplay {

namespace fs = std::filesystem;

namespace {

bool starts_as_tiff(const std::string& path) {
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  if (!in.read(magic, sizeof magic)) return false;
  // "II" or "MM", then 42 (TIFF) or 43 (BigTIFF) in that byte order.
  return (std::memcmp(magic, "II", 2) == 0 && (magic[2] == 42 || magic[2] == 43) && !magic[3]) ||
         (std::memcmp(magic, "MM", 2) == 0 && !magic[2] && (magic[3] == 42 || magic[3] == 43));
}

}  // namespace

std::unique_ptr<DatasetReader> open_dataset(const std::string& given) {
  std::string path = given;
  while (path.size() > 1 && path.back() == '/') path.pop_back();  // "run1/" names run1
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    throw std::runtime_error("cannot open " + path + ": " +
                             (ec ? ec.message() : std::string("no such file or directory")));
  if (fs::is_directory(st)) {
    if (fs::exists(path + "/.zattrs", ec) || fs::exists(path + "/.zgroup", ec))
      return open_zarr(path);
    if (fs::exists(path + "/meta.json", ec)) return open_raw(path);
    corrupt(path,
            "a directory with neither .zattrs (OME-Zarr) nor meta.json (raw) in it; give the "
            "dataset's directory, a .ome.tif file, or a .zarr directory");
  }
  if (fs::is_regular_file(st)) {
    if (starts_as_tiff(path)) return open_tiff(path);
    corrupt(path,
            "a file that is not a TIFF; give the dataset's directory (OME-Zarr, raw) or "
            "its .ome.tif");
  }
  corrupt(path, "neither a file nor a directory");
}

}  // namespace framebroker::fbreplay
