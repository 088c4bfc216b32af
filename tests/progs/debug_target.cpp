// tests/progs/debug_target.cpp — a small program for the debugger, unwinder
// and profiler tests in tests/safety_test.cpp. It runs a named coroutine
// whose body calls three nested functions, and in the innermost one:
//
//   debug_target trap        raise(SIGTRAP)   (gdb stops there; `bt`)
//   debug_target spin [ms]   burn CPU for about ms milliseconds (perf record)
//   debug_target overflow    recurse until the stack overflows
//
// The nested functions are noinline and do work after their call, so every
// level keeps a real frame.
#include <coop/coroutine.hpp>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

volatile unsigned long g_sink;
volatile bool g_deeper = true;   // always true; hides the endless recursion
const char* g_mode = "trap";
long g_spin_ms = 300;

extern "C" [[gnu::noinline]] void coop_target_innermost(int depth) {
    if (std::strcmp(g_mode, "trap") == 0) {
        ::raise(SIGTRAP);
    } else if (std::strcmp(g_mode, "spin") == 0) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(g_spin_ms);
        while (std::chrono::steady_clock::now() < until)
            for (int i = 0; i < 100000; ++i) g_sink = g_sink * 31 + static_cast<unsigned long>(i);
    }
    g_sink = g_sink + static_cast<unsigned long>(depth);
}

extern "C" [[gnu::noinline]] void coop_target_recurse(int depth) {
    volatile char pad[512];
    pad[0] = static_cast<char>(depth);
    if (g_deeper) coop_target_recurse(depth + 1);
    g_sink = g_sink + static_cast<unsigned long>(pad[0]);
}

extern "C" [[gnu::noinline]] void coop_target_middle(int depth) {
    if (std::strcmp(g_mode, "overflow") == 0)
        coop_target_recurse(depth + 1);
    else
        coop_target_innermost(depth + 1);
    g_sink = g_sink + 1;
}

extern "C" [[gnu::noinline]] void coop_target_outer(int depth) {
    coop_target_middle(depth + 1);
    g_sink = g_sink + 2;
}

} // namespace

int main(int argc, char** argv) {
    // SIGTRAP may arrive ignored from the parent; the trap must stop us.
    ::signal(SIGTRAP, SIG_DFL);
    if (argc > 1) g_mode = argv[1];
    if (argc > 2) g_spin_ms = std::atol(argv[2]);
    coop::coroutine_options o;
    o.name = "debug-target";
    o.stack_size = 64 * 1024;
    coop::coroutine co([](coop::yielder& y) {
        coop_target_outer(0);
        y.yield();
    }, o);
    co.resume();
    std::printf("debug_target: %s done\n", g_mode);
    return 0;
}
