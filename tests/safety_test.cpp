// tests/safety_test.cpp — stack-overflow reports, signal chaining, and
// unwinding out of coroutines (glibc backtrace(), gdb, perf).
//
// The death tests use the "fast" style (fork, no exec) so that they also run
// under qemu-user, which cannot exec a foreign binary without binfmt_misc.
// The gdb and perf tests drive tests/progs/debug_target as a child process.
#include <coop/coroutine.hpp>
#include <coop/overflow.hpp>
#include <coop/reactor.hpp>

#include <gtest/gtest.h>

#include "test_env.hpp"

#include <execinfo.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef COOP_BIN_DIR
#  define COOP_BIN_DIR "build/bin"
#endif

// Where contexts start (arch/<arch>/switch.S): coop_trampoline for raw
// coop_make contexts, coop_fiber_trampoline for coroutines. Hidden in
// libcoop, but visible to this statically linked test; weak, so the test
// still links if one of them goes away.
extern "C" [[gnu::weak]] void coop_trampoline();
extern "C" [[gnu::weak]] void coop_fiber_trampoline();
// Either name as it appears in a symbolised frame.
constexpr const char* kEntrySymbol = "_trampoline";

namespace {

#if defined(COOP_ASAN) || defined(COOP_TSAN)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

volatile int g_sink;
volatile bool g_deeper = true;            // always true; hides the endless recursion
volatile std::uintptr_t g_bad_address = 16;   // unmapped: the first page is never mapped

// Recurse until the stack runs out; noinline and work after the call keep
// every level a real frame.
[[gnu::noinline]] void recurse_forever(int depth) {
    volatile char pad[256];
    pad[0] = static_cast<char>(depth);
    if (g_deeper) recurse_forever(depth + 1);
    g_sink = g_sink + pad[0];
}

// A fault that is not an overflow.
[[gnu::noinline]] void write_to_bad_address() { *reinterpret_cast<volatile int*>(g_bad_address) = 42; }

std::string hex(const void* p) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx",
                  static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(p)));
    return buf;
}

using coop_test::under_emulator;

// ThreadSanitizer loses its fiber bookkeeping in a fork()ed child (it then
// reports a false race on the first coroutine switch there), so TSan builds
// run the death tests in the "threadsafe" style: the child re-executes the
// test binary and runs the test from scratch. Everything else uses "fast"
// (plain fork), which also works under qemu-user, where the child could not
// exec a foreign binary.
#if defined(COOP_TSAN)
constexpr bool kForkedDeathTests = false;
#else
constexpr bool kForkedDeathTests = true;
#endif

// The exact line the handler prints for coroutine co. A re-executed child
// has its own addresses: there only the shape and the size are known.
std::string overflow_line(const coop::coroutine& co, const std::string& who) {
    std::ostringstream s;
    s << "^coop: stack overflow in coroutine " << who << " \\(stack ";
    if (kForkedDeathTests)
        s << hex(co.stack_bottom()) << "-" << hex(co.stack_top());
    else
        s << "0x[0-9a-f]+-0x[0-9a-f]+";
    s << ", "
      << (static_cast<char*>(co.stack_top()) - static_cast<char*>(co.stack_bottom()))
      << " bytes\\)\n";
    // Nothing else on stderr, except the emulator's own note on the abort
    // (followed by an empty line when the abort came from a second thread).
    s << (under_emulator() ? "(qemu: [^\n]*\n|\n)*$" : "$");
    return s.str();
}

// Died of SIGSEGV, as the process would without coop. A sanitizer's own
// handler (chained behind coop's) reports the fault and exits instead.
bool died_of_segv(int status) {
    if (WIFSIGNALED(status)) return WTERMSIG(status) == SIGSEGV;
    return kSanitized && WIFEXITED(status) && WEXITSTATUS(status) != 0;
}

// Make sure the handler is in place (a coroutine ran on this thread).
void run_one_coroutine() {
    coop::coroutine co([] {});
    co.resume();
}

class Overflow : public ::testing::Test {
protected:
    void SetUp() override { GTEST_FLAG_SET(death_test_style, kForkedDeathTests ? "fast" : "threadsafe"); }
};

