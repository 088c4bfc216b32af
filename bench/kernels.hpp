// bench/kernels.hpp — the code that the benchmark suites (bench/*_bench.cpp)
// and the per-CPU study (tools/coop_study.cpp) both time, defined once.
//
// A kernel is the timed operation and the setup it needs; the harness
// around it (Google Benchmark's loop, or coop-study's batches pinned to one
// CPU) is the caller's. Each kernel says what one call is, in switches.
// Nothing here depends on Google Benchmark: keep() is the one "the value is
// used" barrier, and both harnesses may add their own on top.
#ifndef COOP_BENCH_KERNELS_HPP
#define COOP_BENCH_KERNELS_HPP

#include <coop/context.h>
#include <coop/coroutine.hpp>
#include <coop/reactor.hpp>
#include <coop/stack.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#  include <x86intrin.h>
#endif

#if defined(__clang__)
#  define COOP_BENCH_OPAQUE __attribute__((noinline))
#else
#  define COOP_BENCH_OPAQUE __attribute__((noipa))
#endif

// The floors, hand-written per architecture in bench/floor_<arch>.S (see
// there, line by line): two minimal switches that differ only in their last
// instruction, and one save + restore of the FP control state.
extern "C" {
void* coop_floor_make(void* top, void (*entry)(void));
void coop_floor_switch_ret(void** save, void* to);
void coop_floor_switch_jmp(void** save, void* to);
void coop_floor_fp_env(void);
}

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

// The value is needed (in a register or in memory) and memory may have
// changed: the optimizer can neither drop the computation nor hoist it.
template <class T>
inline void keep(T const& v) noexcept {
    asm volatile("" : : "r,m"(v) : "memory");
}

// ------------------------------------------------------------ direct call
// An out-of-line function the optimizer knows nothing about: calling it is a
// real call + ret; the empty asm hides that the argument comes back.
COOP_BENCH_OPAQUE inline void* direct_callee(void* p) {
    asm volatile("" : "+r"(p));
    return p;
}

// ------------------------------------------------------------ raw switch
// The other side of a raw round trip: hands back whatever it receives.
inline void echo_entry(coop_transfer t) {
    for (;;) t = coop_jump(t.ctx, t.data);
}
inline void echo_entry_fp(coop_transfer t) {
    for (;;) t = coop_jump_fp(t.ctx, t.data);
}

// coop_jump (or coop_jump_fp) into an echo context and back: round_trip()
// is 2 switches. The echo context stays suspended when this is destroyed;
// its stack holds no objects with destructors, so unmapping it is all the
// cleanup there is.
class raw_pair {
public:
    explicit raw_pair(bool fp)
        : stack_(64 * 1024),
          ctx_(coop_make(stack_.top(), stack_.size(), fp ? echo_entry_fp : echo_entry)),
          jump_(fp ? coop_jump_fp : coop_jump) {}
    void* round_trip(void* p) {
        coop_transfer t = jump_(ctx_, p);   // switch 1: into the echo context
        ctx_ = t.ctx;                       // switch 2 happened: it jumped back
        return t.data;
    }

private:
    coop::stack stack_;
    coop_ctx ctx_;
    coop_transfer (*jump_)(coop_ctx, void*);
};

// ------------------------------------------------------------ coroutines
// A coroutine that yields back whatever it is resumed with. With depth D > 0
// the yield happens D non-inlined calls below the body's loop, as in code
// that yields from a helper, a parser or a recursive traversal: the loop
// calls yield_at_depth<D>, which calls <D-1>, ... and <1> yields. coop's
// switches use neither call nor ret, so the return-stack buffer stays in
// step with each stack and a level should cost about a call and a return;
// anything beyond that is what this CPU's predictors make of the pattern.
template <int D>
COOP_BENCH_OPAQUE void* yield_at_depth(coop::yielder& y, void* v) {
    if constexpr (D <= 1) {
        v = y.yield(v);
    } else {
        v = yield_at_depth<D - 1>(y, v);
    }
    asm volatile("" : "+r"(v));             // work after the call: no tail call
    return v;
}

template <int D>
coop::coroutine make_echo_coroutine(const coop::coroutine_options& o) {
    return coop::coroutine(
        [](coop::yielder& y, void* v) {
            for (;;) {
                if constexpr (D == 0)
                    v = y.yield(v);
                else
                    v = yield_at_depth<D>(y, v);
            }
        },
        o);
}

// resume() + yield: round_trip() is 2 switches. `depth` is 0 (the yield is
// in the body's loop), 1, 4 or 16; `fp` asks for preserve_fp_env.
class echo_coroutine {
public:
    explicit echo_coroutine(int depth = 0, bool fp = false) {
        coop::coroutine_options o;
        o.preserve_fp_env = fp;
        switch (depth) {
        case 0: co_ = make_echo_coroutine<0>(o); break;
        case 1: co_ = make_echo_coroutine<1>(o); break;
        case 4: co_ = make_echo_coroutine<4>(o); break;
        case 16: co_ = make_echo_coroutine<16>(o); break;
        default: throw std::invalid_argument("echo_coroutine: depth must be 0, 1, 4 or 16");
        }
    }
    static constexpr std::array<int, 3> depths{1, 4, 16};
    void* round_trip(void* p) { return co_.resume(p); }

private:
    coop::coroutine co_;
};

