# mk/reactor.mk — reactor-layer targets.
#
#   make test-kqueue     build the library with POLLER=kqueue against the kqueue
#                        emulation in tests/kqueue_emul (Linux has no kqueue)
#                        and run the reactor-layer tests on it
#   make test-reactor    the reactor-layer tests only, default poller
#
# On Linux, a POLLER=kqueue build compiles src/poller_kqueue.cpp against
# tests/kqueue_emul/sys/event.h and links the emulation into libcoop.

REACTOR_TESTS := Reactor*:Io*:Channel*:Echo*

ifeq ($(OS)-$(POLLER),Linux-kqueue)
  KQUEUE_EMUL_OBJ := $(OBJ)/tests/kqueue_emul/kqueue_emul.o
  CPPFLAGS += -Itests/kqueue_emul
  $(LIB_A): $(KQUEUE_EMUL_OBJ)
  $(LIB_SO): $(KQUEUE_EMUL_OBJ)
endif

.PHONY: test-kqueue test-reactor
test-kqueue:
	$(MAKE) POLLER=kqueue test GTEST_ARGS='--gtest_filter=$(REACTOR_TESTS)'

test-reactor:
	$(MAKE) test GTEST_ARGS='--gtest_filter=$(REACTOR_TESTS)'
