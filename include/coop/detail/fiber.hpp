// coop/detail/fiber.hpp — fibers, the coroutine layer's unit of execution,
// and the one switch between two of them.
//
// A fiber is a body running on a pooled stack of its own, with its control
// block (struct fiber) at the top of that stack. coroutine.hpp builds
// coop::coroutine's asymmetric resume/yield on it; the reactor builds tasks
// and hand-off scheduling on it (a task switches straight to the next
// runnable task). This header is the interface between coop's own layers,
// not a stable public one; names here may change.
//
// What a switch carries from one execution to the other (switch_to):
//   - the registers and stack: the inline switch of fiber_switch.hpp;
//   - the C++ exception state: the runtime keeps the caught-exceptions stack
//     and std::uncaught_exceptions() per thread (__cxa_get_globals(), the
//     same two fields in libstdc++'s libsupc++ and in libc++abi); each
//     execution keeps its own, saved at every switch away and put back at
//     every switch in, so a catch block or a destructor that yields never
//     sees another fiber's exceptions;
//   - the FP control state, for fibers that keep their own (ctx_keep_fp):
//     each such fiber has its own, and every other execution on the thread
//     shares one, whichever order the switches come in (hand-off included);
//   - coop's per-thread record of what runs (thread_state::current);
//   - the sanitizers' view of the stacks (fiber_hooks.hpp).
//
// State machine of a fiber (fiber::state):
//   created ──first switch in──▶ running ◀──switch in── suspended
//                                   │  ╲──switch away──▶ ╱
//                                   ▼ body returned, threw, or was unwound
//                                finished
//   suspended/running ──cannot be unwound──▶ abandoned (stack leaked, diagnosed)
// A fiber is running on at most one thread at a time; only a suspended or
// created fiber may be switched to; only a created, finished or suspended
// (it is then unwound first) fiber may be destroyed.
//
// Threads. A fiber may be suspended on one thread and continued on another.
// Compilers keep the address of a thread_local in a register across code
// they believe cannot change threads (AArch64 reads tpidr_el0 once per
// function; errno's __errno_location() is declared const on every arch), so
// after a switch such an address may still point at the previous thread's
// variable. coop's own per-thread state is therefore reached only through
// this_thread(), whose thread-pointer read is an asm volatile the compiler
// may neither merge nor move across the switch. coop/fiber_local.hpp gives
// programs the same for their own thread_locals and errno.
#ifndef COOP_DETAIL_FIBER_HPP
#define COOP_DETAIL_FIBER_HPP

#include <coop/detail/fiber_hooks.hpp>
#include <coop/detail/fiber_switch.hpp>
#include <coop/export.h>
#include <coop/stack.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

