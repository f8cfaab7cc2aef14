// fbbench python: a thin wrapper that execs `/usr/bin/python3 -m framebroker.bench ARGS...` (the
// benchmark of the Python client lives in the Python package). In a build tree the package is
// <build>/python beside <build>/tools/fbbench, put first on PYTHONPATH; installed, python3 finds
// its own.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fbbench/bench_commands.hpp"

namespace framebroker::fbbench {

int run_python_bench(const std::vector<std::string>& args, bool json) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path dir = (exe.parent_path() / ".." / "python").lexically_normal();
    if (fs::exists(dir / "framebroker" / "bench.py", ec)) {
      std::string path = dir.string();
      if (const char* old = std::getenv("PYTHONPATH"); old && *old) path += ":" + std::string(old);
      ::setenv("PYTHONPATH", path.c_str(), 1);
    }
  }
  const char* python = "/usr/bin/python3";
  std::vector<std::string> all{python, "-m", "framebroker.bench"};
  all.insert(all.end(), args.begin(), args.end());
  if (json) all.emplace_back("--json");  // `fbbench --json python`
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(python, argv.data());
  std::fprintf(stderr, "fbbench python: cannot run %s: %s\n", python, std::strerror(errno));
  return 1;
}

}  // namespace framebroker::fbbench
