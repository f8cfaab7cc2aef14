#!/bin/bash
# Builds the .deb with `cpack -G DEB` from BUILD_DIR's CPackConfig.cmake into a temporary
# directory and inspects it with dpkg-deb (it is never installed):
#  - control: Package framebroker, the project's version, this machine's architecture;
#    Depends has systemd and, for every shared library an ELF file in the package needs,
#    the Debian package that provides that library here (found independently with ldd and
#    dpkg -S, so a dependency shlibdeps missed fails the test);
#  - maintainer scripts: postinst (executable, valid sh) creates the user with
#    systemd-sysusers framebroker.conf, which the package ships; postrm; conffiles lists
#    /etc/framebroker/framebroker.toml and only files that are in the package; an ldconfig
#    trigger (or call) for libframebroker.so.0; a shlibs entry for it;
#  - contents: programs, libframebroker (.so chain, .a), headers, CMake package, pkg-config file
#    (whose relative prefix resolves inside the unpacked tree), systemd units (ExecStart names a
#    program in the package), sysusers/tmpfiles, config, man pages; everything under ./usr,
#    ./etc or ./lib, owned by root; ELF files carry no debug info (that is the -dbgsym .ddeb),
#    nor does libframebroker.a, which still links (its symbols are there); man pages and
#    the changelog are gzipped with -9n (best compression, no name or time stamp) and only so;
#    a copyright file;
#  - lintian: no E: line (warnings are printed, not failed on).
# Usage: deb_test.sh BUILD_DIR
# Exit: 0 all good, 1 a check failed, 2 usage, 77 (ctest SKIP) dpkg tools or lintian missing.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build=$(realpath -- "$1")
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
[[ -f $build/CPackConfig.cmake ]] || fail "$build has no CPackConfig.cmake (not configured?)"
for tool in cpack dpkg-deb dpkg-shlibdeps dpkg readelf ldd pkg-config nm gzip lintian; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

