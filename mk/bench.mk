# mk/bench.mk — the benchmark suite and the per-CPU study (included by the
# top Makefile).
#
#   make bench                 check/install the Debian packages (tools/deps.sh
#                              bench), build and run every bench/*_bench.cpp
#                              suite, write Google Benchmark JSON to
#                              build/<arch>/bench/, then print the plain-text
#                              summary (tools/bench_summary.py)
#   make bench BENCH_FILTER=re only benchmarks matching the regex (all suites)
#   make bench-build           build the suites only (ARCH=aarch64: cross-compile)
#   make bench-summary         re-print the summary of the last run
#   make bench-kv              coop-kv (1 and 2 reactors) against redis-server under redis-benchmark
#                              (bench/kv_bench.py; also part of `make bench`)
#   make study                 check/install packages (tools/deps.sh study),
#                              run build/<arch>/bin/coop-study on every CPU ->
#                              build/<arch>/study/*.json, merge that into
#                              results/<cpu>.json (tools/study_results.py),
#                              then redraw results/*.png and study-table.md
#   make study-plot            redraw from every results/*.json
#   make echo-compare          echo ping-pong against an external client, server
#                              and client pinned to two CPUs: coop-echo on io_uring
#                              and on epoll, libuv, raw epoll (tools/echo_external.py)
#   make echo-syscalls         system calls per echoed message, counted with
#                              strace -c over a fixed run (the same script)
#
# Knobs: BENCH_REPS (repetitions, medians are reported; default 7; the
# redis-benchmark runs of bench-kv take KV_BENCH_REPS, default 5, and
# KV_BENCH_REQUESTS per test at -P 1, default 40000),
# BENCH_MIN_TIME (seconds per repetition; default 0.1), BENCH_ARGS (extra
# Google Benchmark flags), BENCH_INTERLEAVE (true|false), STUDY_ARGS (extra
# coop-study flags), SKIP_DEPS=1 (skip tools/deps.sh).
#
# Peers are optional. Each is detected twice: its header at compile time
# (__has_include in the source) and its library here, with the target
# compiler's own search path, so a cross build or a machine without the
# package still builds and the benchmark reports how to install the peer.
# The detection runs in the make that builds (bench-run, bench-build), which
# `make bench` starts after tools/deps.sh, so packages it has just installed
# are found.

.PHONY: bench bench-run bench-build bench-summary bench-kv study study-run study-build study-plot deps-bench deps-study \
  echo-load echo-compare echo-syscalls

