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
//   BM_CoroutineResumeYieldInCatch  both sides inside a catch block while they switch
//                               (what keeping per-coroutine exception state costs)
//   BM_CoroutineYieldDepth/D    the body yields D non-inlined calls deep (D = 1, 4, 16)
//   BM_CoroutineRoundRobin/N    N coroutines resumed in turn (per resume: resumes counter)
//   BM_CoroutineCreateDestroy   make a coroutine (pooled stack), run it to the end, destroy it
//   BM_BoostFcontextRoundTrip   Boost.Context jump_fcontext there and back
//   BM_BoostContinuation        boost::context::continuation resume() there and back
//   BM_Cpp20ResumeSuspend       C++20 stackless coroutine: resume() + co_await suspend_always
//   BM_UcontextSwapRoundTrip    POSIX swapcontext there and back (a syscall each way)
//   BM_FloorSwitchRet           the floors (bench/floor_<arch>.S): a minimal switch ending
//   BM_FloorSwitchJmp           in ret, the same ending in pop + jmp (br x30 on AArch64),
//   BM_FloorFpEnv               and one save + restore of MXCSR + x87 CW (FPCR), in a call
//
// The timed operations live in kernels.hpp, shared with coop-study.
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
void BM_DirectCall(benchmark::State& st) {
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        p = coop_bench::direct_callee(p);
        benchmark::DoNotOptimize(p);
    }
    m.finish();
}
BENCHMARK(BM_DirectCall);

// The timed loop of every round-trip benchmark below: k.round_trip(p) hands
// p to the other side and returns what comes back. Out of line, so that it
// is compiled alike wherever it is called from (a call from inside a catch
// block would otherwise get the cold-code treatment: nothing inlined).
template <class K>
COOP_BENCH_OPAQUE void round_trip_loop(benchmark::State& st, K& k) {
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        p = k.round_trip(p);                // 2 switches
        benchmark::DoNotOptimize(p);
    }
    m.finish(2);
}

// ------------------------------------------------------------ raw switch
void BM_SwitchRoundTrip(benchmark::State& st) {
    coop_bench::raw_pair k(false);
    round_trip_loop(st, k);
}
void BM_SwitchRoundTripFp(benchmark::State& st) {
    coop_bench::raw_pair k(true);
    round_trip_loop(st, k);
}
BENCHMARK(BM_SwitchRoundTrip);
BENCHMARK(BM_SwitchRoundTripFp);

// ------------------------------------------------------------ coop::coroutine
// resume + yield (2 switches). ~coroutine unwinds the parked body (forced
// unwind) and pools the stack.
void coroutine_round_trip(benchmark::State& st, int depth, bool fp) {
    coop_bench::echo_coroutine k(depth, fp);
    round_trip_loop(st, k);
}

void BM_CoroutineResumeYield(benchmark::State& st) { coroutine_round_trip(st, 0, false); }
void BM_CoroutineResumeYieldFp(benchmark::State& st) { coroutine_round_trip(st, 0, true); }
BENCHMARK(BM_CoroutineResumeYield);
BENCHMARK(BM_CoroutineResumeYieldFp);

// The body yields D non-inlined calls below its loop (kernels.hpp). A switch
// that paired call/ret with the return-stack predictor would only be cheap
// at the depth the resume landed at; here landing and yield differ by D.
void BM_CoroutineYieldDepth(benchmark::State& st) {
    coroutine_round_trip(st, static_cast<int>(st.range(0)), false);
}
BENCHMARK(BM_CoroutineYieldDepth)->Arg(1)->Arg(4)->Arg(16);

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

// The round trip of BM_CoroutineResumeYield while both sides are inside a
// catch block: the driver caught one exception and, still in its handler,
// resumes a coroutine that caught another and yields from its handler. The
// C++ runtime tracks caught exceptions per thread (the __cxa_get_globals()
// list and count of libstdc++ and libc++abi); a switch that keeps them per
// coroutine, so that each side sees its own std::current_exception(), pays
// for that here. The coroutine is created, resumed and destroyed inside the
// driver's handler, so the two handlers nest and end in order whatever the
// switch keeps.
// The coroutine's side, out of line for the same reason as round_trip_loop.
[[noreturn]] COOP_BENCH_OPAQUE void echo_forever(coop::yielder& y, void* v) {
    for (;;) v = y.yield(v);
}

struct coroutine_in_catch {
    coop::coroutine co{[](coop::yielder& y, void* v) -> void* {
        try {
            throw 2;
        } catch (int) {
            echo_forever(y, v);             // yields from inside the handler
        }
    }};
    void* round_trip(void* p) { return co.resume(p); }
};

void BM_CoroutineResumeYieldInCatch(benchmark::State& st) {
    try {
        throw 1;
    } catch (int) {
        coroutine_in_catch k;
        int x = 0;
        k.round_trip(&x);                   // into the coroutine's handler
        round_trip_loop(st, k);
        // ~coroutine unwinds the body out of its handler (forced unwind).
    }
}
BENCHMARK(BM_CoroutineResumeYieldInCatch);

// N coroutines resumed round-robin from one loop: one iteration resumes each
// once (2N switches). "resumes" = N per iteration.
void BM_CoroutineRoundRobin(benchmark::State& st) {
    coop_bench::round_robin k(static_cast<int>(st.range(0)));
    int x = 0;
    void* p = &x;
    cycle_meter m(st);
    for (auto _ : st) {
        p = k.turn(p);
        benchmark::DoNotOptimize(p);
    }
    m.finish(2.0 * k.size());
    st.counters["resumes"] = k.size();
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

// ------------------------------------------------------------ floors
// Why CPUs differ (bench/floor_<arch>.S): the same minimal switch ending in
// ret or in pop + jmp, and the FP control state saved and restored once.
template <class Floor>
void floor_round_trip(benchmark::State& st) {
    Floor k;
    cycle_meter m(st);
    for (auto _ : st) k.round_trip();       // 2 switches
    m.finish(2);
}
void BM_FloorSwitchRet(benchmark::State& st) { floor_round_trip<coop_bench::floor_ret>(st); }
void BM_FloorSwitchJmp(benchmark::State& st) { floor_round_trip<coop_bench::floor_jmp>(st); }
BENCHMARK(BM_FloorSwitchRet);
BENCHMARK(BM_FloorSwitchJmp);

void BM_FloorFpEnv(benchmark::State& st) {
    cycle_meter m(st);
    for (auto _ : st) coop_floor_fp_env();  // a call that saves + restores the FP control state
    m.finish();
}
BENCHMARK(BM_FloorFpEnv);

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
