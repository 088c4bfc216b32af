// bench/work_bench.cpp — CPU-bound work gains nothing from coroutines.
//
// A fixed amount of arithmetic (kUnits calls of work_unit(), throughput-bound
// ALU work the optimizer cannot see through; see kernels.hpp) is done
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
#include "kernels.hpp"

#include <coop/coroutine.hpp>

#include <array>
#include <cstdint>

namespace {

using coop_bench::work_unit;

constexpr int kCoroutines = 4;
constexpr std::uint64_t kUnits = 4096;               // per iteration, all coroutines together
constexpr std::uint64_t kShare = kUnits / kCoroutines;

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
    // All coroutines advance ONE shared state, so the work is a single chain
    // of dependent arithmetic exactly as in BM_WorkDirect: the out-of-order
    // core cannot overlap one coroutine's slice with the next one's (with K
    // independent chains, interleaving would make the split version faster
    // than the direct one, which is instruction-level parallelism, not a
    // property of coroutines). A coroutine yields after every g units and
    // yields nullptr once its share is done; then it waits for the next share.
    std::uint64_t shared = 1;
    std::array<coop::coroutine, kCoroutines> cos;
    for (int k = 0; k < kCoroutines; ++k) {
        cos[k] = coop::coroutine([g, s = &shared](coop::yielder& y) {
            for (;;) {
                for (std::uint64_t done = 0; done < kShare;) {
                    const std::uint64_t end = done + g < kShare ? done + g : kShare;
                    std::uint64_t x = *s;
                    for (; done < end; ++done) x = work_unit(x);
                    *s = x;
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
        benchmark::DoNotOptimize(shared);
    }
    const double iters = static_cast<double>(st.iterations());
    m.finish(iters > 0 ? 2.0 * static_cast<double>(resumes) / iters : 0);
    st.counters["units"] = static_cast<double>(kUnits);
    st.counters["G"] = static_cast<double>(g);
    st.counters["K"] = kCoroutines;
}
BENCHMARK(BM_WorkCoroutines)->RangeMultiplier(2)->Range(1, 1024);

} // namespace

COOP_BENCH_MAIN()
