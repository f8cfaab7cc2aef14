#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/fuzzing.md) with clang in build-fuzz and runs them.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: tools/fuzz.sh [--merge] [--build-only] [TARGET|all] [SECONDS]

Builds build-fuzz/ with clang (-DFB_FUZZ=ON; only the fuzz targets, under libFuzzer, ASan and
UBSan), then runs TARGET (or every target in turn, for `all` or none) for SECONDS each (default
60) on a copy of its corpus in build-fuzz/fuzz-corpus/TARGET, so runs never dirty the repo. Prints
each target's executions (libFuzzer's stat::number_of_executed_units) and crashes, and exits 1
when a target crashed, naming the input that did it (build-fuzz/fuzz-artifacts/TARGET/...).

  --merge       afterwards, minimize the corpus and what the run found into fuzz/corpus/TARGET
                (libFuzzer -merge=1 into an empty directory: only inputs that add coverage)
  --build-only  build, do not run

Targets: broker_messages config client_messages fbview_http release_records replay_readers
Environment: FUZZ_BUILD_DIR (default <repo>/build-fuzz), FUZZ_JOBS (build jobs, default nproc),
             FUZZ_ARGS (more libFuzzer flags, e.g. "-max_len=4096")

Example: run the broker's message handling for 30 s, then keep what it found:
  tools/fuzz.sh broker_messages 30
  tools/fuzz.sh --merge broker_messages 30
A crash is replayed (and debugged) with the same binary:
  build-fuzz/fuzz/fuzz_broker_messages build-fuzz/fuzz-artifacts/broker_messages/crash-...
USAGE
}

all_targets=(broker_messages config client_messages fbview_http release_records replay_readers)
merge=0
build_only=0
positional=()
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --merge) merge=1 ;;
    --build-only) build_only=1 ;;
    -*) echo "fuzz.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) positional+=("$arg") ;;
  esac
done
target=${positional[0]:-all}
seconds=${positional[1]:-60}
if [ ${#positional[@]} -gt 2 ]; then
  echo "fuzz.sh: too many arguments (see --help)" >&2
  exit 2
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz.sh: SECONDS must be a whole number of seconds, got '$seconds'" >&2
  exit 2
fi
if [ "$target" = all ]; then
  targets=("${all_targets[@]}")
else
  case " ${all_targets[*]} " in
    *" $target "*) targets=("$target") ;;
    *) echo "fuzz.sh: no target '$target'; targets: ${all_targets[*]} (or all)" >&2; exit 2 ;;
  esac
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$repo/build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}
for tool in clang clang++; do
  if ! command -v "$tool" >/dev/null; then
    echo "fuzz.sh: $tool is missing; tools/install-deps.sh installs it (clang, libclang-rt-14-dev)" >&2
    exit 1
  fi
done

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=$repo CCACHE_NOHASHDIR=1
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFB_FUZZ=ON "${launcher[@]}" \
    "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
    >"${TMPDIR:-/tmp}/fuzz-configure.$$.log" 2>&1 ||
    { cat "${TMPDIR:-/tmp}/fuzz-configure.$$.log" >&2; exit 1; }
  mv "${TMPDIR:-/tmp}/fuzz-configure.$$.log" "$build/configure.log"
fi
cmake --build "$build" -j"$jobs" --target $(printf 'fuzz_%s ' "${targets[@]}")
[ "$build_only" = 1 ] && exit 0

crashed=0
results=()
for t in "${targets[@]}"; do
  bin=$build/fuzz/fuzz_$t
  work=$build/fuzz-corpus/$t
  artifacts=$build/fuzz-artifacts/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  cp -n "$repo/fuzz/corpus/$t/"* "$work/" 2>/dev/null || true
  [ -d "$repo/fuzz/regressions/$t" ] && cp -n "$repo/fuzz/regressions/$t/"* "$work/" 2>/dev/null
  before=$(ls "$artifacts" | wc -l)
  echo "fuzz.sh: $t for ${seconds}s (log: $log)"
  status=0
  # shellcheck disable=SC2086
  (cd "$build" && "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 \
    -rss_limit_mb=4096 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$work") >"$log" 2>&1 ||
    status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  new=$(($(ls "$artifacts" | wc -l) - before))
  crasher=$(ls -t "$artifacts" | head -1)
  if [ "$status" -ne 0 ]; then
    crashed=1
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_[a-z_]+:)' "$log" | head -5 >&2 || true
    echo "fuzz.sh: $t CRASHED (exit $status): $artifacts/$crasher" >&2
    results+=("$t ${seconds} ${execs:-?} 1 $artifacts/$crasher")
  else
    results+=("$t ${seconds} ${execs:-?} $new -")
  fi
  if [ "$merge" = 1 ]; then
    merged=$(mktemp -d)
    "$bin" -merge=1 "$merged" "$repo/fuzz/corpus/$t" "$work" >"$build/fuzz-logs/$t.merge.log" 2>&1
    rm -rf "$repo/fuzz/corpus/$t"
    mkdir -p "$repo/fuzz/corpus/$t"
    cp "$merged"/* "$repo/fuzz/corpus/$t/"
    rm -rf "$merged"
    echo "fuzz.sh: fuzz/corpus/$t now holds $(ls "$repo/fuzz/corpus/$t" | wc -l) inputs," \
      "$(du -sk "$repo/fuzz/corpus/$t" | cut -f1) KiB"
  fi
done

printf '\n%-16s %8s %12s %8s  %s\n' target seconds executions crashes crasher
for r in "${results[@]}"; do
  # shellcheck disable=SC2086
  printf '%-16s %8s %12s %8s  %s\n' $r
done
exit "$crashed"
