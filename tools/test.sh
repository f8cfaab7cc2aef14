#!/usr/bin/env bash
# Builds framebroker and runs its tests in three trees:
#   build       as shipped: every test, then the Python client under pytest
#   build-asan  AddressSanitizer + UndefinedBehaviorSanitizer: every test
#   build-tsan  ThreadSanitizer: the tests labelled concurrency or parsing (delivery, faults,
#               publishing, release lanes, reconnect, the kill storm, floods, reload, bad input)
# Works on a fresh Debian 12 machine as root (it installs what it needs first).
#
# Usage: tools/test.sh [--plain] [--asan] [--tsan]   (no option: all three, as CI runs them)
# Example: tools/test.sh --tsan
set -euo pipefail
cd "$(dirname "$0")/.."

plain=0 asan=0 tsan=0
for arg in "$@"; do
  case $arg in
    --plain) plain=1 ;;
    --asan) asan=1 ;;
    --tsan) tsan=1 ;;
    -h | --help)
      sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "tools/test.sh: unknown option '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done
if [[ $plain$asan$tsan == 000 ]]; then plain=1 asan=1 tsan=1; fi

tools/install-deps.sh

jobs=$(nproc)
# The sanitizer trees check, they do not ship: -O1 -g1 builds them in about two thirds of the
# time, which keeps CI within its hour on two cores.
sanitizer_flags=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG")
# configure_and_build DIR [CMAKE ARGS...] [-- TARGETS...]
configure_and_build() {
  local dir=$1 args=() targets=()
  shift
  while (($#)) && [[ $1 != -- ]]; do args+=("$1") && shift; done
  (($#)) && shift && targets=(--target "$@")
  echo "=== configure + build: $dir (${args[*]})"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${args[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs" "${targets[@]}"
}
run_ctest() {
  local dir=$1
  shift
  echo "=== ctest: $dir $*"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 300 "$@")
}

# The Python client (built in the plain tree only) under Debian's pytest, which prints its
# own summary.
run_pytest() {
  echo "=== pytest: build/python"
  PYTHONPATH="$PWD/build/python" FB_BUILD_DIR="$PWD/build" \
    /usr/bin/python3 -m pytest python/tests -q -p no:cacheprovider
}

if ((plain)); then
  configure_and_build build
  run_ctest build
  run_pytest
fi
if ((asan)); then
  configure_and_build build-asan -DFB_SANITIZE=ON "${sanitizer_flags[@]}"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest build-asan
fi
if ((tsan)); then
  # Only what the labelled tests run is built (FB_TSAN limits the test sources).
  configure_and_build build-tsan -DFB_TSAN=ON "${sanitizer_flags[@]}" -- fb_integration_tests fb_pipeline_tests
  # A race report makes the process exit 66; the test harness also fails a test whose broker
  # printed one. handle_segv=0: the tests that write into a read-only slot expect a real SIGSEGV.
  TSAN_OPTIONS="second_deadlock_stack=1 exitcode=66 handle_segv=0" run_ctest build-tsan -L "concurrency|parsing"
fi
echo "=== all tests passed:$( ((plain)) && echo " plain")$( ((asan)) && echo " ASan+UBSan")$( ((tsan)) && echo " TSan")"