TEST_F(Overflow, NamedCoroutineReportsOneLineAndAborts) {
    coop::coroutine_options o;
    o.name = "deep-worker";
    o.stack_size = 64 * 1024;
    coop::coroutine co([] { recurse_forever(0); }, o);
    EXPECT_EXIT(co.resume(), ::testing::KilledBySignal(SIGABRT), overflow_line(co, "deep-worker"));
}

TEST_F(Overflow, UnnamedCoroutineIsReportedById) {
    coop::coroutine_options o;
    o.stack_size = 32 * 1024;
    coop::coroutine co([] { recurse_forever(0); }, o);
    EXPECT_EXIT(co.resume(), ::testing::KilledBySignal(SIGABRT),
                overflow_line(co, kForkedDeathTests ? "#" + std::to_string(co.id()) : "#[0-9]+"));
}

TEST_F(Overflow, NestedCoroutineBlamesTheInnerOne) {
    coop::coroutine_options inner_o;
    inner_o.name = "inner";
    inner_o.stack_size = 32 * 1024;
    coop::coroutine inner([] { recurse_forever(0); }, inner_o);
    coop::coroutine_options outer_o;
    outer_o.name = "outer";
    coop::coroutine outer([&] { inner.resume(); }, outer_o);
    EXPECT_EXIT(outer.resume(), ::testing::KilledBySignal(SIGABRT), overflow_line(inner, "inner"));
}

TEST_F(Overflow, ReactorTaskIsReportedByItsSpawnName) {
    // The name given at spawn reaches the report. The task's stack is made
    // in the child here, so only the shape of the range is known.
    EXPECT_EXIT(
        {
            coop::reactor r;
            coop::spawn_options o;
            o.stack_size = 32 * 1024;
            o.name = "overflowing-task";
            r.spawn([] { recurse_forever(0); }, o);
            r.run();
        },
        ::testing::KilledBySignal(SIGABRT),
        "^coop: stack overflow in coroutine overflowing-task \\(stack 0x[0-9a-f]+-0x[0-9a-f]+, 32768 bytes\\)\n");
}

TEST_F(Overflow, CoroutineOnAnotherThread) {
    // A thread that never ran a coroutine before gets its alternate signal
    // stack when it starts one.
    if (under_emulator())
        GTEST_SKIP() << "qemu-user itself fails an assertion (cpu_exec: cpu == current_cpu) when the "
                        "fork()ed child of a multi-threaded process starts a thread; natively checked";
    coop::coroutine_options o;
    o.name = "on-a-thread";
    o.stack_size = 32 * 1024;
    coop::coroutine co([] { recurse_forever(0); }, o);
    EXPECT_EXIT(
        {
            std::thread t([&] { co.resume(); });
            t.join();
        },
        ::testing::KilledBySignal(SIGABRT), overflow_line(co, "on-a-thread"));
}

TEST_F(Overflow, UnrelatedFaultInCoroutineDiesOfSegv) {
    coop::coroutine co([] { write_to_bad_address(); });
    // Dying of SIGSEGV (not SIGABRT) also means coop reported no overflow.
    EXPECT_EXIT(co.resume(), died_of_segv, "");
}

TEST_F(Overflow, FaultOutsideCoroutinesDiesOfSegv) {
    run_one_coroutine();   // handler installed
    EXPECT_EXIT(write_to_bad_address(), died_of_segv, "");
}

TEST_F(Overflow, SentSegvIsNotAnOverflow) {
    // raise(SIGSEGV) inside a coroutine: si_code says "sent", not a fault.
    coop::coroutine co([] { ::raise(SIGSEGV); });
    EXPECT_EXIT(co.resume(), died_of_segv, "");
}

// A program's own handler, installed before coop's: gets every fault that is
// not a coroutine overflow.
extern "C" void user_segv_handler(int, siginfo_t* info, void*) {
    static const char fault[] = "user handler saw the fault\n";
    static const char sent[] = "user handler saw a sent signal\n";
    const bool is_fault = info && info->si_code > 0;
    ssize_t r = ::write(2, is_fault ? fault : sent, is_fault ? sizeof fault - 1 : sizeof sent - 1);
    (void)r;
    ::_exit(42);
}

// Exit code 42 from the handler above. Valgrind replaces the exit code of a
// process that had errors (the fault is one) with its --error-exitcode.
bool exited_from_user_handler(int status) {
    if (!WIFEXITED(status)) return false;
    const int code = WEXITSTATUS(status);
    return code == 42 || (coop_test::under_valgrind() && code == 99);
}

