# mk/reactor.mk — reactor-layer targets.
#
#   make test-kqueue     build the library with POLLER=kqueue and run the
#                        reactor-layer tests on it; on Linux (no kqueue) the
#                        kqueue comes from the emulation in tests/kqueue_emul
#   make test-kqueue KQUEUE=/prefix
#                        the same against an installed kqueue implementation
#                        for Linux (libkqueue, say): sys/event.h from
#                        /prefix/include/kqueue or /prefix/include, libkqueue
#                        from /prefix/lib, /prefix/lib64 or /prefix/lib/<triplet>
#   make test-reactor    the reactor-layer tests only, default poller
#
# On Linux, a POLLER=kqueue build compiles src/poller_kqueue.cpp against
# tests/kqueue_emul/sys/event.h and links the emulation into libcoop, or,
# with KQUEUE=, against the given implementation (found at link time through
# an rpath). Such a build lives in its own directory (build/<arch>-kqueue-ext),
# so the two kqueues never share objects.

REACTOR_TESTS := Reactor*:Io*:Channel*:Echo*:Teardown*:Runtime*:CallOn*:Listener*:SharedChannel*:Offload*:TimerHeap*:WaitList*:RunQueue*

KQUEUE ?=
ifeq ($(OS)-$(POLLER),Linux-kqueue)
  ifeq ($(KQUEUE),)
    KQUEUE_EMUL_OBJ := $(OBJ)/tests/kqueue_emul/kqueue_emul.o
    CPPFLAGS += -Itests/kqueue_emul
    $(LIB_A): $(KQUEUE_EMUL_OBJ)
    $(LIB_SO): $(KQUEUE_EMUL_OBJ)
  else
    KQUEUE_INC := $(firstword $(foreach d,$(KQUEUE)/include/kqueue $(KQUEUE)/include,\
                    $(if $(wildcard $(d)/sys/event.h),$(d))))
    KQUEUE_LIBDIR := $(firstword $(foreach d,$(KQUEUE)/lib $(KQUEUE)/lib64 $(wildcard $(KQUEUE)/lib/*-linux-gnu),\
                    $(if $(wildcard $(d)/libkqueue.so $(d)/libkqueue.a),$(d))))
    ifeq ($(KQUEUE_INC),)
      $(error KQUEUE=$(KQUEUE): no sys/event.h in $(KQUEUE)/include/kqueue or $(KQUEUE)/include)
    endif
    ifeq ($(KQUEUE_LIBDIR),)
      $(error KQUEUE=$(KQUEUE): no libkqueue in $(KQUEUE)/lib, lib64 or lib/<triplet>)
    endif
    ifeq ($(filter %-kqueue-ext,$(BUILD)),)
      $(error KQUEUE= builds go to their own directory: use make test-kqueue KQUEUE=..., or BUILD=<dir>-kqueue-ext)
    endif
    CPPFLAGS += -I$(abspath $(KQUEUE_INC))
    LDLIBS += -L$(abspath $(KQUEUE_LIBDIR)) -Wl,-rpath,$(abspath $(KQUEUE_LIBDIR)) -lkqueue
  endif
endif

.PHONY: test-kqueue test-reactor
test-kqueue:
	$(MAKE) POLLER=kqueue $(if $(KQUEUE),BUILD=$(BUILD)-kqueue-ext) test GTEST_ARGS='--gtest_filter=$(REACTOR_TESTS)'

test-reactor:
	$(MAKE) test GTEST_ARGS='--gtest_filter=$(REACTOR_TESTS)'
