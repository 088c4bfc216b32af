// bench/work_bench.cpp — CPU-bound work gains nothing from coroutines.
//
// A fixed amount of arithmetic (kUnits calls of work_unit(), a chain of
// dependent multiply-adds the optimizer cannot see through) is done
//   BM_WorkDirect           by plain direct calls on the thread's stack;
//   BM_WorkCoroutines/G     split evenly across kCoroutines stackful
//                           coroutines, each yielding to the driver after
//                           every G units; the driver resumes them round-robin.
// Every resume+yield is a round trip of 2 switches; the "switches" counter
// says how many one iteration performs (2 * kUnits / G). The overhead
// (BM_WorkCoroutines/G ÷ BM_WorkDirect − 1) shrinks as G grows: the curve
// where the switch cost disappears into the work. The coroutines live across
// iterations (each finishes its share, reports, and starts the next share),
// so what is measured is switching, not creation.
#include "bench_util.hpp"

#include <coop/coroutine.hpp>

#include <array>
#include <cstdint>

#if defined(__clang__)
#  define COOP_BENCH_OPAQUE __attribute__((noinline))
#else
#  define COOP_BENCH_OPAQUE __attribute__((noipa))
#endif

namespace {

constexpr int kCoroutines = 4;
constexpr std::uint64_t kUnits = 4096;               // per iteration, all coroutines together
constexpr std::uint64_t kShare = kUnits / kCoroutines;

// One unit of work: 16 dependent multiply-adds (about 64 cycles of latency).
COOP_BENCH_OPAQUE std::uint64_t work_unit(std::uint64_t x) {
    for (int i = 0; i < 16; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        asm volatile("" : "+r"(x));
    }
    return x;
}

void BM_WorkDirect(benchmark::State& st) {
    std::uint64_t x = 1;
    coop_bench::cycle_meter m(st);
    for (auto _ : st) {
        for (std::uint64_t i = 0; i < kUnits; ++i) x = work_unit(x);
        benchmark::DoNotOptimize(x);
    }
    m.finish();
    st.counters["units"] = static_cast<double>(kUnits);
    st.counters["G"] = static_cast<double>(kUnits);
}
BENCHMARK(BM_WorkDirect);

void BM_WorkCoroutines(benchmark::State& st) {
    const std::uint64_t g = static_cast<std::uint64_t>(st.range(0));
    // A coroutine yields its running state after every g units and nullptr
    // once its share is done; then it waits for the next share.
    struct slot {
        std::uint64_t x;
    };
    std::array<slot, kCoroutines> slots{};
    std::array<coop::coroutine, kCoroutines> cos;
    for (int k = 0; k < kCoroutines; ++k) {
        slots[k].x = static_cast<std::uint64_t>(k) + 1;
        cos[k] = coop::coroutine([g, s = &slots[k]](coop::yielder& y) {
            for (;;) {
                std::uint64_t x = s->x;
                for (std::uint64_t done = 0; done < kShare;) {
                    const std::uint64_t end = done + g < kShare ? done + g : kShare;
                    for (; done < end; ++done) x = work_unit(x);
                    s->x = x;
                    if (done < kShare) y.yield(s);
                }
                y.yield(nullptr);           // share finished
            }
        });
    }
    coop_bench::cycle_meter m(st);
    std::uint64_t resumes = 0;
    for (auto _ : st) {
        int live = kCoroutines;
        std::array<bool, kCoroutines> running{};
        running.fill(true);
        while (live > 0) {
            for (int k = 0; k < kCoroutines; ++k) {
                if (!running[k]) continue;
                ++resumes;
                if (cos[k].resume() == nullptr) {
                    running[k] = false;
                    --live;
                }
            }
        }
        benchmark::DoNotOptimize(slots);
    }
    const double iters = static_cast<double>(st.iterations());
    m.finish(iters > 0 ? 2.0 * static_cast<double>(resumes) / iters : 0);
    st.counters["units"] = static_cast<double>(kUnits);
    st.counters["G"] = static_cast<double>(g);
    st.counters["K"] = kCoroutines;
}
BENCHMARK(BM_WorkCoroutines)->RangeMultiplier(4)->Range(1, 1024);

} // namespace

COOP_BENCH_MAIN()
