#!/usr/bin/env bash
# Builds framebroker and runs the whole test suite twice: once as shipped,
# once under AddressSanitizer + UndefinedBehaviorSanitizer. Works on a fresh
# Debian 12 machine as root (it installs what it needs first).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh

jobs=$(nproc)
run_suite() {
  local dir=$1
  shift
  echo "=== configure + build: $dir ($*)"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "=== ctest: $dir"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 300)
}

# The Python client (built in the plain tree only) under Debian's pytest, which prints its
# own summary.
run_pytest() {
  echo "=== pytest: build/python"
  PYTHONPATH="$PWD/build/python" FB_BUILD_DIR="$PWD/build" \
    /usr/bin/python3 -m pytest python/tests -q -p no:cacheprovider
}

run_suite build
run_pytest
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DFB_SANITIZE=ON
echo "=== all tests passed (plain and ASan+UBSan)"
