# mk/bench.mk — the benchmark suite and the per-CPU study (included by the
# top Makefile).
#
#   make bench                 build and run every bench/*_bench.cpp suite, write
#                              Google Benchmark JSON to build/<arch>/bench/, then
#                              print the plain-text summary (tools/bench_summary.py)
#   make bench BENCH_FILTER=re only benchmarks matching the regex (all suites)
#   make bench-build           build the suites only (ARCH=aarch64: cross-compile)
#   make bench-summary         re-print the summary of the last run
#   make bench-kv              coop-kv against redis-server under redis-benchmark
#                              (bench/kv_bench.py; also part of `make bench`)
#   make study                 build/<arch>/bin/coop-study: per-CPU switch costs
#                              -> results/<machine>-<cpu>.json, then results/*.png
#   make study-plot            re-render the PNGs from every results/*.json
#
# Knobs: BENCH_REPS (repetitions, medians are reported; default 7; the
# redis-benchmark runs of bench-kv take KV_BENCH_REPS, default 5, and
# KV_BENCH_REQUESTS per test at -P 1, default 50000),
# BENCH_MIN_TIME (seconds per repetition; default 0.1), BENCH_ARGS (extra
# Google Benchmark flags), BENCH_INTERLEAVE (true|false), STUDY_ARGS (extra coop-study flags).
#
# Peers are optional. Each is detected twice: its header at compile time
# (__has_include in the source) and its library here, with the target
# compiler's own search path, so a cross build or a machine without the
# package still builds and the benchmark reports how to install the peer.

.PHONY: bench bench-build bench-summary bench-kv study study-build study-plot

BENCH_OUT := $(BUILD)/bench
BENCH_SRCS := $(wildcard bench/*_bench.cpp)
BENCH_NAMES := $(patsubst bench/%.cpp,%,$(BENCH_SRCS))
BENCH_BINS := $(addprefix $(BIN)/bench/,$(BENCH_NAMES))
BENCH_OBJS := $(patsubst bench/%.cpp,$(OBJ)/bench/%.o,$(BENCH_SRCS))

BENCH_FILTER ?=
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

ifneq ($(filter bench bench-build bench-summary,$(MAKECMDGOALS)),)
BENCH_HAVE_GBENCH := $(and $(call bench_has_header,benchmark/benchmark.h),$(call bench_has_lib,benchmark))
BENCH_HAVE_BOOST := $(call bench_has_lib,boost_context)
BENCH_HAVE_UV := $(call bench_has_lib,uv)
endif

BENCH_CPPFLAGS := -Ibench
BENCH_LIBS :=
# The reactor benchmarks need the reactor's implementation, not just its
# header (the two may land at different times).
ifneq ($(wildcard src/reactor*.cpp),)
  BENCH_CPPFLAGS += -DCOOP_BENCH_HAVE_REACTOR=1
endif
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

$(BIN)/bench/%: $(OBJ)/bench/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(LIB_A) -lbenchmark $(BENCH_LIBS) $(LDLIBS)

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

# Each suite writes its own JSON; a stale file from an earlier run is removed
# first so the summary never mixes runs. The summary reads whatever this run
# produced (BENCH_FILTER may have narrowed it).
bench: bench-build
ifneq ($(BENCH_HAVE_GBENCH),yes)
	@echo "bench: nothing to run without Google Benchmark for $(ARCH)."
else
	@mkdir -p $(BENCH_OUT)
	@rm -f $(BENCH_OUT)/*.json $(BENCH_OUT)/summary.txt
	@set -e; for b in $(BENCH_NAMES); do \
	  echo "==== $$b"; \
	  $(RUN) $(BIN)/bench/$$b --benchmark_filter='$(or $(BENCH_FILTER),.)' \
	    --benchmark_repetitions=$(BENCH_REPS) --benchmark_display_aggregates_only=true \
	    --benchmark_min_time=$(BENCH_MIN_TIME) --benchmark_enable_random_interleaving=$(BENCH_INTERLEAVE) \
	    --benchmark_out=$(BENCH_OUT)/$$b.json --benchmark_out_format=json $(BENCH_ARGS); \
	done
	@$(MAKE) --no-print-directory SKIP_DEPS=1 bench-kv
	@$(PYTHON) tools/bench_summary.py $(BENCH_OUT) | tee $(BENCH_OUT)/summary.txt
endif

# coop-kv and redis-server under the same redis-benchmark client. Peers that
# are missing are skipped with the package to install. Under an emulator
# (a cross ARCH) it would time the emulator: not run.
KV_BENCH_REPS ?= 5
KV_BENCH_REQUESTS ?= 50000
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
STUDY_ARGS ?=

$(OBJ)/tools/coop_study.o: tools/coop_study.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) -DCOOP_STUDY_FLAGS='"$(BENCH_FLAGS_STR)"' $(CXXFLAGS) -MMD -MP -c $< -o $@

$(STUDY_BIN): $(OBJ)/tools/coop_study.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

study-build: $(STUDY_BIN)
bench-build: $(STUDY_BIN)

# The study measures the CPU it runs on: under an emulator (a cross ARCH)
# the numbers would describe the emulator, so it is only built then.
study: $(STUDY_BIN)
ifeq ($(RUN),)
	$(STUDY_BIN) --out results $(STUDY_ARGS)
	@$(MAKE) --no-print-directory study-plot
else
	@echo "study: $(STUDY_BIN) is built; run it on a real $(ARCH) machine (under qemu it would time the emulator)."
endif

study-plot:
	$(PYTHON) tools/plot_study.py results
