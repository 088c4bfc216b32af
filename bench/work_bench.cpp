// bench/work_bench.cpp — CPU-bound work gains nothing from coroutines.
//
// A fixed amount of arithmetic (kWorkUnits calls of work_unit(), throughput-
// bound ALU work the optimizer cannot see through; see kernels.hpp) is done
//   BM_WorkDirect           by plain direct calls on the thread's stack;
//   BM_WorkCoroutines/G     split evenly across kWorkCoroutines stackful
//                           coroutines, each yielding to the driver after
//                           every G units; the driver resumes them round-robin.
// Every resume+yield is a round trip of 2 switches; the "switches" counter
// says how many one iteration performs (2 * kWorkUnits / G). The overhead
// (BM_WorkCoroutines/G ÷ BM_WorkDirect − 1) shrinks as G grows: the curve
// where the switch cost disappears into the work. The coroutines live across
// iterations (each finishes its share, reports, and starts the next share),
// so what is measured is switching, not creation.
#include "bench_util.hpp"
#include "kernels.hpp"

#include <cstdint>

namespace {

using coop_bench::kWorkCoroutines;
using coop_bench::kWorkUnits;

void BM_WorkDirect(benchmark::State& st) {
    std::uint64_t x = 1;
    coop_bench::cycle_meter m(st);
    for (auto _ : st) {
        x = coop_bench::direct_work(x);
        benchmark::DoNotOptimize(x);
    }
    m.finish();
    st.counters["units"] = static_cast<double>(kWorkUnits);
    st.counters["G"] = static_cast<double>(kWorkUnits);
}
BENCHMARK(BM_WorkDirect);

void BM_WorkCoroutines(benchmark::State& st) {
    coop_bench::split_work k(static_cast<std::uint64_t>(st.range(0)));
    coop_bench::cycle_meter m(st);
    std::uint64_t resumes = 0;
    for (auto _ : st) resumes += k.run();
    const double iters = static_cast<double>(st.iterations());
    m.finish(iters > 0 ? 2.0 * static_cast<double>(resumes) / iters : 0);
    st.counters["units"] = static_cast<double>(kWorkUnits);
    st.counters["G"] = static_cast<double>(st.range(0));
    st.counters["K"] = kWorkCoroutines;
}
BENCHMARK(BM_WorkCoroutines)->RangeMultiplier(2)->Range(1, 1024);

} // namespace

COOP_BENCH_MAIN()
