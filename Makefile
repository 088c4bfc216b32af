# coop — GNU make build. Outputs go under build/<arch>[-<variant>]/.
#
#   make                     libcoop.a, libcoop.so, examples     (native arch)
#   make ARCH=aarch64        the same, cross-built with aarch64-linux-gnu-g++
#   make test                build and run the GoogleTest suite natively
#   make test-aarch64        cross-build and run the suite under qemu-aarch64
#   make bench               build and run the benchmark suite (mk/bench.mk)
#   make check               sanitizers, Valgrind, qemu, Mach-O (mk/check.mk)
#   make install PREFIX=...  headers, both libraries, coop.pc
#   make clean
#
# Knobs: SAN=asan|tsan (sanitizer build), ASSERTIONS=1 (COOP_ASSERT checks on,
# build/<arch>-assert), OPT=-O2, BRANCH_PROTECTION (AArch64: standard|none),
# POLLER=epoll|kqueue, CXX/CC/AR for a custom toolchain.

HOST_ARCH := $(shell uname -m | sed -e 's/arm64/aarch64/' -e 's/amd64/x86_64/')
ARCH ?= $(HOST_ARCH)
OS := $(shell uname -s)

ifeq ($(ARCH),$(HOST_ARCH))
  CROSS :=
else ifeq ($(ARCH),aarch64)
  CROSS := aarch64-linux-gnu-
else ifeq ($(ARCH),x86_64)
  CROSS := x86_64-linux-gnu-
endif

CXX := $(CROSS)g++
CC := $(CROSS)gcc
AR := $(CROSS)ar

# AArch64 builds default to BTI + PAC (-mbranch-protection=standard): the
# switch then ends in `ret` and the objects claim BTI/PAC. `none` builds the
# faster `br x30` variant without the claim. See arch/aarch64/switch.S.
BRANCH_PROTECTION ?= standard
ARCH_FLAGS :=
VARIANT :=
ifeq ($(ARCH),aarch64)
  ifneq ($(BRANCH_PROTECTION),none)
    ARCH_FLAGS += -mbranch-protection=$(BRANCH_PROTECTION)
  else
    VARIANT := -nobp
  endif
endif

SAN ?=
SAN_FLAGS :=
ifeq ($(SAN),asan)
  SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SAN),tsan)
  SAN_FLAGS := -fsanitize=thread
else ifneq ($(SAN),)
  $(error SAN must be asan or tsan)
endif

ifeq ($(OS),Linux)
  POLLER ?= epoll
else
  POLLER ?= kqueue
endif

ASSERTIONS ?=
ASSERT_FLAGS := $(if $(ASSERTIONS),-DCOOP_ASSERTIONS=1)

BUILD ?= build/$(ARCH)$(VARIANT)$(if $(SAN),-$(SAN))$(if $(ASSERTIONS),-assert)$(if $(filter-out epoll,$(POLLER)),$(if $(filter Linux,$(OS)),-$(POLLER)))
OBJ := $(BUILD)/obj
BIN := $(BUILD)/bin

OPT ?= -O2
WARN := -Wall -Wextra
CPPFLAGS += -Iinclude $(ASSERT_FLAGS) $(EXTRA_CPPFLAGS)
CXXFLAGS += -std=c++20 $(OPT) -g -fPIC $(WARN) $(ARCH_FLAGS) $(SAN_FLAGS) $(EXTRA_CXXFLAGS)
CFLAGS += -std=c11 $(OPT) -g -fPIC $(WARN) $(ARCH_FLAGS) $(SAN_FLAGS) $(EXTRA_CFLAGS)
ASFLAGS += -g -fPIC $(ARCH_FLAGS) $(SAN_FLAGS)
LDFLAGS += $(SAN_FLAGS) $(EXTRA_LDFLAGS)
LDLIBS += -pthread

