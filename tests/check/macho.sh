#!/usr/bin/env bash
# tests/check/macho.sh — every arch/<arch>/*.S must assemble for macOS
# (Mach-O: underscore-prefixed symbols, no .type/.size/.note sections) with
# clang's integrated assembler. No macOS SDK is needed to assemble.
# Checks that each object is Mach-O and defines its symbols: switch.S the C
# ABI (global) and coop_trampoline (private extern), fiber.S the coroutine
# layer's coop_fiber_trampoline (private extern).
set -euo pipefail
cd "$(dirname "$0")/../.."

CLANG="${CLANG:-clang}"
# LLVM's tools read Mach-O; GNU binutils on Debian do not. Unversioned names
# come from Debian's `llvm` package, the -14 ones from `llvm-14`.
pick() {
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 && { command -v "$t"; return; }; done
  echo "FAIL: none of $* found (Debian: llvm-14)" >&2; exit 1
}
NM="${LLVM_NM:-$(pick llvm-nm llvm-nm-14 /usr/lib/llvm-14/bin/llvm-nm)}"
OBJDUMP="${LLVM_OBJDUMP:-$(pick llvm-objdump llvm-objdump-14 /usr/lib/llvm-14/bin/llvm-objdump)}"
command -v "$CLANG" >/dev/null || { echo "FAIL: $CLANG not found (Debian: clang)"; exit 1; }
out=build/check/macho
mkdir -p "$out"
fail=0
n=0

for src in arch/*/*.S; do
  arch=$(basename "$(dirname "$src")")
  case "$arch" in
    aarch64) targets=(arm64-apple-macos11) ;;
    x86_64)  targets=(x86_64-apple-macos11) ;;
    *) echo "FAIL $src: unknown arch directory $arch"; fail=1; continue ;;
  esac
  for t in "${targets[@]}"; do
    o="$out/$t-$(basename "$src" .S).o"
    n=$((n + 1))
    if ! "$CLANG" --target="$t" -Iinclude -c "$src" -o "$o"; then
      echo "FAIL $src: does not assemble for $t"; fail=1; continue
    fi
    fmt=$("$OBJDUMP" -h "$o" | sed -n 's/.*file format //p' | head -1)
    case "$fmt" in
      mach-o*) ;;
      *) echo "FAIL $o: not Mach-O ($fmt)"; fail=1; continue ;;
    esac
    syms=$("$NM" "$o")
    case "$(basename "$src")" in
      switch.S) globals=(_coop_jump _coop_jump_fp _coop_make); private=_coop_trampoline ;;
      fiber.S)  globals=(); private=_coop_fiber_trampoline ;;
      *) echo "FAIL $src: no expectations for this file in tests/check/macho.sh"; fail=1; continue ;;
    esac
    for s in "${globals[@]}"; do
      if ! grep -qE "^[0-9a-f]+ T $s\$" <<<"$syms"; then
        echo "FAIL $o: global symbol $s missing"; fail=1
      fi
    done
    if ! "$NM" -m "$o" | grep -qE "private external $private\$"; then
      echo "FAIL $o: $private missing or not private extern"; fail=1
    fi
    echo "ok   $src -> $t ($fmt)"
  done
done
[ "$n" -gt 0 ] || { echo "FAIL: no .S files found"; exit 1; }

# The coroutine switch is inline asm in coop/detail/fiber_switch.hpp: compile
# it for both macOS targets too (freestanding: no SDK, so a two-line <cstdint>
# stands in for the C++ library), and check it refers to the Mach-O name of
# the trampoline.
shim="$out/shim"
mkdir -p "$shim"
printf '%s\n' '#include <stdint.h>' \
  'namespace std { using ::uintptr_t; using ::uint64_t; using ::uint32_t; using ::uint16_t; }' >"$shim/cstdint"
cat >"$out/fiber_probe.cpp" <<'CPP'
#include <coop/detail/fiber_switch.hpp>
void* probe_switch(void* to, void** save, void* d) { return coop::detail::fiber_switch(to, save, d); }
void* probe_make(void* top) { return coop::detail::fiber_make(top); }
CPP
if [ -f include/coop/detail/fiber_switch.hpp ]; then
  for t in arm64-apple-macos11 x86_64-apple-macos11; do
    o="$out/$t-fiber_switch.o"
    if ! "$CLANG"++ --target="$t" -std=c++20 -O2 -ffreestanding -nostdinc++ -I"$shim" -Iinclude \
         -c "$out/fiber_probe.cpp" -o "$o"; then
      echo "FAIL fiber_switch.hpp: inline asm does not build for $t"; fail=1; continue
    fi
    if ! "$NM" "$o" | grep -qE " U _coop_fiber_trampoline\$"; then
      echo "FAIL $o: does not refer to _coop_fiber_trampoline"; fail=1; continue
    fi
    echo "ok   include/coop/detail/fiber_switch.hpp -> $t"
  done
fi
exit "$fail"
