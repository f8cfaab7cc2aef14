#!/bin/bash
# Installs a built framebroker tree into a temporary DESTDIR and uses it the way a user would:
#  1. `DESTDIR=$tmp/root cmake --install BUILD_DIR`; every file that must be installed is there
#     (programs, libframebroker .so chain with its SONAME and .a, headers incl. the generated
#     frame_meta_generated.h, CMake package, pkg-config file, systemd units, sysusers/tmpfiles,
#     /etc/framebroker/framebroker.toml, man pages) and no installed ELF keeps a RUNPATH into
#     the build tree;
#  2. builds tests/packaging/consumer with find_package(framebroker) against that copy only
#     (framebroker::client and framebroker::client_static), and the same main.cpp with
#     pkg-config (shared, and static via -l:libframebroker.a plus `pkg-config --static --libs`);
#  3. starts the INSTALLED framebrokerd with a small fast sim camera in a temporary runtime
#     dir, runs the four consumers (each must get 20 frames of the right size, seq increasing),
#     checks which libframebroker each resolves, and stops the broker with SIGTERM.
# Usage: install_consumer_test.sh BUILD_DIR SOURCE_DIR
# Exit: 0 all good, 1 a check failed, 2 usage.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2
  exit 2
fi
build=$(realpath -- "$1")
source=$(realpath -- "$2")
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
[[ -f $build/CMakeCache.txt ]] || fail "$build is not a configured build directory"
[[ -f $source/tests/packaging/consumer/main.cpp ]] || fail "$source has no tests/packaging/consumer"

cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -n1; }
prefix=$(cache CMAKE_INSTALL_PREFIX)
libdir=$(cache CMAKE_INSTALL_LIBDIR)
cxx=$(cache CMAKE_CXX_COMPILER)
[[ -n $prefix && -n $libdir && -n $cxx ]] || fail "CMAKE_INSTALL_PREFIX/LIBDIR/CXX_COMPILER not in the cache"
[[ $libdir == /* ]] || libdir=$prefix/$libdir
# GNUInstallDirs' rule for the absolute sysconfdir.
case $prefix in
  / | /usr) etc=/etc ;;
  /opt/*) etc=/etc$prefix ;;
  *) etc=$prefix/etc ;;
esac

tmp=$(mktemp -d /tmp/fb-pkgtest.XXXXXX)
broker_pid=
instance=
cleanup() {
  if [[ -n $broker_pid ]] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  # The broker keeps its instance lock file by design; this instance name is ours alone.
  [[ -n $instance ]] && rm -f -- "/dev/shm/fb.$instance.lock"
  rm -rf -- "$tmp"
}
trap cleanup EXIT
root=$tmp/root
R=$root$prefix    # the installed prefix inside DESTDIR
L=$root$libdir    # the installed libdir inside DESTDIR

# ---- 1. install ---------------------------------------------------------------------------
step "DESTDIR=$root cmake --install $build (prefix $prefix, libdir $libdir)"
DESTDIR=$root cmake --install "$build" >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log" >&2
  fail "cmake --install failed"
}

step "checking the installed files"
missing=0
need() {  # need TEST PATH: PATH (inside DESTDIR) must pass `test TEST`
  if test "-$1" "$2"; then echo "   ok  ${2#"$root"}"; else echo "   MISSING ${2#"$root"}" >&2; missing=1; fi
}
for p in framebrokerd fbctl fbsave fbview fbbench fbproc fbreplay; do need x "$R/bin/$p"; done
need f "$L/libframebroker.a"
need L "$L/libframebroker.so"
need L "$L/libframebroker.so.0"
need f "$L/libframebroker.so.0.1.0"
for h in client.hpp frame.hpp subscription.hpp options.hpp error.hpp status.hpp runtime.hpp \
  camera_control.hpp frame_meta_generated.h; do
  need f "$R/include/framebroker/$h"
done
for f in framebrokerConfig.cmake framebrokerConfigVersion.cmake framebrokerTargets.cmake; do
  need f "$L/cmake/framebroker/$f"
done
need f "$L/pkgconfig/framebroker.pc"
need f "$R/lib/systemd/system/framebrokerd.service"
need f "$R/lib/systemd/system/framebrokerd.socket"
need f "$R/lib/sysusers.d/framebroker.conf"
need f "$R/lib/tmpfiles.d/framebroker.conf"
need f "$root$etc/framebroker/framebroker.toml"
need f "$R/share/man/man8/framebrokerd.8"
need f "$R/share/man/man1/fbctl.1"
need f "$R/share/man/man1/fbsave.1"
need f "$R/share/man/man1/fbproc.1"
need f "$R/share/man/man1/fbview.1"
if pkg-config --exists libzmq; then  # fbbridge is built where libzmq is
  need x "$R/bin/fbbridge"
  need f "$R/share/man/man1/fbbridge.1"
fi
[[ $missing == 0 ]] || fail "files missing from the install (see above)"

[[ $(readlink "$L/libframebroker.so") == libframebroker.so.0 &&
  $(readlink "$L/libframebroker.so.0") == libframebroker.so.0.1.0 ]] ||
  fail "libframebroker.so symlink chain is not .so -> .so.0 -> .so.0.1.0"
soname=$(readelf -d "$L/libframebroker.so.0.1.0" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == libframebroker.so.0 ]] || fail "SONAME is '$soname', expected libframebroker.so.0"
echo "   ok  SONAME $soname"
for f in "$R"/bin/* "$L"/libframebroker.so.0.1.0; do
  if readelf -d "$f" | grep -E '\((RPATH|RUNPATH)\)' | grep -qF "$build"; then
    fail "${f#"$root"} keeps a RUNPATH into the build tree: $(readelf -d "$f" | grep -E 'R(UN)?PATH')"
  fi
done
echo "   ok  no installed binary has a RUNPATH into $build"
grep -q "/usr/bin/framebrokerd\|$prefix/bin/framebrokerd" "$R/lib/systemd/system/framebrokerd.service" ||
  fail "framebrokerd.service does not start $prefix/bin/framebrokerd"

# ---- 2. build consumers -------------------------------------------------------------------
# Only the DESTDIR copy may be found: no package registries, no inherited search paths, and
# framebroker_DIR is checked afterwards (a system-wide install in /usr would otherwise do).
unset framebroker_DIR CMAKE_PREFIX_PATH PKG_CONFIG_PATH PKG_CONFIG_LIBDIR LD_LIBRARY_PATH
step "configuring the CMake consumer with CMAKE_PREFIX_PATH=$R"
cmake -S "$source/tests/packaging/consumer" -B "$tmp/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$R" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
  >"$tmp/consumer-configure.log" 2>&1 || {
  cat "$tmp/consumer-configure.log" >&2
  fail "configuring the consumer failed"
}
grep 'framebroker .* from' "$tmp/consumer-configure.log" | sed 's/^/   /' || true
found_dir=$(sed -n 's/^framebroker_DIR:[A-Z]*=//p' "$tmp/consumer/CMakeCache.txt")
[[ $(realpath -- "$found_dir") == $(realpath -- "$L/cmake/framebroker") ]] ||
  fail "find_package(framebroker) used '$found_dir', not the DESTDIR copy $L/cmake/framebroker"
step "building the CMake consumer (framebroker::client, framebroker::client_static)"
nice cmake --build "$tmp/consumer" -j2 >"$tmp/consumer-build.log" 2>&1 || {
  cat "$tmp/consumer-build.log" >&2
  fail "building the consumer failed"
}

step "building the pkg-config consumers with PKG_CONFIG_PATH=$L/pkgconfig"
export PKG_CONFIG_PATH=$L/pkgconfig
pc_libdir=$(pkg-config --variable=libdir framebroker) || fail "pkg-config cannot read framebroker.pc"
pc_incdir=$(pkg-config --variable=includedir framebroker)
[[ $(realpath -- "$pc_libdir") == $(realpath -- "$L") ]] ||
  fail "framebroker.pc libdir is $pc_libdir, not the DESTDIR copy $L"
[[ $(realpath -- "$pc_incdir") == $(realpath -- "$R/include") ]] ||
  fail "framebroker.pc includedir is $pc_incdir, not $R/include"
echo "   framebroker.pc $(pkg-config --modversion framebroker): libdir $pc_libdir"
read -ra cflags <<<"$(pkg-config --cflags framebroker)"
read -ra libs <<<"$(pkg-config --libs framebroker)"
read -ra static_libs <<<"$(pkg-config --static --libs framebroker)"
# Static: the same flags, with the archive named explicitly so the .so next to it is not taken.
replaced=0
for i in "${!static_libs[@]}"; do
  if [[ ${static_libs[$i]} == -lframebroker ]]; then static_libs[i]=-l:libframebroker.a; replaced=1; fi
done
[[ $replaced == 1 ]] || fail "pkg-config --static --libs has no -lframebroker: ${static_libs[*]}"
pc_build() {  # pc_build OUT FLAGS...
  local out=$1; shift
  echo "   $cxx -std=c++20 -O2 main.cpp $* -o $out"
  nice "$cxx" -std=c++20 -O2 "$source/tests/packaging/consumer/main.cpp" "$@" -o "$tmp/$out" \
    >"$tmp/$out.log" 2>&1 || { cat "$tmp/$out.log" >&2; fail "building $out with pkg-config failed"; }
}
pc_build pc_shared "${cflags[@]}" "${libs[@]}"
# --as-needed: Requires.private (flatbuffers, for its headers) also brings -lflatbuffers.
pc_build pc_static "${cflags[@]}" -Wl,--as-needed "${static_libs[@]}"

# Which libframebroker each binary uses: the shared ones must resolve the DESTDIR copy.
step "checking what each consumer links"
export LD_LIBRARY_PATH=$L
for b in consumer/consumer_shared pc_shared; do
  readelf -d "$tmp/$b" | grep -q 'NEEDED.*\[libframebroker\.so\.0\]' ||
    fail "$b does not need libframebroker.so.0"
  resolved=$(ldd "$tmp/$b" | sed -n 's/^[[:space:]]*libframebroker\.so\.0 => \(.*\)$/\1/p' | sed 's/ (0x[0-9a-f]*)$//')
  [[ -n $resolved && $(realpath -- "$resolved") == $(realpath -- "$L/libframebroker.so.0.1.0") ]] ||
    fail "$b resolves libframebroker.so.0 to '${resolved:-nothing}', not $L"
  echo "   $b: libframebroker.so.0 => $resolved"
done
for b in consumer/consumer_static pc_static; do
  ! readelf -d "$tmp/$b" | grep -q 'NEEDED.*libframebroker' ||
    fail "$b is meant to be linked statically but needs a libframebroker.so"
  echo "   $b: libframebroker linked in statically ($(readelf -d "$tmp/$b" | grep -c NEEDED) NEEDED: $(readelf -d "$tmp/$b" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' '))"
done

# ---- 3. run against the installed broker --------------------------------------------------
instance=pkgtest-$$
stream=cam
mkdir -m 0700 "$tmp/run"
sock=$tmp/run/$instance.sock
step "starting the installed ${R#"$root"}/bin/framebrokerd --instance $instance (64x64 sim camera '$stream', 200 fps)"
"$R/bin/framebrokerd" --runtime-dir "$tmp/run" --instance "$instance" --no-default-camera \
  --camera "sim:name=$stream,Width=64,Height=64,FrameRate=200" --log-level warn \
  >"$tmp/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
  [[ -S $sock ]] && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$tmp/broker.log" >&2; fail "framebrokerd exited at start"; }
  sleep 0.1
done
[[ -S $sock ]] || { cat "$tmp/broker.log" >&2; fail "framebrokerd did not create $sock within 10 s"; }

for b in consumer/consumer_shared consumer/consumer_static pc_shared pc_static; do
  step "running $b $sock $stream 20 64x64"
  timeout 30 "$tmp/$b" "$sock" "$stream" 20 64x64 || fail "$b did not get its frames (exit $?)"
done

step "stopping framebrokerd with SIGTERM"
kill -TERM "$broker_pid"
rc=0
for _ in $(seq 100); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$broker_pid" 2>/dev/null && fail "framebrokerd still runs 10 s after SIGTERM"
wait "$broker_pid" || rc=$?
broker_pid=
[[ $rc == 0 ]] || { cat "$tmp/broker.log" >&2; fail "framebrokerd exited with $rc after SIGTERM"; }
[[ ! -e $sock ]] || fail "framebrokerd left its socket $sock behind"
leftover=$(find /dev/shm -maxdepth 1 -name "fb.$instance.*" ! -name "fb.$instance.lock")
[[ -z $leftover ]] || fail "framebrokerd left shared memory behind: $leftover"
echo "PASS: installed tree complete; CMake and pkg-config consumers (shared and static) got frames from the installed broker"
