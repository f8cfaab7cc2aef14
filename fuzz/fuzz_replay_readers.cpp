// Fuzz target: fbreplay's dataset readers (tools/fbreplay: OME-Zarr, OME-TIFF and raw, and the
// saved per-frame metadata they share). Each input is a small dataset packed into one file:
//   byte 0 % 3: the format (0 zarr, 1 tiff, 2 raw), then the files' contents, in the order
//   below, separated by the line "--fbfile--" (kSeparator); missing files are not written.
//     zarr: run.zarr/.zattrs  run.zarr/0/.zarray  run.zarr/0/0.0.0  run.zarr/0/1.0.0
//           run.zarr/0/2.0.0  run.zarr/0/0.0.0.0 (chunks of frames 0-2; the last is RGB's)
//     tiff: run.ome.tif  run.ome.tif.frames.json  run.ome.tif.frames.jsonl
//     raw:  run/meta.json  run/index.jsonl  run/frames.raw
// They are written to a temporary directory and opened with open_dataset(), as fbreplay does;
// then every frame is read (the first 64, when one is at most 64 MiB). std::runtime_error naming
// the path is the clean refusal; anything else escaping, or a crash, is a bug.
// fuzz/pack_dataset.py packs a dataset fbsave wrote into this form (the seeds were made so).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fbreplay/dataset.hpp"

namespace fs = std::filesystem;
namespace fr = framebroker::fbreplay;

namespace {

constexpr std::string_view kSeparator = "\n--fbfile--\n";

struct Format {
  const char* open;  // what open_dataset() is given, relative to the directory
  std::vector<const char*> files;
};

const Format kFormats[3] = {
    {"run.zarr",
     {"run.zarr/.zattrs", "run.zarr/0/.zarray", "run.zarr/0/0.0.0", "run.zarr/0/1.0.0",
      "run.zarr/0/2.0.0", "run.zarr/0/0.0.0.0"}},
    {"run.ome.tif", {"run.ome.tif", "run.ome.tif.frames.json", "run.ome.tif.frames.jsonl"}},
    {"run", {"run/meta.json", "run/index.jsonl", "run/frames.raw"}},
};

const fs::path& temp_dir() {
  static const fs::path dir = [] {
    char tmpl[] = "/tmp/fb-fuzz-replay-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    return fs::path(tmpl);
  }();
  return dir;
}

struct RemoveAtExit {
  ~RemoveAtExit() {
    std::error_code ec;
    fs::remove_all(temp_dir(), ec);
  }
} remove_at_exit;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool verbose = std::getenv("FB_FUZZ_VERBOSE") != nullptr;  // why each input ended
  if (size == 0) return 0;
  const Format& format = kFormats[data[0] % 3];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

  const fs::path dir = temp_dir() / "d";
  std::error_code ec;
  fs::remove_all(dir, ec);
  for (const char* name : format.files) {
    if (rest.empty()) break;
    const size_t sep = rest.find(kSeparator);
    const std::string_view content = rest.substr(0, sep);
    rest =
        sep == std::string_view::npos ? std::string_view() : rest.substr(sep + kSeparator.size());
    const fs::path path = dir / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary).write(content.data(), std::streamsize(content.size()));
  }

  try {
    auto reader = fr::open_dataset((dir / format.open).string());
    const auto& info = reader->info();
    const size_t frames = reader->frames().size();
    if (info.frame_bytes() <= (64u << 20)) {
      const size_t stride = info.row_bytes() + 64;  // a slot's rows may be padded
      std::vector<std::byte> buf(stride * info.height);
      for (size_t i = 0; i < frames && i < 64; ++i) reader->read(i, buf, stride);
    }
    if (verbose) std::fprintf(stderr, "  opened: %s, %zu frames\n", info.format.c_str(), frames);
  } catch (const std::runtime_error& e) {
    if (verbose) std::fprintf(stderr, "  refused: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_replay_readers: a %s escaped the reader: %s\n", typeid(e).name(),
                 e.what());
    std::abort();
  }
  return 0;
}
