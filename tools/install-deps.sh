#!/usr/bin/env bash
# Installs, with apt-get, everything framebroker needs to build and test.
# Idempotent: does nothing when every package is present, and runs
# `apt-get update` only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format
  libboost-dev
  libflatbuffers-dev flatbuffers-compiler
  libspdlog-dev libfmt-dev
  libcli11-dev
  libtomlplusplus-dev
  nlohmann-json3-dev
  libgtest-dev
  libtiff-dev
  libblosc-dev
  libncurses-dev
  libsystemd-dev
  # GenICam cameras; aravis-0.8.pc also needs libusb's headers
  libaravis-dev libusb-1.0-0-dev
  procps
  # systemd-analyze, systemd-socket-activate and systemd-sysusers for the service tests;
  # dpkg-dev's dpkg-shlibdeps for the .deb; passwd's useradd for the permission test;
  # lintian checks the .deb against Debian policy
  systemd dpkg-dev passwd lintian
  # fbview's page is tested in a real headless browser
  chromium
  # fbbench's third baseline (Eclipse iceoryx with its RouDi daemon) and its profiler
  iceoryx libiceoryx-posh-dev libiceoryx-hoofs-dev valgrind
  # used by the tests: fbctl top is driven through tmux; snapshots are read
  # back with a third-party TIFF reader
  tmux
  python3 python3-numpy python3-tifffile python3-zarr python3-numcodecs
  # the Python client (a pybind11 module) and its tests
  pybind11-dev python3-dev python3-pytest
  # tools/fuzz.sh: libFuzzer targets are built with clang (its runtime: libclang-rt-14-dev)
  clang libclang-rt-14-dev
  # fbsave's Zarr v3 zstd codec; its v3 datasets are read back in the tests by zarrita under node
  # (npm packages pinned in tests/package-lock.json, installed below)
  libzstd-dev nodejs
  # fbbridge (ZeroMQ with CURVE); its tests use network namespaces, veth pairs and tc (iproute2),
  # and fbbench bridge compares with iperf3
  libzmq3-dev cppzmq-dev iperf3 iproute2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

# Debian's nodejs comes without npm (a package of its own); NodeSource's nodejs brings it.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The tests' npm packages (zarrita), exactly as locked, into tests/node_modules (git-ignored);
# skipped when npm's own record of the installed tree is newer than the lockfile.
tests_dir="$(cd "$(dirname "$0")/../tests" && pwd)"
if [ "$tests_dir/node_modules/.package-lock.json" -nt "$tests_dir/package-lock.json" ]; then
  echo "install-deps: tests/node_modules is current"
else
  echo "install-deps: npm ci --prefix tests"
  npm ci --prefix "$tests_dir" --no-audit --no-fund
fi