// n echo coroutines resumed in turn: turn() is n resumes (2n switches).
// What a resume costs once the coroutines' stacks and control blocks no
// longer share a few cache lines, as for a scheduler with many tasks.
class round_robin {
public:
    explicit round_robin(int n) {
        cos_.reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) cos_.push_back(make_echo_coroutine<0>({}));
    }
    void* turn(void* p) {
        for (coop::coroutine& co : cos_) p = co.resume(p);
        return p;
    }
    int size() const noexcept { return static_cast<int>(cos_.size()); }

private:
    std::vector<coop::coroutine> cos_;
};

// ------------------------------------------------------------ reactor
// Runs body() in one task of a fresh reactor while n - 1 other tasks call
// coop::yield() in a loop: each coop::yield() of body is then one turn of
// all n tasks, n hops. Returns when body does.
template <class Body>
void with_yielders(int n, Body&& body) {
    coop::reactor r;
    bool stop = false;
    for (int i = 1; i < n; ++i)
        r.spawn([&stop] {
            while (!stop) coop::yield();
        });
    r.spawn([&] {
        body();
        stop = true;
    });
    r.run();
}

// Runs body(reactor&) in a task of a fresh reactor; returns when it does.
template <class Body>
void in_task(Body&& body) {
    coop::reactor r;
    r.spawn([&] { body(r); });
    r.run();
}

// From inside a task of r: spawn a task that does next to nothing, join it.
// Pooled stack, control block, 4 switches (the caller parks, the child runs,
// the child ends, the caller resumes).
inline void spawn_join(coop::reactor& r, int& x) {
    coop::task t = r.spawn([&x] { keep(++x); });
    t.join();
}

// ------------------------------------------------------------ floors
// One of bench/floor_<arch>.S's switches, in a ping-pong with a context that
// switches straight back: round_trip() is 2 switches that save and restore
// the callee-saved registers and nothing else (no value passes).
template <void (*Switch)(void**, void*)>
class floor_pair {
public:
    floor_pair() : stack_(64 * 1024) {
        other_ = coop_floor_make(stack_.top(), &echo);
        current_ = this;
        round_trip();                       // start the echo context: it reads current_
    }
    void round_trip() { Switch(&driver_, other_); }

private:
    [[noreturn]] static void echo() {
        floor_pair* self = current_;
        for (;;) Switch(&self->other_, self->driver_);
    }
    static inline thread_local floor_pair* current_ = nullptr;
    coop::stack stack_;
    void* other_ = nullptr;                 // the echo context while we run
    void* driver_ = nullptr;                // ours while the echo context runs
};
using floor_ret = floor_pair<coop_floor_switch_ret>;
using floor_jmp = floor_pair<coop_floor_switch_jmp>;

// ------------------------------------------------------------ CPU-bound work
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

// kWorkUnits units by direct calls, on the caller's stack.
inline constexpr std::uint64_t kWorkUnits = 4096;
inline constexpr int kWorkCoroutines = 4;

inline std::uint64_t direct_work(std::uint64_t x) {
    for (std::uint64_t i = 0; i < kWorkUnits; ++i) x = work_unit(x);
    return x;
}

// The same kWorkUnits split evenly across kWorkCoroutines coroutines, each
// yielding to the driver after every g units; run() resumes them round-robin
// until all are done and returns how many resumes that took (each resume +
// yield is 2 switches). All coroutines advance ONE shared state, so the work
// is a single chain of dependent arithmetic exactly as in direct_work: the
// out-of-order core cannot overlap one coroutine's slice with the next one's
// (with independent chains, interleaving would make the split version faster
// than the direct one, which is instruction-level parallelism, not a
// property of coroutines). The coroutines live across runs (each finishes
// its share, yields nullptr, and starts the next share), so what is timed is
// switching, not creation.
class split_work {
public:
    explicit split_work(std::uint64_t g) {
        constexpr std::uint64_t share = kWorkUnits / kWorkCoroutines;
        for (coop::coroutine& co : cos_) {
            co = coop::coroutine([g, s = &shared_](coop::yielder& y) {
                for (;;) {
                    for (std::uint64_t done = 0; done < share;) {
                        const std::uint64_t end = done + g < share ? done + g : share;
                        std::uint64_t x = *s;
                        for (; done < end; ++done) x = work_unit(x);
                        *s = x;
                        if (done < share) y.yield(s);
                    }
                    y.yield(nullptr);       // share finished
                }
            });
        }
    }
    split_work(const split_work&) = delete;
    split_work& operator=(const split_work&) = delete;

    std::uint64_t run() {
        std::array<bool, kWorkCoroutines> running{};
        running.fill(true);
        int live = kWorkCoroutines;
        std::uint64_t resumes = 0;
        while (live > 0) {
            for (int k = 0; k < kWorkCoroutines; ++k) {
                if (!running[k]) continue;
                ++resumes;
                if (cos_[k].resume() == nullptr) {
                    running[k] = false;
                    --live;
                }
            }
        }
        keep(shared_);
        return resumes;
    }

private:
    std::uint64_t shared_ = 1;              // the one chain all coroutines advance
    std::array<coop::coroutine, kWorkCoroutines> cos_;
};

} // namespace coop_bench

#endif
