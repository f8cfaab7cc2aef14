#!/bin/bash
# Checks the systemd files shipped in SOURCE_DIR/systemd:
#  - `systemd-analyze verify` of framebrokerd.service and framebrokerd.socket, on copies whose
#    ExecStart names FRAMEBROKERD_BINARY (the built daemon) instead of /usr/bin/framebrokerd;
#    any diagnostic about these units fails the test, even the ones systemd only "ignores";
#  - sysusers.d/framebroker.conf and tmpfiles.d/framebroker.conf, applied with --root to an
#    empty tree: the user and group appear, /run/framebroker gets framebroker:framebroker 0750,
#    and the units' User=, Group= and SocketGroup= name that user and group.
# Usage: verify_units.sh SOURCE_DIR FRAMEBROKERD_BINARY
# Exit: 0 all good, 1 a file has an error, 2 usage, 77 (ctest SKIP) the tools cannot run here.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 SOURCE_DIR FRAMEBROKERD_BINARY" >&2
  exit 2
fi
src=$(realpath -- "$1")/systemd
bin=$(realpath -- "$2")
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[[ -x $bin ]] || fail "$bin is not an executable"
for f in framebrokerd.service framebrokerd.socket sysusers.d/framebroker.conf \
  tmpfiles.d/framebroker.conf; do
  [[ -f $src/$f ]] || fail "$src/$f is missing"
done
for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# ---- systemd-analyze verify -----------------------------------------------------------------
# First a trivial unit: if even that does not verify cleanly, systemd-analyze cannot run here.
mkdir "$tmp/probe" "$tmp/units"
printf '[Service]\nType=oneshot\nExecStart=/bin/true\n' >"$tmp/probe/fbprobe.service"
if ! out=$(systemd-analyze verify --man=no "$tmp/probe/fbprobe.service" 2>&1) || [[ -n $out ]]; then
  skip "systemd-analyze verify does not work here: ${out:-no message}"
fi

cp "$src/framebrokerd.service" "$src/framebrokerd.socket" "$tmp/units/"
grep -q '^ExecStart=/usr/bin/framebrokerd ' "$tmp/units/framebrokerd.service" ||
  fail "framebrokerd.service: ExecStart= does not run /usr/bin/framebrokerd"
sed -i "s|^ExecStart=/usr/bin/framebrokerd |ExecStart=$bin |" "$tmp/units/framebrokerd.service"
if [[ ! -x /bin/kill ]]; then  # procps is not installed (minimal container): keep verify quiet
  echo "note: /bin/kill is missing here; ExecReload= is verified with /bin/true"
  sed -i 's|^ExecReload=/bin/kill |ExecReload=/bin/true |' "$tmp/units/framebrokerd.service"
fi

status=0
out=$(systemd-analyze verify --man=no "$tmp/units/framebrokerd.service" \
  "$tmp/units/framebrokerd.socket" 2>&1) || status=$?
# Unknown keys, unparsable values and bad dependencies are only warnings to systemd (exit 0);
# here any line about our units is an error. Lines about other installed units are shown only.
ours=$(grep -E 'framebrokerd\.(service|socket)' <<<"$out" || true)
[[ -n $out ]] && printf '%s\n' "$out"
[[ $status -eq 0 && -z $ours ]] || fail "systemd-analyze verify (exit $status) reports the errors above"
echo "ok: systemd-analyze verify framebrokerd.service framebrokerd.socket"

# ---- sysusers.d and tmpfiles.d --------------------------------------------------------------
# Probe with a trivial user and directory: as non-root these tools cannot chown, for example.
probe=$tmp/probe/root
mkdir -p "$probe/etc"
echo 'u fbprobe - "probe"' >"$tmp/probe/u.conf"
echo 'd /run/fbprobe 0750 fbprobe fbprobe -' >"$tmp/probe/d.conf"
if ! out=$(systemd-sysusers --root="$probe" "$tmp/probe/u.conf" 2>&1 &&
  systemd-tmpfiles --root="$probe" --create "$tmp/probe/d.conf" 2>&1) ||
  [[ ! -d $probe/run/fbprobe ]]; then
  skip "systemd-sysusers/systemd-tmpfiles --root do not work here: ${out:-no message}"
fi

root=$tmp/root
mkdir -p "$root/etc"
apply() {  # TOOL CONF ARGS...: fails on a non-zero exit or any diagnostic naming CONF
  local tool=$1 conf=$2 out rc=0
  shift 2
  out=$("$tool" --root="$root" "$@" "$conf" 2>&1) || rc=$?
  if [[ $rc -ne 0 ]] || grep -q "$(basename "$conf"):" <<<"$out"; then
    printf '%s\n' "$out" >&2
    fail "$tool $conf (exit $rc)"
  fi
}
apply systemd-sysusers "$src/sysusers.d/framebroker.conf"
apply systemd-tmpfiles "$src/tmpfiles.d/framebroker.conf" --create

IFS=: read -r _ _ uid gid _ home shell < <(grep '^framebroker:' "$root/etc/passwd") ||
  fail "sysusers.d: no user framebroker in $(cat "$root/etc/passwd")"
grep -q "^framebroker:x:$gid:" "$root/etc/group" ||
  fail "sysusers.d: no group framebroker with gid $gid"
[[ $uid -lt 1000 && $shell == */nologin ]] ||
  fail "sysusers.d: framebroker is not a system user without login (uid $uid, shell $shell)"
echo "ok: sysusers.d creates user framebroker ($uid:$gid, home $home, shell $shell) and its group"

for key in User Group SocketGroup; do
  val=$(sed -n "s/^$key=//p" "$src/framebrokerd.service" "$src/framebrokerd.socket")
  [[ $val == framebroker ]] || fail "$key=$val, not the framebroker user/group of sysusers.d"
done

rundir=$root/run/framebroker
[[ -d $rundir ]] || fail "tmpfiles.d did not create /run/framebroker"
got=$(stat -c '%a %u %g' "$rundir")
[[ $got == "750 $uid $gid" ]] || fail "/run/framebroker is '$got', expected '750 $uid $gid'"
echo "ok: tmpfiles.d creates /run/framebroker 0750 framebroker:framebroker"

# ---- systemd-analyze security ---------------------------------------------------------------
# The service's exposure (0 best .. 10 worst) must stay at or below 2.5: --threshold is in
# tenths. Offline, so systemd need not run here.
if out=$(systemd-analyze security --offline=true --threshold=25 --no-pager \
  "$tmp/units/framebrokerd.service" 2>&1); then
  echo "ok: $(grep -o 'Overall exposure level.*' <<<"$out")"
elif grep -q 'Overall exposure level' <<<"$out"; then
  printf '%s\n' "$out" >&2
  fail "framebrokerd.service's exposure is above 2.5 (see above)"
else
  skip "systemd-analyze security --offline does not work here: $out"
fi
