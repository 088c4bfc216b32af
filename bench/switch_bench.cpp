// bench/switch_bench.cpp — what one switch costs, next to a direct call and
// next to the peers a user would otherwise pick.
//
// Every "round trip" below is TWO switches: from the driver into the other
// context and back. Each benchmark reports that as the "switches" counter,
// and a "cycles" counter per iteration (see bench_util.hpp). Values travel
// both ways in every variant (the other side hands back what it received),
// and the driver feeds the result into the next iteration and into
// DoNotOptimize, so no variant can be reduced to nothing by the compiler.
//
//   BM_DirectCall               an out-of-line call + return, the unit cost
//   BM_SwitchRoundTrip          coop_jump there and back (shares the FP env)
//   BM_SwitchRoundTripFp        coop_jump_fp there and back (saves MXCSR/x87 CW or FPCR)
//   BM_CoroutineResumeYield     coop::coroutine resume() + yielder::yield()
//   BM_CoroutineResumeYieldFp   the same with coroutine_options::preserve_fp_env
//   BM_CoroutineResumeYieldTls  yield via coop::this_coroutine::yield()
//   BM_CoroutineResumeYieldNested  the body yields from a (non-inlined) helper it called
//   BM_CoroutineRoundRobin/N    N coroutines resumed in turn (per resume: resumes counter)
//   BM_CoroutineCreateDestroy   make a coroutine (pooled stack), run it to the end, destroy it
//   BM_BoostFcontextRoundTrip   Boost.Context jump_fcontext there and back
//   BM_BoostContinuation        boost::context::continuation resume() there and back
//   BM_Cpp20ResumeSuspend       C++20 stackless coroutine: resume() + co_await suspend_always
//   BM_UcontextSwapRoundTrip    POSIX swapcontext there and back (a syscall each way)
#include "bench_util.hpp"
#include "kernels.hpp"

#include <coop/context.h>
#include <coop/coroutine.hpp>
#include <coop/stack.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <utility>
#include <vector>

#include <ucontext.h>

// Boost.Context: the header decides at compile time, the library at make
// time (mk/bench.mk defines COOP_BENCH_HAVE_BOOST_CONTEXT when the linker can
// find libboost_context for this target).
#if defined(COOP_BENCH_HAVE_BOOST_CONTEXT) && __has_include(<boost/context/detail/fcontext.hpp>) && \
    __has_include(<boost/context/continuation.hpp>)
#  include <boost/context/continuation.hpp>
#  include <boost/context/detail/fcontext.hpp>
#  define COOP_BENCH_BOOST 1
#else
#  define COOP_BENCH_BOOST 0
#endif

namespace {

using coop_bench::cycle_meter;

// ------------------------------------------------------------ direct call
using coop_bench::direct_callee;
using coop_bench::echo_entry;
using coop_bench::echo_entry_fp;

void BM_DirectCall(benchmark::State& st) {
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        p = direct_callee(p);
        benchmark::DoNotOptimize(p);
    }
    m.finish();
}
BENCHMARK(BM_DirectCall);

// ------------------------------------------------------------ raw switch
template <coop_transfer (*Jump)(coop_ctx, void*), void (*Entry)(coop_transfer)>
void raw_round_trip(benchmark::State& st) {
    coop::stack s(64 * 1024);
    coop_ctx ctx = coop_make(s.top(), s.size(), Entry);
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        coop_transfer t = Jump(ctx, p);     // switch 1: into the echo context
        ctx = t.ctx;                        // switch 2 happened: it jumped back
        p = t.data;
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
    // The echo context stays suspended forever; its stack holds no objects
    // with destructors, so unmapping it is all the cleanup there is.
}

void BM_SwitchRoundTrip(benchmark::State& st) { raw_round_trip<coop_jump, echo_entry>(st); }
void BM_SwitchRoundTripFp(benchmark::State& st) { raw_round_trip<coop_jump_fp, echo_entry_fp>(st); }
BENCHMARK(BM_SwitchRoundTrip);
BENCHMARK(BM_SwitchRoundTripFp);

// ------------------------------------------------------------ coop::coroutine
void coroutine_round_trip(benchmark::State& st, bool fp) {
    coop::coroutine_options o;
    o.preserve_fp_env = fp;
    coop::coroutine co(
        [](coop::yielder& y, void* v) {
            for (;;) v = y.yield(v);
        },
        o);
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        p = co.resume(p);                   // 2 switches: resume + yield
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
    // ~coroutine unwinds the parked body (forced unwind) and pools the stack.
}

void BM_CoroutineResumeYield(benchmark::State& st) { coroutine_round_trip(st, false); }
void BM_CoroutineResumeYieldFp(benchmark::State& st) { coroutine_round_trip(st, true); }
BENCHMARK(BM_CoroutineResumeYield);
BENCHMARK(BM_CoroutineResumeYieldFp);

// The same round trip, but the body yields from inside a function it called
// (one non-inlined call level deeper than the loop it was resumed into), as
// code that yields from a helper, a parser or a recursive traversal does.
// A switch that pairs call/ret with the return-stack predictor only helps
// when the yield happens at the call depth the resume landed at; here the
// landing and the yield are at different depths.
COOP_BENCH_OPAQUE void* yield_from_helper(coop::yielder& y, void* v) {
    v = y.yield(v);
    asm volatile("");
    return v;
}

void BM_CoroutineResumeYieldNested(benchmark::State& st) {
    coop::coroutine co([](coop::yielder& y, void* v) {
        for (;;) v = yield_from_helper(y, v);
    });
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        p = co.resume(p);
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
}
BENCHMARK(BM_CoroutineResumeYieldNested);