void install_user_handler() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = &user_segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, nullptr);
}

TEST_F(Overflow, ChainsToThePreviousHandler) {
    coop::coroutine co([] { write_to_bad_address(); });
    EXPECT_EXIT(
        {
            install_user_handler();               // the program's handler...
            coop::install_overflow_handler();     // ...with coop's put in front
            co.resume();
        },
        exited_from_user_handler, "user handler saw the fault");
}

TEST_F(Overflow, OverflowIsReportedEvenWithAPreviousHandler) {
    coop::coroutine_options o;
    o.name = "chained";
    o.stack_size = 32 * 1024;
    coop::coroutine co([] { recurse_forever(0); }, o);
    EXPECT_EXIT(
        {
            install_user_handler();
            coop::install_overflow_handler();
            co.resume();
        },
        ::testing::KilledBySignal(SIGABRT), overflow_line(co, "chained"));
}

TEST(OverflowSetup, HandlerAndAltStackAreInstalledByTheFirstCoroutine) {
    std::thread t([] {
        stack_t before;
        ASSERT_EQ(::sigaltstack(nullptr, &before), 0);
        run_one_coroutine();
        stack_t after;
        ASSERT_EQ(::sigaltstack(nullptr, &after), 0);
        EXPECT_FALSE(after.ss_flags & SS_DISABLE) << "no alternate signal stack after a coroutine ran";
        EXPECT_GE(after.ss_size, std::size_t{16384});
    });
    t.join();
    struct sigaction sa;
    ASSERT_EQ(::sigaction(SIGSEGV, nullptr, &sa), 0);
    EXPECT_TRUE(sa.sa_flags & SA_ONSTACK);
    EXPECT_TRUE(sa.sa_flags & SA_SIGINFO);
    ASSERT_EQ(::sigaction(SIGBUS, nullptr, &sa), 0);
    EXPECT_TRUE(sa.sa_flags & SA_ONSTACK);
}

TEST(OverflowSetup, ReportIgnoresFaultsThatAreNotOverflows) {
    siginfo_t si;
    std::memset(&si, 0, sizeof si);
    si.si_signo = SIGSEGV;
    si.si_code = SEGV_MAPERR;
    si.si_addr = reinterpret_cast<void*>(std::uintptr_t{16});
    EXPECT_FALSE(coop::report_stack_overflow(&si, nullptr));   // no coroutine running
    bool inside = true;
    coop::coroutine co([&] {
        inside = coop::report_stack_overflow(&si, nullptr);     // running, but not its guard
        si.si_code = SI_USER;
        si.si_addr = coop::this_coroutine::inside() ? si.si_addr : nullptr;
        inside = inside || coop::report_stack_overflow(&si, nullptr);
    });
    co.resume();
    EXPECT_FALSE(inside);
    EXPECT_GE(coop::overflow_signal_stack_size(), std::size_t{16384});
}

// ------------------------------------------------------------- unwinding
struct unwind_probe {
    std::array<void*, 128> frames{};
    int n = 0;
    void* ret_into_middle = nullptr;
    void* ret_into_outer = nullptr;
};

[[gnu::noinline]] void bt_innermost(unwind_probe* p) {
    p->ret_into_middle = __builtin_extract_return_addr(__builtin_return_address(0));
    p->n = ::backtrace(p->frames.data(), static_cast<int>(p->frames.size()));
    g_sink = g_sink + 1;
}
[[gnu::noinline]] void bt_middle(unwind_probe* p) {
    p->ret_into_outer = __builtin_extract_return_addr(__builtin_return_address(0));
    bt_innermost(p);
    g_sink = g_sink + 1;
}
[[gnu::noinline]] void bt_outer(unwind_probe* p) {
    bt_middle(p);
    g_sink = g_sink + 1;
}

bool in_trampoline(void* pc) {
    const auto a = reinterpret_cast<std::uintptr_t>(pc);
    for (void (*fn)() : {&coop_trampoline, &coop_fiber_trampoline}) {
        const auto t = reinterpret_cast<std::uintptr_t>(fn);
        if (t && a > t && a < t + 64) return true;   // a return address just after its call
    }
    return false;
}

