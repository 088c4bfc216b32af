#!/usr/bin/env bash
# tests/check/exports.sh — what libcoop.so exports is a written decision.
#
# Lists the dynamic symbols libcoop.so defines (demangled) and compares them
# with tests/check/exports.txt: the public API, plus exactly the coop::detail
# functions that inline code in the installed headers calls. A symbol that is
# not in the list fails the check (a new export must be added there on
# purpose), and so does a listed one that disappeared (an ABI break). No
# poller, timer-heap or reactor_impl symbol may ever be exported.
#
#   tests/check/exports.sh [path/to/libcoop.so]   (default: the native build)
set -euo pipefail
cd "$(dirname "$0")/../.."

arch=$(uname -m | sed -e 's/arm64/aarch64/' -e 's/amd64/x86_64/')
lib="${1:-build/$arch/libcoop.so}"
[ -f "$lib" ] || { echo "exports: $lib not built" >&2; exit 1; }
NM="${NM:-nm}"

actual=$("$NM" -D --defined-only "$lib" | c++filt | sed -E 's/^[0-9a-f]+ [A-Za-z] //' | LC_ALL=C sort -u)
expected=$(grep -v -e '^#' -e '^$' tests/check/exports.txt | LC_ALL=C sort -u)

fail=0
if forbidden=$(grep -E 'poller|timer_heap|reactor_impl|fd_table' <<<"$actual"); then
  echo "FAIL exports: internal symbols exported:"; sed 's/^/  /' <<<"$forbidden"; fail=1
fi
extra=$(comm -13 <(echo "$expected") <(echo "$actual"))
missing=$(comm -23 <(echo "$expected") <(echo "$actual"))
if [ -n "$extra" ]; then
  echo "FAIL exports: not in tests/check/exports.txt:"; sed 's/^/  /' <<<"$extra"; fail=1
fi
if [ -n "$missing" ]; then
  echo "FAIL exports: listed in tests/check/exports.txt but not exported:"; sed 's/^/  /' <<<"$missing"; fail=1
fi
n=$(wc -l <<<"$actual")
[ "$fail" -eq 0 ] && echo "ok   $lib exports $n symbols, exactly tests/check/exports.txt"
exit "$fail"