void BM_CoroutineResumeYieldTls(benchmark::State& st) {
    coop::coroutine co([](coop::yielder&, void* v) {
        for (;;) v = coop::this_coroutine::yield(v);
    });
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        p = co.resume(p);
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
}
BENCHMARK(BM_CoroutineResumeYieldTls);

// N coroutines resumed round-robin from one loop: one iteration resumes each
// once (2N switches). Shows what a resume costs once the coroutines' stacks
// and control blocks no longer sit in the same few cache lines, which is the
// situation of a scheduler with many tasks. "resumes" = N per iteration.
void BM_CoroutineRoundRobin(benchmark::State& st) {
    const int n = static_cast<int>(st.range(0));
    std::vector<coop::coroutine> cos;
    cos.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
        cos.emplace_back([](coop::yielder& y, void* v) {
            for (;;) v = y.yield(v);
        });
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        for (coop::coroutine& co : cos) p = co.resume(p);
        benchmark::DoNotOptimize(p);
    }
    m.finish(2.0 * n);
    st.counters["resumes"] = n;
}
BENCHMARK(BM_CoroutineRoundRobin)->Arg(16)->Arg(256);

// Whole life of a short coroutine: take a pooled stack, build the frame,
// first resume (switch in), body returns (switch out), destroy, stack back to
// the pool. Two switches per iteration.
void BM_CoroutineCreateDestroy(benchmark::State& st) {
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        coop::coroutine co([](coop::yielder&, void* v) { return v; });
        p = co.resume(p);
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
}
BENCHMARK(BM_CoroutineCreateDestroy);

// ------------------------------------------------------------ Boost.Context
#if COOP_BENCH_BOOST
namespace bctx = boost::context;

void boost_echo_entry(bctx::detail::transfer_t t) {
    for (;;) t = bctx::detail::jump_fcontext(t.fctx, t.data);
}

void BM_BoostFcontextRoundTrip(benchmark::State& st) {
    coop::stack s(64 * 1024);               // same kind of stack as coop's own bench
    bctx::detail::fcontext_t ctx = bctx::detail::make_fcontext(s.top(), s.size(), boost_echo_entry);
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        bctx::detail::transfer_t t = bctx::detail::jump_fcontext(ctx, p);
        ctx = t.fctx;
        p = t.data;
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
}

void BM_BoostContinuation(benchmark::State& st) {
    void* shared = nullptr;                 // the value passed both ways
    bctx::continuation c = bctx::callcc([&shared](bctx::continuation&& back) {
        for (;;) {
            void* v = shared;
            benchmark::DoNotOptimize(v);
            shared = v;
            back = back.resume();
        }
        return std::move(back);
    });
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        shared = p;
        c = c.resume();                     // 2 switches
        p = shared;
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
    // ~continuation unwinds the suspended body.
}
#else
constexpr const char* kNoBoost = "Boost.Context not found: apt-get install libboost-context-dev";
void BM_BoostFcontextRoundTrip(benchmark::State& st) { st.SkipWithError(kNoBoost); }
void BM_BoostContinuation(benchmark::State& st) { st.SkipWithError(kNoBoost); }
#endif
BENCHMARK(BM_BoostFcontextRoundTrip);
BENCHMARK(BM_BoostContinuation);

// ------------------------------------------------------------ C++20 stackless
// A coroutine whose body echoes a value through its promise and suspends;
// the driver keeps the handle and calls resume(). Resume and suspend are the
// two "switches" of the stackless world (an indirect call into the frame's
// resume function and a return out of it).
struct echo_task {
    struct promise_type {
        void* in = nullptr;
        void* out = nullptr;
        echo_task get_return_object() {
            return echo_task{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
    std::coroutine_handle<promise_type> h;
};

// Gives the body its own promise without suspending.
struct own_promise {
    echo_task::promise_type* p = nullptr;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<echo_task::promise_type> h) noexcept {
        p = &h.promise();
        return false;                       // do not suspend
    }
    echo_task::promise_type* await_resume() const noexcept { return p; }
};

COOP_BENCH_OPAQUE echo_task make_echo_task() {
    echo_task::promise_type* pr = co_await own_promise{};
    for (;;) {
        pr->out = pr->in;
        co_await std::suspend_always{};
    }
}

void BM_Cpp20ResumeSuspend(benchmark::State& st) {
    echo_task t = make_echo_task();
    std::coroutine_handle<echo_task::promise_type> h = t.h;
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        h.promise().in = p;
        h.resume();                         // run to the next suspension
        p = h.promise().out;
        benchmark::DoNotOptimize(p);
        benchmark::DoNotOptimize(h);
    }
    m.finish(2);
    h.destroy();
}
BENCHMARK(BM_Cpp20ResumeSuspend);

// ------------------------------------------------------------ ucontext
struct uc_pair {
    ucontext_t driver;
    ucontext_t other;
    void* value = nullptr;
};
uc_pair* g_uc = nullptr;

void uc_entry() {
    for (;;) {
        void* v = g_uc->value;
        benchmark::DoNotOptimize(v);
        g_uc->value = v;
        swapcontext(&g_uc->other, &g_uc->driver);
    }
}

void BM_UcontextSwapRoundTrip(benchmark::State& st) {
    coop::stack s(64 * 1024);
    uc_pair uc;
    g_uc = &uc;
    getcontext(&uc.other);
    uc.other.uc_stack.ss_sp = s.bottom();
    uc.other.uc_stack.ss_size = s.size();
    uc.other.uc_link = nullptr;
    makecontext(&uc.other, uc_entry, 0);
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        uc.value = p;
        swapcontext(&uc.driver, &uc.other); // 2 switches, each with a sigprocmask syscall
        p = uc.value;
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
    g_uc = nullptr;
}
BENCHMARK(BM_UcontextSwapRoundTrip);

} // namespace

COOP_BENCH_MAIN()