TEST(Unwind, GlibcBacktraceStopsAtTheCoroutineEntry) {
    unwind_probe p;
    coop::coroutine co([&] { bt_outer(&p); });
    co.resume();
    ASSERT_GT(p.n, 3);
    ASSERT_LT(p.n, static_cast<int>(p.frames.size())) << "the unwinder did not stop";
    std::vector<void*> got(p.frames.begin(), p.frames.begin() + p.n);
    auto has = [&](void* pc) { return std::find(got.begin(), got.end(), pc) != got.end(); };
    EXPECT_TRUE(has(p.ret_into_middle)) << "bt_middle's frame is missing";
    EXPECT_TRUE(has(p.ret_into_outer)) << "bt_outer's frame is missing";
    // The last frame is the coroutine's entry: nothing of the resumer's stack.
    EXPECT_TRUE(in_trampoline(got.back()))
        << "last frame " << got.back() << " is not in a trampoline (coop_fiber_trampoline at "
        << reinterpret_cast<void*>(&coop_fiber_trampoline) << ")";
    EXPECT_LE(p.n, 24);
}

TEST(Unwind, GlibcBacktraceFromANestedCoroutine) {
    unwind_probe p;
    coop::coroutine inner([&] { bt_outer(&p); });
    coop::coroutine outer([&] { inner.resume(); });
    outer.resume();
    ASSERT_GT(p.n, 3);
    ASSERT_LT(p.n, static_cast<int>(p.frames.size()));
    EXPECT_TRUE(in_trampoline(p.frames[static_cast<std::size_t>(p.n - 1)]));
}

// ------------------------------------------------------------- gdb, perf
struct run_result {
    int status = -1;
    std::string out;
};

run_result run(const std::string& cmd) {
    run_result r;
    FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!f) return r;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    r.status = ::pclose(f);
    return r;
}

bool have_tool(const char* name) {
    return run(std::string("command -v ") + name + " >/dev/null").status == 0;
}

std::string target_prog() { return COOP_BIN_DIR "/progs/debug_target"; }

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> v;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
}

// The gdb command that runs debug_target until its SIGTRAP and prints the
// backtrace. Natively: gdb runs it. Under qemu-user: qemu's gdbstub runs it
// and gdb-multiarch attaches (it retries the connection until qemu listens).
std::string gdb_command() {
    const std::string prog = target_prog();
    if (!under_emulator())
        return "timeout 120 gdb -nx -batch -ex run -ex bt --args " + prog + " trap";
    const std::string prefix = std::getenv("COOP_RUN_PREFIX");   // qemu-aarch64 -L <sysroot>
    std::string sysroot;
    const auto l = prefix.find(" -L ");
    if (l != std::string::npos) sysroot = prefix.substr(l + 4, prefix.find(' ', l + 4) - (l + 4));
    const std::string port = std::to_string(20000 + ::getpid() % 20000);
    return "(timeout 150 " + prefix + " -g " + port + " " + prog + " trap >/dev/null 2>&1 &) ; timeout 120 gdb-multiarch -nx -batch" +
           (sysroot.empty() ? "" : " -ex 'set sysroot " + sysroot + "'") +
           " -ex 'set tcp connect-timeout 30' -ex 'target remote :" + port + "' -ex continue -ex bt -ex kill " + prog;
}

