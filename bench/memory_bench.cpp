// bench/memory_bench.cpp — what a parked task costs in memory.
//
//   BM_SleepingTasksMemory/N   spawns N tasks that each call
//                              coop::sleep_for(1 h); once all of them are
//                              parked, reads the process's resident set and
//                              page-table size and reports the growth per
//                              task; then cancels them all (they return
//                              ECANCELED and end). One iteration, one
//                              repetition: this is a measurement of memory,
//                              its time is only the cost of the experiment.
//
// Counters: rss_delta (bytes), rss_per_task (bytes), pte_per_task (bytes of
// page tables, not part of RSS), maps_per_task (kernel VMAs, bounded by
// vm.max_map_count), spawn_ns_per_task. The baseline is taken after the
// handle vector is reserved, so it counts what the tasks themselves need:
// touched stack pages, control blocks (inside those pages), timer heap.
// COOP_BENCH_SLEEPERS=N in the environment replaces the default 100 000.
#include "bench_util.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <coop/reactor.hpp>

namespace {

// kB fields of /proc/self/status (VmRSS, VmPTE), in bytes; -1 if unreadable.
long long status_bytes(const char* key) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const std::size_t n = std::strlen(key);
    while (std::getline(f, line))
        if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
            return std::atoll(line.c_str() + n + 1) * 1024;
    return -1;
}

long long map_count() {
    std::ifstream f("/proc/self/maps");
    std::string line;
    long long n = 0;
    while (std::getline(f, line)) ++n;
    return n;
}

int sleepers() {
    if (const char* e = std::getenv("COOP_BENCH_SLEEPERS")) {
        int n = std::atoi(e);
        if (n > 0) return n;
    }
    return 100000;
}

void BM_SleepingTasksMemory(benchmark::State& st) {
    const int n = static_cast<int>(st.range(0));
    for (auto _ : st) {
        coop::reactor r;
        std::vector<coop::task> ts;
        ts.reserve(static_cast<std::size_t>(n));
        coop::stack_pool_trim();     // no pooled stacks left from earlier work
        const long long rss0 = status_bytes("VmRSS");
        const long long pte0 = status_bytes("VmPTE");
        const long long maps0 = map_count();
        long long rss1 = 0, pte1 = 0, maps1 = 0;
        double spawn_ns = 0;
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i)
            ts.push_back(r.spawn([] { coop::sleep_for(std::chrono::hours(1)); }));
        spawn_ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
        // Runs after every sleeper has run up to its park (FIFO run queue).
        r.spawn([&] {
            rss1 = status_bytes("VmRSS");
            pte1 = status_bytes("VmPTE");
            maps1 = map_count();
            for (coop::task& t : ts) t.cancel();
        });
        r.run();
        const double per = n ? static_cast<double>(rss1 - rss0) / n : 0;
        st.counters["tasks"] = n;
        st.counters["rss_delta"] = static_cast<double>(rss1 - rss0);
        st.counters["rss_per_task"] = per;
        st.counters["pte_per_task"] = n ? static_cast<double>(pte1 - pte0) / n : 0;
        st.counters["maps_per_task"] = n ? static_cast<double>(maps1 - maps0) / n : 0;
        st.counters["spawn_ns_per_task"] = n ? spawn_ns / n : 0;
        st.counters["stack_reserved"] = static_cast<double>(coop::default_stack_size);
    }
}
BENCHMARK(BM_SleepingTasksMemory)
    ->Arg(sleepers())
    ->Iterations(1)
    ->Repetitions(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

} // namespace

COOP_BENCH_MAIN()
