#!/usr/bin/env bash
# tools/deps.sh — make sure the Debian packages coop's targets need are there.
#
#   tools/deps.sh [SET...]   SET: base test bench study cross check all (default: all)
#
# Installs what is missing with apt-get when run as root (after apt-get
# update); otherwise prints the apt-get line to run and exits 1. Called by
# `make test`, `make bench`, `make study` and `make check` before they build,
# so each of them is a single command on a fresh Debian machine (`cross` is
# added for an ARCH=aarch64 bench or study: the cross compiler).
set -euo pipefail

sets=("$@")
[ "${#sets[@]}" -gt 0 ] || sets=(all)

base=(make g++ python3 pkg-config googletest libgtest-dev)
# redis-tools: redis-cli and redis-benchmark drive coop-kv in tests/kv_test.cpp;
# redis-server is the peer coop-kv's replies and speed are compared with.
test_pkgs=("${base[@]}" g++-aarch64-linux-gnu qemu-user redis-tools)
bench_pkgs=("${base[@]}" libbenchmark-dev libbenchmark-tools libboost-context-dev libuv1-dev gnuplot-nox redis-tools redis-server strace)
study_pkgs=(make g++ python3 gnuplot-nox)
cross_pkgs=(g++-aarch64-linux-gnu)
check_pkgs=("${test_pkgs[@]}" clang llvm-14 libclang-rt-14-dev valgrind gdb gdb-multiarch linux-perf binutils-aarch64-linux-gnu redis-server)

want=()
for what in "${sets[@]}"; do
  case "$what" in
    base)  want+=("${base[@]}") ;;
    test)  want+=("${test_pkgs[@]}") ;;
    bench) want+=("${bench_pkgs[@]}") ;;
    study) want+=("${study_pkgs[@]}") ;;
    cross) want+=("${cross_pkgs[@]}") ;;
    check) want+=("${check_pkgs[@]}") ;;
    all)   want+=("${test_pkgs[@]}" "${bench_pkgs[@]}" "${study_pkgs[@]}" "${check_pkgs[@]}") ;;
    *) echo "usage: $0 [base|test|bench|study|cross|check|all]..." >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  case " ${missing[*]:-} " in *" $p "*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "coop: missing Debian packages; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "coop: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