tmp=$(mktemp -d /tmp/fb-debtest.XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT

# cpack first builds the `preinstall` target (all of the project), then installs into $tmp.
step "cpack -G DEB --config $build/CPackConfig.cmake -B $tmp"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
nice cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp" >"$tmp/cpack.log" 2>&1 || {
  cat "$tmp/cpack.log" >&2
  find "$tmp/_CPack_Packages" -name '*.log' -exec tail -n 40 {} + >&2 2>/dev/null || true
  fail "cpack failed"
}
shopt -s nullglob
debs=("$tmp"/framebroker_*.deb)
shopt -u nullglob
[[ ${#debs[@]} == 1 ]] || fail "expected one framebroker_*.deb in $tmp, found ${#debs[@]}: $(ls "$tmp")"
deb=${debs[0]}
echo "   $(basename "$deb"): $(stat -c %s "$deb") bytes"

# ---- control ----------------------------------------------------------------------------
step "dpkg-deb --info"
dpkg-deb --info "$deb" | sed 's/^/   /'
field() { dpkg-deb --field "$deb" "$1"; }
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
[[ $(field Package) == framebroker ]] || fail "Package is '$(field Package)', expected framebroker"
[[ $(field Version) == "$version" ]] || fail "Version is '$(field Version)', expected $version"
[[ $(field Architecture) == $(dpkg --print-architecture) ]] ||
  fail "Architecture is '$(field Architecture)', expected $(dpkg --print-architecture)"
[[ -n $(field Maintainer) && -n $(field Description) ]] || fail "Maintainer or Description is empty"

# Depends as package names (alternatives split, versions and :arch dropped).
depends=$(field Depends)
mapfile -t dep_names < <(tr ',|' '\n' <<<"$depends" | sed 's/(.*)//; s/:.*//; s/[[:space:]]//g' | grep -v '^$')
has_dep() { printf '%s\n' "${dep_names[@]}" | grep -qxF "$1"; }
has_dep systemd || fail "Depends lacks systemd: $depends"
echo "   ok  Depends has systemd"

step "unpacking with dpkg-deb -x / -e to check the library dependencies and scripts"
x=$tmp/x
ctl=$tmp/control
dpkg-deb -x "$deb" "$x"
dpkg-deb -e "$deb" "$ctl"
mapfile -t elfs < <(find "$x" -type f -exec sh -c 'head -c4 "$1" | grep -q "^.ELF" && echo "$1"' _ {} \;)
[[ ${#elfs[@]} -ge 5 ]] || fail "expected at least 5 ELF files (4 programs and the .so), found ${#elfs[@]}"
# Each NEEDED library, resolved on this machine, must be provided by a package in Depends.
libpath_dirs=$(find "$x" -name 'libframebroker.so*' -printf '%h\n' | sort -u | paste -sd:)
declare -A owner_of=()
for f in "${elfs[@]}"; do
  [[ $f == *.a ]] && continue
  while read -r lib; do
    [[ $lib == libframebroker.so.* ]] && continue  # in this package
    [[ -n ${owner_of[$lib]:-} ]] && continue
    path=$(LD_LIBRARY_PATH=$libpath_dirs ldd "$f" | sed -n "s|^[[:space:]]*${lib//./\\.} => \(/[^ ]*\).*|\1|p" | head -n1)
    [[ -n $path ]] || fail "${f#"$x"} needs $lib, which does not resolve on this machine"
    owner=
    for p in "$path" "${path/#\/usr\/lib\//\/lib\/}" "${path/#\/lib\//\/usr\/lib\/}" "$(realpath -- "$path")"; do
      owner=$(dpkg -S "$p" 2>/dev/null | head -n1 | sed 's/:.*//') && [[ -n $owner ]] && break
    done
    [[ -n $owner ]] || fail "no installed package owns $path ($lib, needed by ${f#"$x"})"
    owner_of[$lib]=$owner
  done < <(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done
[[ ${#owner_of[@]} -gt 0 ]] || fail "found no NEEDED libraries at all"
# A Depends entry may name the owning package or a virtual package it Provides (shlibs files
# do that, e.g. libspdlog1.10 provides libspdlog1.10-fmt9).
satisfied_by() {  # satisfied_by PACKAGE: prints the Depends entry standing for PACKAGE
  local name
  for name in "$1" $(dpkg-query -W -f='${Provides}' "$1" 2>/dev/null | tr ',' '\n' | sed 's/(.*)//; s/:.*//'); do
    has_dep "$name" && { echo "$name"; return 0; }
  done
  return 1
}
missing=0
for lib in $(printf '%s\n' "${!owner_of[@]}" | sort); do
  if dep=$(satisfied_by "${owner_of[$lib]}"); then
    echo "   ok  $lib -> ${owner_of[$lib]}${dep:+ (Depends: $dep)}"
  else
    echo "   MISSING from Depends: ${owner_of[$lib]} (provides $lib)" >&2
    missing=1
  fi
done
[[ $missing == 0 ]] || fail "Depends lacks packages of needed libraries: $depends"

# ---- maintainer scripts and control files --------------------------------------------------
step "maintainer scripts and control files"
[[ -f $ctl/postinst ]] || fail "no postinst"
[[ -x $ctl/postinst ]] || fail "postinst is not executable"
sh -n "$ctl/postinst" || fail "postinst is not valid sh"
grep -Eq '^[[:space:]]*systemd-sysusers([[:space:]].*)?[[:space:]]framebroker\.conf' "$ctl/postinst" ||
  fail "postinst does not run systemd-sysusers framebroker.conf"
echo "   ok  postinst runs systemd-sysusers framebroker.conf"
[[ -f $ctl/postrm && -x $ctl/postrm ]] || fail "no executable postrm"
sh -n "$ctl/postrm" || fail "postrm is not valid sh"
[[ -f $ctl/conffiles ]] || fail "no conffiles"
grep -qxF /etc/framebroker/framebroker.toml "$ctl/conffiles" ||
  fail "conffiles does not list /etc/framebroker/framebroker.toml"
while read -r c; do
  [[ -z $c ]] && continue
  [[ -f $x$c ]] || fail "conffiles lists $c, which is not in the package"
done <"$ctl/conffiles"
echo "   ok  conffiles: $(paste -sd' ' "$ctl/conffiles")"
grep -Eqs '^[[:space:]]*activate(-noawait)?[[:space:]]+ldconfig' "$ctl/triggers" ||
  grep -qs ldconfig "$ctl/postinst" ||
  fail "neither a triggers file nor postinst runs ldconfig for libframebroker.so.0"
echo "   ok  ldconfig trigger"
grep -Eqs '^libframebroker 0 framebroker' "$ctl/shlibs" || fail "shlibs has no entry for libframebroker.so.0"
echo "   ok  shlibs: $(cat "$ctl/shlibs")"

# ---- contents -------------------------------------------------------------------------------
step "dpkg-deb --contents"
dpkg-deb --contents "$deb" >"$tmp/contents"
awk '{ $1=$1 } 1' "$tmp/contents" | sed 's/^/   /' | cut -c1-150
mapfile -t entries < <(awk '{ p = $6; for (i = 7; i <= NF && $i != "->"; i++) p = p " " $i; print p }' "$tmp/contents")
has() { printf '%s\n' "${entries[@]}" | grep -qxF "$1"; }
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
lib=./usr/lib/$arch
missing=0
need() {  # need PATH [ALTERNATIVE...]: one of them is in the package
  local p
  for p; do has "$p" && { echo "   ok  $p"; return; }; done
  echo "   MISSING $*" >&2
  missing=1
}
for p in framebrokerd fbctl fbsave fbview fbbench fbproc fbreplay; do need "./usr/bin/$p"; done
for u in framebrokerd.service framebrokerd.socket; do
  need "./lib/systemd/system/$u" "./usr/lib/systemd/system/$u"
done
need ./usr/lib/sysusers.d/framebroker.conf ./lib/sysusers.d/framebroker.conf
need ./usr/lib/tmpfiles.d/framebroker.conf ./lib/tmpfiles.d/framebroker.conf
need ./etc/framebroker/framebroker.toml
need ./usr/share/man/man8/framebrokerd.8.gz
need ./usr/share/man/man1/fbctl.1.gz
need ./usr/share/man/man1/fbsave.1.gz
need ./usr/share/man/man1/fbview.1.gz
need ./usr/share/man/man1/fbproc.1.gz
need ./usr/share/man/man1/fbreplay.1.gz
# fbbridge is built where libzmq is (install-deps.sh installs it).
if pkg-config --exists libzmq; then
  need ./usr/bin/fbbridge
  need ./usr/share/man/man1/fbbridge.1.gz
fi
need ./usr/share/man/man1/fbbench.1.gz
need ./usr/lib/python3/dist-packages/framebroker/__init__.py
need ./usr/lib/python3/dist-packages/framebroker/_framebroker.pyi
need ./usr/share/doc/framebroker/changelog.gz
need ./usr/share/doc/framebroker/copyright
need "$lib/libframebroker.so.0.1.0"
need "$lib/libframebroker.so.0"
need "$lib/libframebroker.so"
need "$lib/libframebroker.a"
for h in client.hpp frame.hpp subscription.hpp options.hpp error.hpp status.hpp runtime.hpp \
  camera_control.hpp frame_meta_generated.h; do
  need "./usr/include/framebroker/$h"
done
need "$lib/cmake/framebroker/framebrokerConfig.cmake"
need "$lib/cmake/framebroker/framebrokerConfigVersion.cmake"
need "$lib/cmake/framebroker/framebrokerTargets.cmake"
need "$lib/pkgconfig/framebroker.pc"
[[ $missing == 0 ]] || fail "files missing from the package (see above)"

bad=$(printf '%s\n' "${entries[@]}" | grep -Ev '^\./(usr|etc|lib)(/|$)|^\./$' || true)
[[ -z $bad ]] || fail "entries outside ./usr, ./etc, ./lib: $bad"
printf '%s\n' "${entries[@]}" | grep -q '^\./usr/local' && fail "the package installs into /usr/local"
bad=$(awk '$2 != "root/root"' "$tmp/contents")
[[ -z $bad ]] || fail "entries not owned by root/root: $bad"
echo "   ok  all under ./usr, ./etc, ./lib and owned by root/root"

svc=$(find "$x" -path '*/systemd/system/framebrokerd.service' | head -n1)
exe=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$svc" | head -n1)
[[ -n $exe && -x $x$exe ]] || fail "framebrokerd.service runs '$exe', which is not in the package"
echo "   ok  framebrokerd.service ExecStart=$exe is in the package"

pc_inc=$(PKG_CONFIG_PATH=$x/usr/lib/$arch/pkgconfig pkg-config --variable=includedir framebroker)
[[ $(realpath -m -- "$pc_inc") == "$x/usr/include" ]] ||
  fail "framebroker.pc in the package resolves includedir to $pc_inc"
echo "   ok  framebroker.pc resolves its prefix relative to itself"

for f in "${elfs[@]}"; do
  if readelf -S "$f" 2>/dev/null | grep -q '\.debug_info'; then
    fail "${f#"$x"} carries debug info (expected stripped, debug info in the -dbgsym .ddeb)"
  fi
done
echo "   ok  ELF files are stripped of debug info"

# readelf -S lists the sections of every member of an archive.
a=$x/usr/lib/$arch/libframebroker.a
readelf -S "$a" >"$tmp/a.sections" 2>&1 || fail "readelf cannot read ${a#"$x"}"
grep -q '\.text' "$tmp/a.sections" || fail "${a#"$x"} has no code sections"
! grep -q '\.debug_' "$tmp/a.sections" || fail "${a#"$x"} carries debug info (expected strip -g)"
nm -C "$a" >"$tmp/a.symbols" 2>/dev/null || fail "nm cannot read ${a#"$x"}"
grep -q ' T framebroker::Client::connect(' "$tmp/a.symbols" ||
  fail "${a#"$x"} lost its symbols (framebroker::Client::connect is not defined in it)"
echo "   ok  libframebroker.a has no debug info and still defines its symbols"

mod=$(find "$x/usr/lib/python3/dist-packages/framebroker" -name '_framebroker*.so' | head -n1)
[[ -n $mod ]] || fail "the Python module _framebroker*.so is not in the package"
PYTHONPATH=$x/usr/lib/python3/dist-packages /usr/bin/python3 -c \
  'import framebroker; assert framebroker.connect and framebroker.Frame.__doc__' ||
  fail "the packaged Python package does not import"
echo "   ok  the Python package imports from the package's dist-packages"

mapfile -t pages < <(find "$x/usr/share/man" -type f)
[[ ${#pages[@]} -ge 4 ]] || fail "expected at least 4 man pages, found ${#pages[@]}"
for m in "${pages[@]}" "$x/usr/share/doc/framebroker/changelog.gz"; do
  [[ $m == *.gz ]] || fail "${m#"$x"} is not gzipped"
  gzip -t "$m" || fail "${m#"$x"} is not valid gzip"
  # RFC 1952 header: FLG (byte 3) without FNAME (0x08), MTIME (bytes 4-7) zero, XFL (byte 8) 2
  # for the slowest, best compression.
  read -r flg m0 m1 m2 m3 xfl < <(od -An -tu1 -j3 -N6 "$m")
  (((flg & 8) == 0 && m0 + m1 + m2 + m3 == 0)) ||
    fail "${m#"$x"} keeps a file name or time stamp (expected gzip -n)"
  ((xfl == 2)) || fail "${m#"$x"} is not compressed with -9 (XFL=$xfl)"
done
echo "   ok  ${#pages[@]} man pages and the changelog gzipped with -9n"

# ---- lintian --------------------------------------------------------------------------------
step "lintian $(basename "$deb")"
# Exit status aside (it also fails on warnings with some --fail-on settings): E: lines decide.
lintian --tag-display-limit 0 "$deb" >"$tmp/lintian.out" 2>&1 || true
sed 's/^/   /' "$tmp/lintian.out"
grep -q '^E: ' "$tmp/lintian.out" && fail "lintian reports errors (E: lines above)"
echo "   ok  lintian: no errors ($(grep -c '^W: ' "$tmp/lintian.out" || true) warnings)"
echo "PASS: $(basename "$deb") has the expected control data, scripts, dependencies and files"
