#!/usr/bin/env bash
# tests/check/bti.sh — is AArch64 BTI really enforced for coop, and PAC?
#
# qemu-aarch64 (-cpu max) guards a program's pages with BTI only when the
# program's ELF property note claims BTI. Debian's AArch64 start files
# (crt1.o, crti.o, crtbegin*.o) and libgcc.a have no note and no landing
# pads, so ordinary executables never claim BTI and run unguarded, even
# when every coop object is built with -mbranch-protection=standard. To
# prove enforcement we build a probe that claims BTI for real:
#   - coop and the probe built with -mbranch-protection=standard and
#     -mno-outline-atomics (libgcc's outline-atomics constructor has no pad),
#   - start files replaced by tests/check/bti_start.S (padded _start),
#   - linked with -z force-bti.
# Then, under qemu-aarch64 -cpu max:
#   1. the probe claims BTI (readelf -n);
#   2. `switch` (coroutines + the raw C ABI through function pointers) works;
#   3. `nopad` (indirect call to code without a pad) dies of SIGILL: the
#      guard is live, so (2) ran with every indirect branch checked;
#   4. control: the same probe linked the ordinary way claims nothing and
#      `nopad` runs — ordinary test binaries are not BTI-enforced;
#   5. PAC: `forge` (a suspended raw context whose saved continuation is
#      replaced by an unsigned address) dies in the standard build and runs
#      the forged code in the BRANCH_PROTECTION=none build.
set -uo pipefail
cd "$(dirname "$0")/../.."

MAKE="${MAKE:-make}"
CROSS=aarch64-linux-gnu-
QEMU=(qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu)
B=build/aarch64-bti-check
NB=build/aarch64-nobp
fail=0
say() { echo "$*"; }
bad() { echo "FAIL $*"; fail=1; }

$MAKE --no-print-directory SKIP_DEPS=1 ARCH=aarch64 BRANCH_PROTECTION=standard BUILD=$B \
  EXTRA_CXXFLAGS=-mno-outline-atomics lib $B/obj/tests/progs/bti_probe.o >/dev/null || { bad "build $B"; exit 1; }
$MAKE --no-print-directory SKIP_DEPS=1 ARCH=aarch64 BRANCH_PROTECTION=none \
  lib $NB/obj/tests/progs/bti_probe.o >/dev/null || { bad "build $NB"; exit 1; }

out=build/check/bti
mkdir -p $out
${CROSS}gcc -c tests/check/bti_start.S -o $out/bti_start.o || { bad "assemble bti_start.S"; exit 1; }
${CROSS}g++ -nostartfiles -o $out/bti_enforced $out/bti_start.o $B/obj/tests/progs/bti_probe.o \
  $B/libcoop.a -pthread -Wl,-z,force-bti -Wl,-z,now 2>$out/link.log || { cat $out/link.log; bad "link"; exit 1; }
if grep -v 'BTI turned on by -z force-bti' $out/link.log | grep -q .; then
  cat $out/link.log
fi
${CROSS}g++ -o $out/bti_plain $B/obj/tests/progs/bti_probe.o $B/libcoop.a -pthread
${CROSS}g++ -o $out/nobp_probe $NB/obj/tests/progs/bti_probe.o $NB/libcoop.a -pthread

run() {  # run NAME MODE: prints output, sets rc (128+signal when killed)
  local o
  o=$("${QEMU[@]}" "$out/$1" "$2" 2>&1)
  rc=$?
  echo "$o" | sed 's/^/    /'
}

# 1. the claim
props=$(readelf -n $out/bti_enforced | sed -n 's/.*AArch64 feature: //p')
case "$props" in
  *BTI*) say "ok   bti_enforced claims: $props" ;;
  *) bad "bti_enforced does not claim BTI (${props:-nothing})" ;;
esac
# 2. coop under enforcement
run bti_enforced switch
[ $rc -eq 0 ] && say "ok   coroutines and the raw C ABI run with BTI enforced" || bad "switch under BTI: exit $rc"
# 3. the guard is live
run bti_enforced nopad
[ $rc -eq 132 ] && say "ok   an indirect call without landing pad dies of SIGILL: BTI is enforced" \
  || bad "nopad under BTI: expected SIGILL (132), got $rc"
# 4. control
plain_props=$(readelf -n $out/bti_plain | sed -n 's/.*AArch64 feature: //p')
run bti_plain nopad
if [ $rc -eq 0 ] && [ -z "$plain_props" ]; then
  say "ok   control: the ordinarily linked probe claims nothing and is not guarded (nopad returns)"
else
  bad "control: ordinarily linked probe claims '${plain_props}', nopad exit $rc"
fi
# 5. PAC
run bti_plain forge
[ $rc -ge 129 ] && say "ok   PAC: a forged saved continuation is refused (signal $((rc - 128)))" \
  || bad "forge in the standard build: expected death by signal, got $rc"
run nobp_probe forge
[ $rc -eq 0 ] && say "ok   control: without PAC (BRANCH_PROTECTION=none) the forged continuation runs" \
  || bad "forge in the nobp build: expected exit 0, got $rc"

[ $fail -eq 0 ] && say "bti: enforcement proven" || say "bti: FAILED"
exit $fail
