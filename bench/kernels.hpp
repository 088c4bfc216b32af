// bench/kernels.hpp — the small pieces of code that the benchmark suites and
// the per-CPU study (tools/coop_study.cpp) time in exactly the same form.
#ifndef COOP_BENCH_KERNELS_HPP
#define COOP_BENCH_KERNELS_HPP

#include <coop/context.h>

#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#  include <x86intrin.h>
#endif

#if defined(__clang__)
#  define COOP_BENCH_OPAQUE __attribute__((noinline))
#else
#  define COOP_BENCH_OPAQUE __attribute__((noipa))
#endif

namespace coop_bench {

// The cycle counter the suites and coop-study read (see bench_util.hpp for
// what its ticks mean per architecture).
inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
    return __rdtsc();
#elif defined(__aarch64__)
    std::uint64_t v;
    asm volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(v) : : "memory");
    return v;
#else
    return static_cast<std::uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}


// An out-of-line function the optimizer knows nothing about: calling it is a
// real call + ret; the empty asm hides that the argument comes back.
COOP_BENCH_OPAQUE inline void* direct_callee(void* p) {
    asm volatile("" : "+r"(p));
    return p;
}

// The other side of a raw round trip: hands back whatever it receives.
inline void echo_entry(coop_transfer t) {
    for (;;) t = coop_jump(t.ctx, t.data);
}
inline void echo_entry_fp(coop_transfer t) {
    for (;;) t = coop_jump_fp(t.ctx, t.data);
}

// One unit of CPU-bound work: 2 rounds of add/xor/rotate on four independent
// lanes, about 20 instructions with the call (~3 ns on the development
// machine) that keep the integer units busy (throughput bound). The unit is
// small on purpose: the out-of-order core overlaps a coroutine switch with
// the work around it, so with larger units (or a latency-bound chain of
// multiplies, whose idle slots the switch fills) even a yield after every
// unit costs next to nothing and the curve of question 2 is all noise.
COOP_BENCH_OPAQUE inline std::uint64_t work_unit(std::uint64_t x) {
    std::uint64_t a = x, b = x ^ 0x9e3779b97f4a7c15ull, c = x + 0x632be59bd9b4e019ull, d = ~x;
    for (int i = 0; i < 2; ++i) {
        a += b;
        b ^= (a << 7) | (a >> 57);
        c += d;
        d ^= (c << 13) | (c >> 51);
        asm volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
    }
    return a ^ b ^ c ^ d;
}

} // namespace coop_bench

#endif