TEST(Debugger, GdbBacktraceEndsCleanlyAtTheCoroutineEntry) {
    if (under_emulator()) {
#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT
        GTEST_SKIP() << "qemu-user's gdbstub does not tell gdb the pointer-authentication mask, so gdb cannot "
                        "strip signed return addresses in a PAC build (any frame, not only coop's); "
                        "the BRANCH_PROTECTION=none build runs this test";
#endif
        if (!have_tool("gdb-multiarch")) GTEST_SKIP() << "gdb-multiarch is not installed (Debian: gdb-multiarch)";
    } else if (!have_tool("gdb")) {
        GTEST_SKIP() << "gdb is not installed (Debian: gdb)";
    }
    if (::access(target_prog().c_str(), X_OK) != 0) GTEST_SKIP() << target_prog() << " is not built";
    const run_result r = run(gdb_command());
    ASSERT_NE(r.out.find("SIGTRAP"), std::string::npos) << r.out;
    // Frames, innermost first: #N ... in <function> ...
    std::vector<std::string> frames;
    for (const std::string& l : lines_of(r.out))
        if (l.size() > 1 && l[0] == '#' && std::isdigit(static_cast<unsigned char>(l[1]))) frames.push_back(l);
    ASSERT_FALSE(frames.empty()) << r.out;
    EXPECT_LT(frames.size(), 40u) << "runaway backtrace:\n" << r.out;
    auto find = [&](const char* fn) {
        for (std::size_t i = 0; i < frames.size(); ++i)
            if (frames[i].find(fn) != std::string::npos) return static_cast<long>(i);
        return -1L;
    };
    const long inner = find("coop_target_innermost");
    const long middle = find("coop_target_middle");
    const long outer = find("coop_target_outer");
    const long tramp = find(kEntrySymbol);
    EXPECT_GE(inner, 0) << r.out;
    EXPECT_GT(middle, inner) << r.out;
    EXPECT_GT(outer, middle) << r.out;
    EXPECT_EQ(tramp, static_cast<long>(frames.size()) - 1) << "the coroutine's entry trampoline is not the outermost frame:\n" << r.out;
    EXPECT_EQ(r.out.find("Backtrace stopped"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("corrupt stack"), std::string::npos) << r.out;
    for (const std::string& f : frames)
        EXPECT_TRUE(f.find(" in main (") == std::string::npos && f.find("  main (") == std::string::npos)
            << "unwound into the resumer's stack:\n" << r.out;
}

TEST(Profiler, PerfFramePointerCallGraphEndsAtTheCoroutineEntry) {
    if (under_emulator()) GTEST_SKIP() << "perf does not sample inside qemu-user";
    if (coop_test::under_valgrind()) GTEST_SKIP() << "under Valgrind: perf would profile the test, not Valgrind's guest";
    if (!have_tool("perf") || run("perf version").status != 0)
        GTEST_SKIP() << "perf is not usable (Debian: linux-perf)";
    char dir[] = "/tmp/coop-perf-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string data = std::string(dir) + "/perf.data";
    const run_result rec = run("timeout 120 perf record -q -e cpu-clock -F 2000 --call-graph fp -o " + data +
                               " -- " + target_prog() + " spin 400");
    if (rec.status != 0 || rec.out.find("debug_target: spin done") == std::string::npos) {
        run("rm -rf " + std::string(dir));
        GTEST_SKIP() << "perf record is not permitted here (perf_event_open):\n" << rec.out;
    }
    const run_result script = run("perf script -F ip,sym -i " + data);
    run("rm -rf " + std::string(dir));
    ASSERT_EQ(script.status, 0) << script.out;
    // perf script prints one sample per block: the callchain, innermost
    // first, one "ip sym" per line, then an empty line.
    std::vector<std::vector<std::string>> samples(1);
    for (const std::string& l : lines_of(script.out)) {
        if (l.find_first_not_of(" \t") == std::string::npos) {
            if (!samples.back().empty()) samples.emplace_back();
        } else {
            samples.back().push_back(l);
        }
    }
    int in_target = 0, complete = 0, to_entry = 0, past_entry = 0;
    for (const auto& s : samples) {
        if (s.empty() || s[0].find("coop_target_innermost") == std::string::npos) continue;
        ++in_target;
        long mid = -1, out = -1, tramp = -1;
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i].find("coop_target_middle") != std::string::npos) mid = static_cast<long>(i);
            if (s[i].find("coop_target_outer") != std::string::npos) out = static_cast<long>(i);
            if (s[i].find(kEntrySymbol) != std::string::npos) tramp = static_cast<long>(i);
        }
        if (mid > 0 && out > mid) ++complete;
        if (tramp >= 0) {
            ++to_entry;
            if (tramp != static_cast<long>(s.size()) - 1) ++past_entry;
        }
    }
    ASSERT_GT(in_target, 10) << "too few samples in the coroutine:\n" << script.out.substr(0, 4000);
    // Every sample walked through the nested frames; none went past the entry.
    EXPECT_GE(complete * 100, in_target * 95) << script.out.substr(0, 4000);
    EXPECT_EQ(past_entry, 0) << script.out.substr(0, 4000);
#if defined(COOP_ASAN)
    // This build keeps frame pointers everywhere: every chain reaches the entry.
    EXPECT_EQ(to_entry, in_target) << script.out.substr(0, 4000);
#endif
}

} // namespace