# ---------------------------------------------------------------- library
ARCH_SRCS := $(wildcard arch/$(ARCH)/*.S)
# Linux builds (POLLER=epoll, the default there) carry io_uring and epoll
# and pick one at run time (src/poller.cpp); POLLER=kqueue builds carry kqueue.
ifeq ($(POLLER),kqueue)
  POLLER_SRCS := src/poller_kqueue.cpp
  CPPFLAGS += -DCOOP_POLLER_KQUEUE=1
else
  POLLER_SRCS := $(wildcard src/poller_$(POLLER).cpp) src/poller_uring.cpp
endif
LIB_SRCS := $(filter-out src/poller_%.cpp,$(wildcard src/*.cpp)) $(POLLER_SRCS)
LIB_C_SRCS := $(wildcard src/*.c)
LIB_OBJS := $(patsubst %.cpp,$(OBJ)/%.o,$(LIB_SRCS)) $(patsubst %.c,$(OBJ)/%.o,$(LIB_C_SRCS)) \
  $(patsubst %.S,$(OBJ)/%.o,$(ARCH_SRCS))
# The library exports only what is marked COOP_API (coop/export.h); the
# version script keeps the template instantiations of the C++ library that
# the objects carry (std::string and the like) out of libcoop.so's exports.
$(LIB_OBJS): CXXFLAGS += -fvisibility=hidden
$(LIB_OBJS): CFLAGS += -fvisibility=hidden
LIB_VERSION_SCRIPT := src/libcoop.map
LIB_A := $(BUILD)/libcoop.a
LIB_SO := $(BUILD)/libcoop.so
SONAME := libcoop.so.0

# ---------------------------------------------------------------- examples
# examples/<name>.cpp is the main of build/<arch>/bin/coop-<name>, except that
# a "_server" suffix is dropped (echo_server.cpp -> coop-echo, kv_server.cpp
# -> coop-kv: the names users type). A multi-file example keeps its other
# sources in examples/<short name>/ (coop-kv: examples/kv/*.cpp), included
# as "kv/...".
EXAMPLE_SRCS := $(wildcard examples/*.cpp)
example_name = $(patsubst %_server,%,$(basename $(notdir $(1))))
example_parts = $(patsubst %.cpp,$(OBJ)/%.o,$(wildcard examples/$(1)/*.cpp))
EXAMPLE_BINS := $(foreach s,$(EXAMPLE_SRCS),$(BIN)/coop-$(call example_name,$(s)))
$(OBJ)/examples/%.o: CPPFLAGS += -Iexamples

.PHONY: all lib examples test test-aarch64 install clean
.SECONDARY:
all: lib examples
lib: $(LIB_A) $(LIB_SO)
examples: $(EXAMPLE_BINS)

# Objects are rebuilt when the flags change (a new SAN, OPT, CXX, ...).
FLAGS_STAMP := $(OBJ)/flags.stamp
FLAGS_STAMP_TEXT := $(CXX) $(CC) $(CPPFLAGS) $(CXXFLAGS) $(CFLAGS) $(ASFLAGS) -fvisibility=hidden
.PHONY: flags-force
$(FLAGS_STAMP): flags-force
	@mkdir -p $(dir $@)
	@echo '$(FLAGS_STAMP_TEXT)' | cmp -s - $@ || echo '$(FLAGS_STAMP_TEXT)' > $@

$(OBJ)/%.o: %.cpp $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(OBJ)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(OBJ)/%.o: %.S $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ASFLAGS) -MMD -MP -c $< -o $@

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(LIB_SO): $(LIB_OBJS) $(LIB_VERSION_SCRIPT)
	@mkdir -p $(dir $@)
	$(CXX) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=$(LIB_VERSION_SCRIPT) $(LDFLAGS) \
	  -o $(BUILD)/$(SONAME) $(LIB_OBJS) $(LDLIBS)
	ln -sf $(SONAME) $@

# $(call link_with_lib,objects): every program links the static library.
link_with_lib = mkdir -p $(dir $@) && $(CXX) $(LDFLAGS) -o $@ $(1) $(LIB_A) $(LDLIBS)

define example_rule
$(BIN)/coop-$(call example_name,$(1)): $(patsubst %.cpp,$(OBJ)/%.o,$(1)) $(call example_parts,$(call example_name,$(1))) $(LIB_A)
	$$(call link_with_lib,$$(filter %.o,$$^))
endef
$(foreach s,$(EXAMPLE_SRCS),$(eval $(call example_rule,$(s))))

# ---------------------------------------------------------------- tests
# Every tests/*_test.cpp goes into one GoogleTest binary. GoogleTest itself is
# compiled from the sources Debian's googletest package ships, with the same
# compiler and flags, so native, cross and sanitizer builds all work alike.
GTEST_DIR ?= /usr/src/googletest/googletest
TEST_SRCS := $(wildcard tests/*_test.cpp)
TEST_OBJS := $(patsubst %.cpp,$(OBJ)/%.o,$(TEST_SRCS))
TEST_BIN := $(BIN)/coop-tests
GTEST_OBJS := $(OBJ)/gtest/gtest-all.o $(OBJ)/gtest/gtest_main.o
# The parts of multi-file examples have unit tests of their own (coop-kv's
# protocol parser and hash table: tests/kv_*_test.cpp), so they are linked in.
TEST_EXAMPLE_OBJS := $(call example_parts,kv)
# Helper programs the tests run (gdb target, crash reports, ...): tests/progs/*.cpp
TEST_PROG_SRCS := $(wildcard tests/progs/*.cpp)
TEST_PROGS := $(patsubst tests/progs/%.cpp,$(BIN)/progs/%,$(TEST_PROG_SRCS))

$(OBJ)/gtest/%.o: $(GTEST_DIR)/src/%.cc $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++20 $(OPT) -g -fPIC $(ARCH_FLAGS) $(SAN_FLAGS) -I$(GTEST_DIR)/include -I$(GTEST_DIR) -c $< -o $@

$(OBJ)/tests/%.o: CPPFLAGS += -Iexamples -I$(GTEST_DIR)/include -DCOOP_BIN_DIR='"$(abspath $(BIN))"'

$(TEST_BIN): $(TEST_OBJS) $(TEST_EXAMPLE_OBJS) $(GTEST_OBJS) $(LIB_A)
	$(call link_with_lib,$(TEST_OBJS) $(TEST_EXAMPLE_OBJS) $(GTEST_OBJS))

$(BIN)/progs/%: $(OBJ)/tests/progs/%.o $(LIB_A)
	$(call link_with_lib,$<)

# How to run a test binary: natively, or under qemu for a foreign arch.
ifeq ($(ARCH),$(HOST_ARCH))
  RUN :=
else
  RUN := qemu-$(ARCH) -L /usr/$(ARCH)-linux-gnu
endif
export COOP_RUN_PREFIX := $(RUN)

# Debian packages first (tools/deps.sh installs what is missing when run as
# root, else prints the apt-get line). SKIP_DEPS=1 skips the check.
.PHONY: deps-base deps-test
deps-base deps-test:
	@[ -n "$(SKIP_DEPS)" ] || tools/deps.sh $(patsubst deps-%,%,$@)

GTEST_ARGS ?=
test: deps-base
	$(MAKE) SKIP_DEPS=1 test-run

# Linux builds carry two backends. The suite runs on the default one
# (io_uring where the kernel grants it), then the reactor-layer suites
# (REACTOR_TESTS, mk/reactor.mk; or what GTEST_ARGS selects) run again with
# COOP_POLLER=epoll. Where io_uring is not granted (qemu-user, an old
# kernel, a seccomp policy) the first run was on epoll already.
# $(call on_both_backends,command running the test binary with its arguments)
ifeq ($(POLLER),kqueue)
on_both_backends =
else
on_both_backends = \
  @if [ "$$($(RUN) $(BIN)/progs/backend_probe --default)" = epoll ]; then \
    echo "coop: io_uring is not granted here; the run above was on epoll"; \
  else \
    echo "COOP_POLLER=epoll $(1)"; COOP_POLLER=epoll $(1); \
  fi
endif
BACKEND_GTEST_ARGS = $(or $(GTEST_ARGS),--gtest_filter='$(REACTOR_TESTS):Kv*')

.PHONY: test-run
test-run: lib $(TEST_BIN) $(TEST_PROGS) $(EXAMPLE_BINS)
	$(RUN) $(TEST_BIN) $(GTEST_ARGS)
	$(call on_both_backends,$(RUN) $(TEST_BIN) $(BACKEND_GTEST_ARGS))

# Both AArch64 variants: the BTI/PAC build and the br-x30 build. qemu's
# default CPU implements PAC, so signed return addresses are checked for
# real; BTI is only enforced for a binary whose every object claims it,
# which Debian's crt files do not (make check proves BTI with a dedicated
# probe, tests/check/bti.sh).
test-aarch64: deps-test
	$(MAKE) SKIP_DEPS=1 ARCH=aarch64 BRANCH_PROTECTION=standard test-run
	$(MAKE) SKIP_DEPS=1 ARCH=aarch64 BRANCH_PROTECTION=none test-run

# ---------------------------------------------------------------- install
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
VERSION := 0.1.0

install: lib
	install -d $(DESTDIR)$(INCDIR)/coop/detail $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/coop/*.h* $(DESTDIR)$(INCDIR)/coop/
	install -m 644 include/coop/detail/*.h* $(DESTDIR)$(INCDIR)/coop/detail/
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/$(SONAME) $(DESTDIR)$(LIBDIR)/
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcoop.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' coop.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/coop.pc

clean:
	rm -rf build

# Further targets live in mk/*.mk (bench, study, check).
-include $(wildcard mk/*.mk)

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
