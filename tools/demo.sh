#!/usr/bin/env bash
# Runs the product for about fifteen seconds: a broker with its default simulated camera, a
# processor that publishes a binned stream, a subscriber that prints fps, delivered and dropped,
# a Python subscriber of the binned stream, then a clean stop.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$(nproc)" --target framebrokerd fbctl fbproc _framebroker

bin=build-release
runtime=$(mktemp -d /tmp/framebroker-demo.XXXXXX)
sock="$runtime/demo.sock"
broker_pid=
proc_pid=
cleanup() {
  if [ -n "$proc_pid" ] && kill -0 "$proc_pid" 2>/dev/null; then kill -TERM "$proc_pid" || true; fi
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid"
    wait "$broker_pid" || true
  fi
  rm -rf "$runtime"
}
trap cleanup EXIT

echo "== starting framebrokerd (runtime dir $runtime)"
"$bin/daemon/framebrokerd" --runtime-dir "$runtime" --instance demo --log-level warn &
broker_pid=$!
for _ in $(seq 100); do
  "$bin/tools/fbctl" status --socket "$sock" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== fbproc: sim0 binned 2x2, published as sim0.bin2"
"$bin/tools/fbproc/fbproc" --socket "$sock" --from sim0 --to sim0.bin2 --op bin=2 --quiet &
proc_pid=$!
for _ in $(seq 100); do
  "$bin/tools/fbctl" status --socket "$sock" --json 2>/dev/null | grep -q '"sim0.bin2"' && break
  sleep 0.1
done

echo "== fbctl status"
"$bin/tools/fbctl" status --socket "$sock"
echo
echo "== Python: five frames of sim0.bin2 as numpy arrays (no copy)"
PYTHONPATH="$bin/python" /usr/bin/python3 -m framebroker --socket "$sock" watch sim0.bin2 \
  --mode every --frames 5
echo
echo "== fbctl watch sim0 for 10 s"
"$bin/tools/fbctl" watch sim0 --socket "$sock" --duration 10
echo
echo "== fbctl status (published and dropped per stream)"
"$bin/tools/fbctl" status --socket "$sock"
echo
echo "== stopping fbproc (its stream ends) and the broker"
kill -TERM "$proc_pid"
wait "$proc_pid"
proc_pid=
kill -TERM "$broker_pid"
wait "$broker_pid"
echo "framebrokerd exited with status $?"
broker_pid=