namespace coop {

struct coroutine_options {
    // Usable stack bytes: rounded up to whole pages and to at least
    // min_stack_size; taken from the thread's pool.
    std::size_t stack_size = default_stack_size;
    // Save/restore the FP control state per fiber (see coroutine.hpp).
    bool preserve_fp_env = false;
    // For stack-overflow reports and debugging; copied (up to 31 bytes).
    const char* name = nullptr;
};

// The smallest stack a coroutine or task gets: smaller requests are raised
// to it. It leaves room for the control block at the top of the stack (with
// its cache-colour offset, under 4 KiB) and at least 8 KiB to run on.
inline constexpr std::size_t min_stack_size = 16 * 1024;

// Thrown from the switch a suspended fiber is parked in when the fiber is
// destroyed (coroutine destructor, reactor teardown): it unwinds the fiber's
// stack so destructors run. Not a std::exception; a catch (...) inside a
// fiber must rethrow it.
struct COOP_API forced_unwind {};   // exported: its typeinfo must be one across libcoop.so

namespace detail {

struct fiber;

// The C++ runtime's per-thread exception state (Itanium C++ ABI
// __cxa_eh_globals): the stack of caught exceptions and the count
// std::uncaught_exceptions() reports.
struct eh_state {
    void* caught = nullptr;
    unsigned int uncaught = 0;
};

// One side of a switch: an execution that is suspended (or about to be).
// A fiber has one for itself; a coroutine also keeps one for whoever
// resumed it, and a reactor one for its run() loop.
struct fiber_ctx {
    void* sp = nullptr;             // suspended stack pointer (fiber_layout.h)
    fiber* owner = nullptr;         // the fiber this is; null for a thread's own stack
    eh_state eh;                    // its exception state while it does not run (ctx_holds_eh)
    fp_control fp{};                // its FP control state while it does not run (ctx_fp_saved)
    std::uint8_t flags = 0;         // ctx_* below; one byte, so a switch tests both sides at once
    // The sanitizers' view (set and used in sanitizer builds only; present
    // always so that the layout does not depend on the build).
    const void* stack_lo = nullptr; // ASan: the stack's range
    std::size_t stack_size = 0;
    void* tsan = nullptr;           // TSan: its fiber
};

// fiber_ctx::flags. A switch takes its slow path when either side has one
// of ctx_special set, or the running side has exception state.
inline constexpr std::uint8_t ctx_keep_fp = 1;   // has an FP control state of its own ...
inline constexpr std::uint8_t ctx_fp_saved = 2;  // ... saved in fp (else it starts with the shared one)
inline constexpr std::uint8_t ctx_holds_eh = 4;  // eh holds exception state to put back
inline constexpr std::uint8_t ctx_special = ctx_keep_fp | ctx_holds_eh;

enum class fiber_state : unsigned char { created, running, suspended, finished, abandoned };

// Bytes a fiber reserves for a scheduler's per-fiber record (fiber::sched_space).
inline constexpr std::size_t fiber_sched_space = 96;

// How a fiber runs its callable: (fiber, data of the first switch in) ->
// what the body returned (for coroutine::resume).
using fiber_run = void* (*)(fiber*, void*);

// The control block, at the top of the fiber's own stack.
struct fiber {
    fiber_ctx self;                 // this fiber while it does not run
    fiber_ctx caller;               // who resumed it (coroutine resume/yield, unwinding)
    fiber_ctx* exit_to = &caller;   // where it continues when its body has ended
    fiber_state state = fiber_state::created;
    bool unwinding = false;         // being destroyed: switches into it throw forced_unwind
    bool nothrow_body = false;      // the callable is noexcept: forced_unwind cannot cross it
    unsigned char unwind_throws = 0;// forced_unwinds thrown so far (a body may swallow some)
    fiber_run run = nullptr;
    void (*destroy_callable)(fiber*) noexcept = nullptr;
    void* result = nullptr;         // what the body returned
    std::exception_ptr error;       // escaped the body; rethrown by coroutine::resume
    bool scheduled = false;         // sched_space holds a scheduler's record: a reactor task
    std::uint64_t id = 0;           // unique per process
    coop::stack stk;                // owns the memory this block lives in
    char name[32] = {};
    // Room for the record a scheduler keeps per fiber (the reactor's task
    // block), at a fixed place: between a fiber and its record is an
    // address computation, not a load (scheduled says whether it is used).
    alignas(16) unsigned char sched_space[fiber_sched_space];
};
// Standard layout: offsetof(fiber, sched_space) is well defined.
static_assert(std::is_standard_layout_v<fiber>, "fiber must stay standard-layout");

// A fiber together with its callable.
template <class Impl>
struct fiber_with : fiber {
    Impl value;
    template <class... A>
    explicit fiber_with(A&&... a) : value(std::forward<A>(a)...) {}
};

// coop's state for one thread.
struct thread_state {
    fiber* current;                 // the fiber running on this thread; null on its own stack
    eh_state* eh;                   // this thread's __cxa_get_globals(), looked up once
    fiber_ctx* left;                // the side the last switch on this thread left (sanitizer builds)
    fp_control shared_fp;           // the FP control state of the executions without their own,
                                    // while one with its own (ctx_keep_fp) runs
};

// Defined in src/fiber.cpp. Reached only through this_thread().
[[gnu::tls_model("initial-exec")]] COOP_API extern constinit thread_local thread_state
    coop_thread_state asm("coop_thread_state");

COOP_API thread_state* this_thread_slow() noexcept;

// The calling thread's state, read afresh at every call (see the file
// comment). Initial-exec TLS: one instruction for the thread pointer, one
// GOT load the linker turns into a constant where it can, one add.
inline thread_state* this_thread() noexcept {
#if defined(__x86_64__) && defined(__ELF__)
    thread_state* p;
    asm volatile("movq %%fs:0, %0\n\t"
                 "addq coop_thread_state@gottpoff(%%rip), %0"
                 : "=r"(p));
    return p;
#elif defined(__aarch64__) && defined(__ELF__)
    thread_state* p;
    std::uintptr_t off;
    asm volatile("mrs  %0, tpidr_el0\n\t"
                 "adrp %1, :gottprel:coop_thread_state\n\t"
                 "ldr  %1, [%1, #:gottprel_lo12:coop_thread_state]\n\t"
                 "add  %0, %0, %1"
                 : "=&r"(p), "=&r"(off));
    return p;
#else
    return this_thread_slow();      // out of line, with a compiler barrier inside
#endif
}

COOP_API eh_state* init_eh(thread_state* ts) noexcept;
// The thread's exception state g moves from the running side into its
// record, the other side's out of its record (a record holds exception
// state only while suspended, under ctx_holds_eh).
inline void move_eh(eh_state* g, fiber_ctx& from, fiber_ctx& to) noexcept {
    if (g->caught || g->uncaught) {
        from.eh = *g;
        from.flags |= ctx_holds_eh;
    }
    if (to.flags & ctx_holds_eh) {
        *g = to.eh;
        to.flags &= static_cast<std::uint8_t>(~ctx_holds_eh);
    } else {
        *g = eh_state{};
    }
}
// A switch where either side has exception state or keeps its own FP
// control state: move_eh(), and for FP the leaving side's state is saved
// and the arriving side's (or the thread's shared one) put back.
COOP_API void switch_special(thread_state* ts, eh_state* g, fiber_ctx& from, fiber_ctx& to) noexcept;

// Suspend `from`, which runs on this thread, and continue `to` (suspended
// or created), handing `data` over. Returns the data handed back by the
// switch that continues `from` later, possibly on another thread. The
// caller keeps the fibers' `state` fields. Always inlined, as are the
// functions around it that switch (resume, yield, park, switch_away): every
// call site gets its own indirect jump, and no call/ret pair straddles a
// switch (a ret would be predicted to return to the wrong fiber's caller).
[[gnu::always_inline]] inline void* switch_to(thread_state* ts, fiber_ctx& from, fiber_ctx& to,
                                              void* data) noexcept {
    // Exception and FP control state. Almost always nobody has any and both
    // share the thread's FP state: then nothing is written, so no switch
    // waits on the stores of the one before it.
    eh_state* g = ts->eh;
    if (!g) [[unlikely]]
        g = init_eh(ts);
    if ((((from.flags | to.flags) & ctx_special) | reinterpret_cast<std::uintptr_t>(g->caught) |
         g->uncaught) != 0) [[unlikely]] {
        if (!((from.flags | to.flags) & ctx_keep_fp)) {   // exceptions only: no call
            move_eh(g, from, to);
        } else {
            switch_special(ts, g, from, to);
        }
    }
    ts->current = to.owner;
#if defined(COOP_ASAN) || defined(COOP_TSAN)
    ts->left = &from;
#endif
    void* fake_stack = nullptr;
    hooks::asan_leave(&fake_stack, to.stack_lo, to.stack_size);
#if defined(COOP_TSAN)
    from.tsan = hooks::tsan_current();
    hooks::tsan_switch(to.tsan);
#endif
    data = fiber_switch(to.sp, &from.sp, data);
#if defined(COOP_ASAN)
    // We are back, perhaps on another thread: learn the stack we came from.
    fiber_ctx* came = this_thread()->left;
    hooks::asan_arrive(fake_stack, &came->stack_lo, &came->stack_size);
#endif
    return data;
}

// ------------------------------------------------------------- building

COOP_API void init_fiber(fiber* f, coop::stack&& s, const coroutine_options& o, fiber_run run,
                         void (*destroy)(fiber*) noexcept, bool nothrow_body);
[[noreturn]] COOP_API void throw_callable_too_large(std::size_t callable, std::size_t stack);
COOP_API std::size_t next_colour() noexcept;

template <class Impl>
void destroy_callable(fiber* f) noexcept {
    static_cast<fiber_with<Impl>*>(f)->~fiber_with<Impl>();
}

// Build a fiber running `run` over an Impl constructed from args, at the top
// of a pooled stack. The block is placed a cache-colour offset below the top
// (a multiple of 64 bytes, cycling per thread): the stacks' tops are all
// page-aligned, so without it every fiber's hottest lines (the block and the
// switch frames) would fall into the same few L1 sets.
template <class Impl, class... Args>
fiber_with<Impl>* make_fiber(const coroutine_options& o, fiber_run run, bool nothrow_body,
                             Args&&... args) {
    using F = fiber_with<Impl>;
    const std::size_t want = o.stack_size < min_stack_size && o.stack_size != 0 ? min_stack_size
                                                                                : o.stack_size;
    coop::stack s = coop::stack::pooled(want);
    const auto top = reinterpret_cast<std::uintptr_t>(s.top());
    constexpr std::uintptr_t align = alignof(F) > 16 ? alignof(F) : 16;
    std::uintptr_t at = (top - next_colour() - sizeof(F)) & ~(align - 1);
    if (at < reinterpret_cast<std::uintptr_t>(s.bottom()) + min_stack_size / 2) [[unlikely]]
        throw_callable_too_large(sizeof(F), s.size());
    F* f = ::new (reinterpret_cast<void*>(at)) F(std::forward<Args>(args)...);
    init_fiber(f, std::move(s), o, run, &destroy_callable<Impl>, nothrow_body);
    return f;
}

// ------------------------------------------------------------- ending

// Where a switch into a fiber that is being unwound lands: throws
// forced_unwind, or returns when the fiber may not unwind further right now
// (inside a destructor that runs because of the unwinding), or, when the
// fiber cannot be unwound at all, abandons it (see destroy_fiber).
COOP_API void unwind_point(fiber* f);

// True while the running fiber is unwinding and inside a destructor run by
// that unwinding: a switch away now would have nobody to come back for it.
COOP_API bool unwinding_in_destructor(const fiber* f) noexcept;

// Make a suspended fiber end: its next switch-in throws forced_unwind,
// repeatedly while it keeps swallowing it (a bounded number of times). It
// ends finished, or abandoned with a one-line diagnosis on stderr when it
// cannot be unwound (a noexcept body, forced_unwind reaching a noexcept
// function, a body that never stops swallowing it). Its exit goes to the
// caller's side: the fiber is resumed from here.
COOP_API void unwind_fiber(fiber* f) noexcept;

// Unwind if suspended, then free: the callable and the control block are
// destroyed and the stack goes back to the pool. An abandoned fiber is left
// as it is. Aborts with a message for a running fiber.
COOP_API void destroy_fiber(fiber* f) noexcept;

} // namespace detail
} // namespace coop

#endif