BENCH_OUT := $(BUILD)/bench
BENCH_SRCS := $(wildcard bench/*_bench.cpp)
BENCH_NAMES := $(patsubst bench/%.cpp,%,$(BENCH_SRCS))
BENCH_BINS := $(addprefix $(BIN)/bench/,$(BENCH_NAMES))
BENCH_OBJS := $(patsubst bench/%.cpp,$(OBJ)/bench/%.o,$(BENCH_SRCS))
# The floor kernels (bench/floor_<arch>.S), linked into every suite and coop-study.
BENCH_FLOOR_OBJ := $(OBJ)/bench/floor_$(ARCH).o

BENCH_FILTER ?=
# The filter as the user typed it: $(value) keeps a `$` (end of line in a
# regex) from being expanded by make, and ' is escaped for the shell's
# single quotes.
BENCH_FILTER_SH := $(subst ','\'',$(value BENCH_FILTER))
BENCH_REPS ?= 7
BENCH_MIN_TIME ?= 0.1
BENCH_ARGS ?=
# Repetitions of different benchmarks are interleaved in random order, so a
# slow phase of a noisy machine spreads over all of them instead of skewing one.
BENCH_INTERLEAVE ?= true
PYTHON ?= python3

# $(call bench_has_lib,name): "yes" when the target linker finds libname.
bench_has_lib = $(shell f=$$($(CXX) -print-file-name=lib$(1).so 2>/dev/null); \
  g=$$($(CXX) -print-file-name=lib$(1).a 2>/dev/null); \
  if echo "$$f$$g" | grep -q /; then echo yes; fi)
# $(call bench_has_header,header): "yes" when the target compiler finds it.
bench_has_header = $(shell echo '\#include <$(1)>' | $(CXX) -std=c++20 -E -x c++ - >/dev/null 2>&1 && echo yes)

ifneq ($(filter bench-run bench-build echo-load echo-compare echo-syscalls,$(MAKECMDGOALS)),)
BENCH_HAVE_GBENCH := $(and $(call bench_has_header,benchmark/benchmark.h),$(call bench_has_lib,benchmark))
BENCH_HAVE_BOOST := $(call bench_has_lib,boost_context)
BENCH_HAVE_UV := $(call bench_has_lib,uv)
endif

BENCH_CPPFLAGS := -Ibench
BENCH_LIBS :=
ifeq ($(BENCH_HAVE_BOOST),yes)
  BENCH_CPPFLAGS += -DCOOP_BENCH_HAVE_BOOST_CONTEXT=1
  BENCH_LIBS += -lboost_context
endif
ifeq ($(BENCH_HAVE_UV),yes)
  BENCH_CPPFLAGS += -DCOOP_BENCH_HAVE_LIBUV=1
  BENCH_LIBS += -luv
endif
# Without Google Benchmark for this target (e.g. a cross build: Debian ships
# it for the host only) the suites are still compiled, against the host's
# architecture-independent headers, so the code is checked; nothing links.
BENCH_FALLBACK_INC := $(BUILD)/bench-include
ifneq ($(BENCH_HAVE_GBENCH),yes)
  BENCH_CPPFLAGS += -idirafter $(BENCH_FALLBACK_INC)
endif
BENCH_FLAGS_STR := $(strip $(CXX) $(CXXFLAGS))

# Rebuild the suites when the detected peers or flags change.
BENCH_STAMP := $(OBJ)/bench/flags.stamp
BENCH_STAMP_TEXT := $(CXX) $(CPPFLAGS) $(BENCH_CPPFLAGS) $(CXXFLAGS) $(BENCH_LIBS)
.PHONY: bench-force
$(BENCH_STAMP): bench-force
	@mkdir -p $(dir $@)
	@echo '$(BENCH_STAMP_TEXT)' | cmp -s - $@ || echo '$(BENCH_STAMP_TEXT)' > $@

$(OBJ)/bench/%.o: bench/%.cpp $(BENCH_STAMP)
	@mkdir -p $(dir $@)
	@if [ "$(BENCH_HAVE_GBENCH)" != yes ] && [ ! -e $(BENCH_FALLBACK_INC)/benchmark ] && \
	    [ -d /usr/include/benchmark ]; then \
	  mkdir -p $(BENCH_FALLBACK_INC) && ln -sfn /usr/include/benchmark $(BENCH_FALLBACK_INC)/benchmark; fi
	$(CXX) $(CPPFLAGS) $(BENCH_CPPFLAGS) -DCOOP_BENCH_FLAGS='"$(BENCH_FLAGS_STR)"' $(CXXFLAGS) -MMD -MP -c $< -o $@

$(BENCH_FLOOR_OBJ): bench/floor_$(ARCH).S
	@mkdir -p $(dir $@)
	$(CC) $(ASFLAGS) -c $< -o $@

$(BIN)/bench/%: $(OBJ)/bench/%.o $(BENCH_FLOOR_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(BENCH_FLOOR_OBJ) $(LIB_A) -lbenchmark $(BENCH_LIBS) $(LDLIBS)

ifeq ($(BENCH_HAVE_GBENCH),yes)
bench-build: lib $(BENCH_OBJS) $(BENCH_BINS)
	@echo "bench: peers: boost_context=$(or $(BENCH_HAVE_BOOST),no) libuv=$(or $(BENCH_HAVE_UV),no)"
else ifneq ($(wildcard /usr/include/benchmark/benchmark.h),)
bench-build: lib $(BENCH_OBJS)
	@echo "bench: Google Benchmark is not available for $(ARCH) ($(CXX)); the suites were compiled, not linked."
	@echo "bench: on the host: apt-get install libbenchmark-dev"
else
bench-build: lib
	@echo "bench: Google Benchmark not found: apt-get install libbenchmark-dev"
endif

# Debian packages first: tools/deps.sh installs what is missing when run as
# root, else prints the apt-get line and stops. Then a new make builds and
# runs, so its peer detection sees what was just installed.
deps-bench:
	@[ -n "$(SKIP_DEPS)" ] || tools/deps.sh bench $(if $(CROSS),cross)
deps-study:
	@[ -n "$(SKIP_DEPS)" ] || tools/deps.sh study $(if $(CROSS),cross)

bench: deps-bench
	@$(MAKE) --no-print-directory SKIP_DEPS=1 bench-run

# Each suite writes its own JSON; a stale file from an earlier run is removed
# first so the summary never mixes runs. A suite with no benchmark matching
# BENCH_FILTER is not started (it would leave an empty JSON file); a filter
# that matches nothing anywhere (or is not a valid regex) is an error. The
# summary reads whatever this run produced.
bench-run: bench-build
ifneq ($(BENCH_HAVE_GBENCH),yes)
	@echo "bench: nothing to run without Google Benchmark for $(ARCH)."
else
	@mkdir -p $(BENCH_OUT)
	@rm -f $(BENCH_OUT)/*.json $(BENCH_OUT)/summary.txt
	@set -e; filter='$(or $(BENCH_FILTER_SH),.)'; ran=0; \
	for b in $(BENCH_NAMES); do \
	  if [ -z "$$($(RUN) $(BIN)/bench/$$b --benchmark_list_tests=true --benchmark_filter="$$filter" 2>/dev/null)" ]; then \
	    echo "==== $$b: no benchmark matches BENCH_FILTER, not run"; continue; \
	  fi; \
	  echo "==== $$b"; ran=$$((ran + 1)); \
	  $(RUN) $(BIN)/bench/$$b --benchmark_filter="$$filter" \
	    --benchmark_repetitions=$(BENCH_REPS) --benchmark_display_aggregates_only=true \
	    --benchmark_min_time=$(BENCH_MIN_TIME) --benchmark_enable_random_interleaving=$(BENCH_INTERLEAVE) \
	    --benchmark_out=$(BENCH_OUT)/$$b.json --benchmark_out_format=json $(BENCH_ARGS); \
	done; \
	if [ $$ran -eq 0 ]; then \
	  echo "bench: BENCH_FILTER='$$filter' matches no benchmark in any suite (or is not a valid regex)" >&2; \
	  exit 1; \
	fi
	@$(MAKE) --no-print-directory SKIP_DEPS=1 bench-kv
	@$(PYTHON) tools/bench_summary.py $(BENCH_OUT) | tee $(BENCH_OUT)/summary.txt
endif

# coop-kv and redis-server under the same redis-benchmark client. Peers that
# are missing are skipped with the package to install. Under an emulator
# (a cross ARCH) it would time the emulator: not run.
KV_BENCH_REPS ?= 5
KV_BENCH_REQUESTS ?= 40000
bench-kv: $(BIN)/coop-kv
ifeq ($(RUN),)
	@rm -rf $(BENCH_OUT)/kv
	@echo "==== kv_bench"
	@$(PYTHON) bench/kv_bench.py --coop-kv $(BIN)/coop-kv --out $(BENCH_OUT)/kv --reps $(KV_BENCH_REPS) \
	  --requests $(KV_BENCH_REQUESTS) --filter '$(BENCH_FILTER)'
else
	@echo "kv_bench: $(BIN)/coop-kv is built; run the comparison on a real $(ARCH) machine."
endif

# ---------------------------------------------------------------- study
STUDY_BIN := $(BIN)/coop-study
STUDY_OUT := $(BUILD)/study
STUDY_ARGS ?=

$(OBJ)/tools/coop_study.o: tools/coop_study.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) -DCOOP_STUDY_FLAGS='"$(BENCH_FLAGS_STR)"' $(CXXFLAGS) -MMD -MP -c $< -o $@

$(STUDY_BIN): $(OBJ)/tools/coop_study.o $(BENCH_FLOOR_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(BENCH_FLOOR_OBJ) $(LIB_A) $(LDLIBS)

study-build: $(STUDY_BIN)
bench-build: $(STUDY_BIN)

study: deps-study
	@$(MAKE) --no-print-directory SKIP_DEPS=1 study-run

# The study measures the CPU it runs on: under an emulator (a cross ARCH)
# the numbers would describe the emulator, so it is only built then. A run
# writes one file per CPU model to $(STUDY_OUT) (emptied first); merging it
# into results/ replaces that model's figures and keeps where the replaced
# ones came from (tools/study_results.py).
study-run: $(STUDY_BIN)
ifeq ($(RUN),)
	@rm -rf $(STUDY_OUT)
	$(STUDY_BIN) --out $(STUDY_OUT) $(STUDY_ARGS)
	$(PYTHON) tools/study_results.py merge $(STUDY_OUT) results
	@$(MAKE) --no-print-directory study-plot
else
	@echo "study: $(STUDY_BIN) is built; run it on a real $(ARCH) machine (under qemu it would time the emulator)."
endif

study-plot:
	$(PYTHON) tools/plot_study.py results

# ---------------------------------------------------------------- echo, external client
# coop-echo-load: the benchmark's client, and its libuv and raw epoll
# servers, as processes of their own (tools/echo_load.cpp).
ECHO_LOAD_BIN := $(BIN)/coop-echo-load
ECHO_ARGS ?=

$(OBJ)/tools/echo_load.o: tools/echo_load.cpp $(BENCH_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(BENCH_CPPFLAGS) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(ECHO_LOAD_BIN): $(OBJ)/tools/echo_load.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(LIB_A) $(BENCH_LIBS) $(LDLIBS)

echo-load: $(ECHO_LOAD_BIN) $(BIN)/coop-echo
bench-build: $(ECHO_LOAD_BIN)

echo-compare: deps-bench
	@$(MAKE) --no-print-directory SKIP_DEPS=1 echo-load
	$(PYTHON) tools/echo_external.py --bin $(BIN) $(ECHO_ARGS)

echo-syscalls: deps-bench
	@$(MAKE) --no-print-directory SKIP_DEPS=1 echo-load
	$(PYTHON) tools/echo_external.py --bin $(BIN) --syscalls $(ECHO_ARGS)
