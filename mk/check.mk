# mk/check.mk — `make check`: the whole test suite under every tool that
# catches what a plain run cannot (included by the top Makefile).
#
#   make check            every step below, one summary at the end
#                         (logs in build/check/logs/<step>.log)
#   make check-<step>     one step, output on the terminal
#   make check CHECK_STEPS="asan tsan"   a subset
#   make check CHECK_STEP_TIMEOUT=600    seconds a step may take (default 1200)
#
# Steps:
#   native     the suite, plain g++ -O2 build (build/<arch>)
#   asan       g++, -fsanitize=address,undefined, fake stacks on (build/<arch>-asan)
#   tsan       g++, -fsanitize=thread (build/<arch>-tsan)
#   clang      clang++ 14, ASan+UBSan (build/<arch>-asan-clang): the second
#              compiler's warnings and sanitizer runtime
#   valgrind   the native binary under Valgrind memcheck: no error, nothing
#              "definitely lost"
#   aarch64    `make test-aarch64`: BTI/PAC build and br-x30 build under qemu
#   macho      every arch/*/*.S assembled for arm64- and x86_64-apple-macos11
#   hardening  CET/BTI/PAC property notes and landing pads per build variant,
#              sanitizer hooks compiled out of plain builds
#              (tests/check/hardening.py; runs last to see every build)
#   bti        BTI really enforced under qemu-aarch64 for a -z force-bti
#              program (tests/check/bti.sh)
#   assert     the suite with COOP_ASSERT invariant checks on (build/<arch>-assert)
#   exports    libcoop.so exports exactly tests/check/exports.txt
#   consumers  a C program links the context layer with gcc alone; make install
#              + pkg-config: C and C++ consumers, shared and static
#              (tests/check/consumers.sh)

CHECK_STEPS ?= macho native assert exports consumers asan tsan clang valgrind aarch64 bti hardening
CHECK_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CHECK_LOGS := build/check/logs

# The helper programs keep frame pointers, so perf --call-graph fp (and any
# frame-pointer walker) can follow them down to the coroutine's entry.
$(OBJ)/tests/progs/%.o: CXXFLAGS += -fno-omit-frame-pointer

# Sanitizer runtime options for the check runs. Fake stacks (use-after-return
# detection) are switched on so the fiber hooks' fake-stack handover is
# exercised at every switch.
CHECK_ASAN_OPTIONS ?= detect_stack_use_after_return=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1
CHECK_UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
CHECK_TSAN_OPTIONS ?= halt_on_error=1:second_deadlock_stack=1

# Valgrind: errors and "definitely lost" blocks fail the run (exit code 99).
# Death-test children are forked under Valgrind too; they die on purpose,
# so --child-silent-after-fork keeps their (expected) reports out.
# Valgrind runs one thread at a time; its default lock lets a thread that
# never blocks (a reactor whose task yields in a loop until another
# thread's post arrives, as the ReactorThreads race tests do) take it back
# again and again, starving the other thread: one such test took 54 ms in
# one run and 412 s in the next. --fair-sched=yes hands the lock over in
# FIFO order, which bounds that wait.
VALGRIND ?= valgrind
VALGRIND_FLAGS ?= --tool=memcheck --fair-sched=yes --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --child-silent-after-fork=yes --num-callers=30 --suppressions=tests/check/valgrind.supp
# A test filter for Valgrind runs (none today: every test runs there).
VALGRIND_GTEST_FILTER ?= *

CHECK_SUB := $(MAKE) --no-print-directory SKIP_DEPS=1 -j$(CHECK_JOBS)

.PHONY: check deps-check $(addprefix check-,$(CHECK_STEPS))

deps-check:
	@[ -n "$(SKIP_DEPS)" ] || tools/deps.sh check

check: deps-check
	@MAKE="$(MAKE)" CHECK_LOGS="$(CHECK_LOGS)" tests/check/run_checks.sh $(CHECK_STEPS)

check-native:
	$(CHECK_SUB) test-run

check-asan:
	ASAN_OPTIONS=$(CHECK_ASAN_OPTIONS) UBSAN_OPTIONS=$(CHECK_UBSAN_OPTIONS) \
	  $(CHECK_SUB) SAN=asan test-run

check-tsan:
	TSAN_OPTIONS=$(CHECK_TSAN_OPTIONS) $(CHECK_SUB) SAN=tsan test-run

check-clang:
	ASAN_OPTIONS=$(CHECK_ASAN_OPTIONS) UBSAN_OPTIONS=$(CHECK_UBSAN_OPTIONS) \
	  $(CHECK_SUB) CXX=clang++ CC=clang SAN=asan BUILD=build/$(ARCH)-asan-clang test-run

check-assert:
	$(CHECK_SUB) ASSERTIONS=1 test-run

check-exports:
	$(CHECK_SUB) lib
	tests/check/exports.sh $(LIB_SO)

check-consumers:
	MAKE="$(MAKE)" tests/check/consumers.sh

check-valgrind:
	$(CHECK_SUB) lib $(TEST_BIN) $(TEST_PROGS) $(EXAMPLE_BINS)
	$(VALGRIND) $(VALGRIND_FLAGS) $(TEST_BIN) --gtest_filter='$(VALGRIND_GTEST_FILTER)'
	$(call on_both_backends,$(VALGRIND) $(VALGRIND_FLAGS) $(TEST_BIN) --gtest_filter='$(REACTOR_TESTS):Kv*')

check-aarch64:
	$(MAKE) --no-print-directory SKIP_DEPS=1 -j$(CHECK_JOBS) test-aarch64

check-macho:
	tests/check/macho.sh

check-hardening:
	python3 tests/check/hardening.py

check-bti:
	tests/check/bti.sh
