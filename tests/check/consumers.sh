#!/usr/bin/env bash
# tests/check/consumers.sh — coop as a user gets it.
#
#   1. The context layer from C alone: a C program that includes only
#      coop/context.h links against build/<arch>/libcoop.a with gcc (no C++
#      runtime) and runs.
#   2. make install into a temporary prefix, then, with pkg-config only:
#      a C consumer (context.h) and a C++ consumer (coroutines, reactor,
#      channel, io) built, linked and run, each against the shared library
#      and statically (pkg-config --static, -static).
set -euo pipefail
cd "$(dirname "$0")/../.."

MAKE="${MAKE:-make}"
arch=$(uname -m | sed -e 's/arm64/aarch64/' -e 's/amd64/x86_64/')
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
src=tests/check/consumers
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
step() { echo "---- $*"; }
check() {   # check NAME CMD...: run, report
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then echo "ok   $name"; else echo "FAIL $name"; sed 's/^/  /' "$work/out"; fail=1; fi
}

$MAKE --no-print-directory SKIP_DEPS=1 lib >/dev/null

step "context layer from C, gcc alone, static libcoop.a"
check "link: $CC context_only.c libcoop.a" \
  "$CC" -std=c11 -Wall -Wextra -Iinclude "$src/context_only.c" "build/$arch/libcoop.a" -o "$work/ctx_static"
check "run" "$work/ctx_static"

step "make install PREFIX=<tmp>, then pkg-config"
prefix="$work/prefix"
check "install" $MAKE --no-print-directory SKIP_DEPS=1 install PREFIX="$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
if pkg-config --cflags coop | grep -q -- '-std='; then
  echo "FAIL coop.pc: Cflags carries a -std flag"; fail=1
else
  echo "ok   coop.pc: no -std in Cflags"
fi
cflags=$(pkg-config --cflags coop)
libs=$(pkg-config --libs coop)
slibs=$(pkg-config --static --libs coop)

# shellcheck disable=SC2086
check "C consumer, shared: $CC \$(pkg-config --cflags --libs coop)" \
  "$CC" -std=c11 $cflags "$src/context_only.c" $libs -o "$work/c_shared"
check "run (LD_LIBRARY_PATH=<prefix>/lib)" env LD_LIBRARY_PATH="$prefix/lib" "$work/c_shared"
# shellcheck disable=SC2086
check "C consumer, static: $CC -static \$(pkg-config --static ...)" \
  "$CC" -std=c11 -static $cflags "$src/context_only.c" $slibs -o "$work/c_static"
check "run" "$work/c_static"
# shellcheck disable=SC2086
check "C++ consumer, shared: $CXX -std=c++20 \$(pkg-config --cflags --libs coop)" \
  "$CXX" -std=c++20 -Wall -Wextra $cflags "$src/reactor_user.cpp" $libs -o "$work/cxx_shared"
check "run (LD_LIBRARY_PATH=<prefix>/lib)" env LD_LIBRARY_PATH="$prefix/lib" "$work/cxx_shared"
if LD_LIBRARY_PATH="$prefix/lib" ldd "$work/cxx_shared" 2>/dev/null | grep -q "libcoop.so.0 => $prefix/lib"; then
  echo "ok   the shared consumer uses $prefix/lib/libcoop.so.0"
else
  echo "FAIL the shared consumer does not load the installed libcoop.so.0"; fail=1
fi
# shellcheck disable=SC2086
check "C++ consumer, static: $CXX -static \$(pkg-config --static ...)" \
  "$CXX" -std=c++20 -static $cflags "$src/reactor_user.cpp" $slibs -o "$work/cxx_static"
check "run" "$work/cxx_static"
exit "$fail"
