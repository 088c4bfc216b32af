// bench/bench_util.hpp — helpers shared by the coop benchmark suites.
//
// Cycle counts. Every benchmark that reports a per-iteration cost also
// reports a "cycles" counter next to Google Benchmark's nanoseconds:
//   x86-64:  rdtsc. The TSC ticks at the CPU's nominal (invariant) rate, not
//            at the momentary core clock, so under turbo or in a VM these are
//            "reference cycles". The suite's context records the measured
//            TSC rate so the summary can say so.
//   AArch64: cntvct_el0, the generic timer, which ticks at cntfrq_el0 (often
//            24 MHz–1 GHz, far below the core clock). It is scaled to CPU
//            cycles with the maximum frequency from cpufreq when the kernel
//            exposes it, otherwise left as timer ticks scaled to 1 GHz
//            (i.e. nanoseconds); the context says which.
// The counter is read once before and once after the timed loop, so its own
// cost is spread over all iterations and never subtracted.
#ifndef COOP_BENCH_UTIL_HPP
#define COOP_BENCH_UTIL_HPP

#include <benchmark/benchmark.h>

#include "kernels.hpp"   // coop_bench::ticks()

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>


namespace coop_bench {


struct tick_scale {
    double to_cycles = 1.0;        // multiply ticks by this to get cycles
    double tick_hz = 0.0;          // rate of the raw counter
    std::string source;            // what "cycles" means on this machine
};

// Measured once per process: how fast the raw counter runs, and how to turn
// its ticks into CPU cycles.
inline const tick_scale& scale() {
    static const tick_scale s = [] {
        tick_scale r;
        using clk = std::chrono::steady_clock;
        const auto t0 = clk::now();
        const std::uint64_t c0 = ticks();
        while (clk::now() - t0 < std::chrono::milliseconds(20)) {
        }
        const std::uint64_t c1 = ticks();
        const double secs = std::chrono::duration<double>(clk::now() - t0).count();
        r.tick_hz = static_cast<double>(c1 - c0) / secs;
#if defined(__x86_64__)
        r.source = "rdtsc (TSC reference cycles, nominal rate)";
#elif defined(__aarch64__)
        std::uint64_t frq;
        asm volatile("mrs %0, cntfrq_el0" : "=r"(frq));
        r.tick_hz = static_cast<double>(frq);
        double cpu_hz = 0;
        if (std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "r")) {
            double khz = 0;
            if (std::fscanf(f, "%lf", &khz) == 1) cpu_hz = khz * 1e3;
            std::fclose(f);
        }
        if (cpu_hz > 0) {
            r.to_cycles = cpu_hz / r.tick_hz;
            r.source = "cntvct_el0 scaled by cpuinfo_max_freq/cntfrq_el0";
        } else {
            r.to_cycles = 1e9 / r.tick_hz;
            r.source = "cntvct_el0 scaled to 1 GHz (cpufreq unreadable: cycles = ns)";
        }
#else
        r.to_cycles = 1.0;
        r.source = "steady_clock ticks";
#endif
        return r;
    }();
    return s;
}

// Brackets a timed loop: sets the "cycles" counter (per iteration) and, when
// given, a "switches" counter saying how many context switches one iteration
// performs.
class cycle_meter {
public:
    explicit cycle_meter(benchmark::State& st) : st_(st), start_(ticks()) {}
    void finish(double switches_per_iter = 0) {
        const std::uint64_t end = ticks();
        const double c = static_cast<double>(end - start_) * scale().to_cycles;
        st_.counters["cycles"] = benchmark::Counter(c, benchmark::Counter::kAvgIterations);
        if (switches_per_iter > 0)
            st_.counters["switches"] = switches_per_iter;
    }

private:
    benchmark::State& st_;
    std::uint64_t start_;
};

// Records what the "cycles" counters mean; call from main() before running.
inline void add_context() {
    const tick_scale& s = scale();
    benchmark::AddCustomContext("coop_cycle_source", s.source);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.0f", s.tick_hz);
    benchmark::AddCustomContext("coop_tick_hz", buf);
    std::snprintf(buf, sizeof buf, "%.6f", s.to_cycles);
    benchmark::AddCustomContext("coop_ticks_to_cycles", buf);
#if defined(__VERSION__)
    benchmark::AddCustomContext("coop_compiler", __VERSION__);
#endif
#if defined(COOP_BENCH_FLAGS)
    benchmark::AddCustomContext("coop_flags", COOP_BENCH_FLAGS);
#endif
}

} // namespace coop_bench

// Each suite's main(): the usual Google Benchmark main plus our context.
#define COOP_BENCH_MAIN()                                                   \
    int main(int argc, char** argv) {                                       \
        benchmark::Initialize(&argc, argv);                                 \
        if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;   \
        coop_bench::add_context();                                          \
        benchmark::RunSpecifiedBenchmarks();                                \
        benchmark::Shutdown();                                              \
        return 0;                                                           \
    }

#endif
