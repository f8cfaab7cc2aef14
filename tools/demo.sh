#!/usr/bin/env bash
# Runs the product for about ten seconds: a broker with its default simulated
# camera, a subscriber that prints fps, delivered and dropped, then a clean stop.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$(nproc)" --target framebrokerd fbctl

bin=build-release
runtime=$(mktemp -d /tmp/framebroker-demo.XXXXXX)
sock="$runtime/demo.sock"
broker_pid=
cleanup() {
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

echo "== fbctl status"
"$bin/tools/fbctl" status --socket "$sock"
echo
echo "== fbctl watch sim0 for 10 s"
"$bin/tools/fbctl" watch sim0 --socket "$sock" --duration 10
echo
echo "== fbctl status (published and dropped per stream)"
"$bin/tools/fbctl" status --socket "$sock"
echo
echo "== stopping the broker"
kill -TERM "$broker_pid"
wait "$broker_pid"
echo "framebrokerd exited with status $?"
broker_pid=
