// src/fiber.cpp — the out-of-line parts of fibers and coroutines
// (coop/detail/fiber.hpp, coop/coroutine.hpp): the per-thread state, the
// first and the last code a fiber runs, unwinding and abandoning, ids and
// cache colours, error reporting. The switches themselves are inline.
#include "coop/coroutine.hpp"
#include "coop/fiber_local.hpp"
#include "overflow_internal.hpp"

#include <cxxabi.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>

namespace coop::detail {

constinit thread_local thread_state coop_thread_state asm("coop_thread_state") = {};

thread_state* this_thread_slow() noexcept {
    asm volatile("" ::: "memory");   // a fresh thread-pointer read at every call
    return &coop_thread_state;
}

eh_state* init_eh(thread_state* ts) noexcept {
    // The Itanium C++ ABI's __cxa_eh_globals starts with the caught-exceptions
    // stack (a pointer) and the uncaught count (an unsigned int), in both
    // libstdc++'s libsupc++ and libc++abi; eh_state mirrors exactly those
    // two fields and switch_to copies nothing else.
    ts->eh = reinterpret_cast<eh_state*>(abi::__cxa_get_globals());
    return ts->eh;
}

void switch_special(thread_state* ts, eh_state* g, fiber_ctx& from, fiber_ctx& to) noexcept {
    move_eh(g, from, to);
    // FP control state: a side that keeps its own saves it; the executions
    // without their own share the thread's, kept in thread_state while one
    // with its own runs.
    if ((from.flags | to.flags) & ctx_keep_fp) {
        const fp_control now = fp_control_save();
        if (from.flags & ctx_keep_fp) {
            from.fp = now;
            from.flags |= ctx_fp_saved;
        } else {
            ts->shared_fp = now;
        }
        if ((to.flags & (ctx_keep_fp | ctx_fp_saved)) == (ctx_keep_fp | ctx_fp_saved))
            fp_control_restore(to.fp);
        else if (from.flags & ctx_keep_fp)
            fp_control_restore(ts->shared_fp);   // set when a shared side last left for a keeping one
    }
}

namespace {

// Ids are unique per process. Threads take them from the global counter in
// blocks, so creating a fiber costs no atomic read-modify-write.
constexpr std::uint64_t kIdBlock = 1024;
std::atomic<std::uint64_t> g_next_id_block{1};
constinit thread_local std::uint64_t t_id_next [[gnu::tls_model("initial-exec")]] = 0;
constinit thread_local std::uint64_t t_id_end [[gnu::tls_model("initial-exec")]] = 0;
// Cache colours: 61 (prime) offsets of 64 bytes, just under a 4 KiB page.
constexpr unsigned kColours = 61;
constexpr unsigned kColourBytes = 64;
constinit thread_local unsigned t_colour [[gnu::tls_model("initial-exec")]] = 0;

std::uint64_t next_id() noexcept {
    if (t_id_next == t_id_end) [[unlikely]] {
        // relaxed: only uniqueness matters, which the RMW gives by itself
        t_id_next = g_next_id_block.fetch_add(kIdBlock, std::memory_order_relaxed);
        t_id_end = t_id_next + kIdBlock;
    }
    return t_id_next++;
}

// How many forced_unwinds a fiber may swallow, and how many times it may
// switch away while being unwound, before it is abandoned.
constexpr unsigned kMaxUnwindThrows = 8;
constexpr int kMaxUnwindResumes = 16;

void describe(const fiber* f, std::string& out) {
    if (f->name[0]) {
        out += f->name;
        out += " (#";
    } else {
        out += "#";
    }
    out += std::to_string(f->id);
    if (f->name[0]) out += ')';
}

void diagnose_abandoned(const fiber* f, const char* why) noexcept {
    try {
        std::string line = "coop: coroutine ";
        describe(f, line);
        line += " could not be unwound: ";
        line += why;
        line += "; its stack is abandoned and the destructors still on it will not run\n";
        std::fputs(line.c_str(), stderr);
    } catch (...) {
        std::fputs("coop: a coroutine could not be unwound; its stack is abandoned\n", stderr);
    }
}

// Leave the running fiber f for good: to *f->exit_to, telling ASan that
// this stack is done (its fake frames are freed).
[[noreturn]] void exit_fiber(fiber* f) noexcept {
    thread_state* ts = this_thread();
    fiber_ctx& to = *f->exit_to;
    eh_state* g = ts->eh ? ts->eh : init_eh(ts);
    if ((((f->self.flags | to.flags) & ctx_special) | reinterpret_cast<std::uintptr_t>(g->caught) |
         g->uncaught) != 0)
        switch_special(ts, g, f->self, to);
    ts->current = to.owner;
    ts->left = &f->self;
    hooks::asan_leave(nullptr, to.stack_lo, to.stack_size);
    hooks::tsan_switch(to.tsan);
    fiber_switch(to.sp, &f->self.sp, nullptr);
    std::fputs("coop: a finished coroutine was resumed\n", stderr);
    std::abort();
}

[[noreturn]] void abandon_inside(fiber* f, const char* why) noexcept {
    diagnose_abandoned(f, why);
    f->state = fiber_state::abandoned;
    exit_fiber(f);
}

// std::terminate while a fiber unwinds (forced_unwind met a noexcept frame,
// or a destructor threw): abandon that fiber instead of ending the process.
std::terminate_handler g_prev_terminate = nullptr;
std::once_flag g_terminate_once;

void on_terminate() {
    fiber* f = this_thread()->current;
    if (f && f->unwinding && f->state == fiber_state::running)
        abandon_inside(f, "coop::forced_unwind reached a noexcept function or a destructor threw");
    if (g_prev_terminate) g_prev_terminate();
    std::abort();
}

void install_terminate_hook() noexcept {
    std::call_once(g_terminate_once, [] { g_prev_terminate = std::set_terminate(&on_terminate); });
}

} // namespace

std::size_t next_colour() noexcept {
    unsigned c = t_colour;
    t_colour = c + 1 == kColours ? 0 : c + 1;
    return std::size_t{c} * kColourBytes;
}

void init_fiber(fiber* f, coop::stack&& s, const coroutine_options& o, fiber_run run,
                void (*destroy)(fiber*) noexcept, bool nothrow_body) {
    f->run = run;
    f->destroy_callable = destroy;
    f->nothrow_body = nothrow_body;
    f->id = next_id();
    if (o.name) {
        std::strncpy(f->name, o.name, sizeof f->name - 1);
        f->name[sizeof f->name - 1] = '\0';
    }
    f->self.owner = f;
    f->self.flags = o.preserve_fp_env ? ctx_keep_fp : 0;
    f->self.stack_lo = s.bottom();
    f->self.stack_size = s.size();
    f->self.tsan = hooks::tsan_create();
    f->self.sp = fiber_make(f);          // make_fiber put the block at a 16-byte aligned address
    f->stk = std::move(s);
}

void throw_callable_too_large(std::size_t callable, std::size_t stack) {
    throw std::invalid_argument("coop: the callable (" + std::to_string(callable) +
                                " bytes) leaves less than " + std::to_string(min_stack_size / 2) +
                                " bytes of its " + std::to_string(stack) +
                                "-byte stack to run on; ask for a larger stack_size");
}

bool unwinding_in_destructor(const fiber* f) noexcept {
    return f->unwinding && std::uncaught_exceptions() > 0;
}

void unwind_point(fiber* f) {
    if (unwinding_in_destructor(f)) return;
    if (f->nothrow_body) abandon_inside(f, "its body is noexcept");
    if (f->unwind_throws >= kMaxUnwindThrows)
        abandon_inside(f, "it caught coop::forced_unwind and carried on");
    ++f->unwind_throws;
    throw forced_unwind{};
}

void unwind_fiber(fiber* f) noexcept {
    install_terminate_hook();
    f->unwinding = true;
    f->exit_to = &f->caller;
    for (int i = 0; f->state == fiber_state::suspended; ++i) {
        if (i == kMaxUnwindResumes) {
            f->state = fiber_state::abandoned;
            diagnose_abandoned(f, "it kept switching away while being unwound");
            return;
        }
        thread_state* ts = this_thread();
        f->caller.owner = ts->current;
        f->state = fiber_state::running;
        (void)switch_to(ts, f->caller, f->self, nullptr);
    }
    f->error = nullptr;   // an exception that escaped the unwinding has nobody to go to
}

void destroy_fiber(fiber* f) noexcept {
    switch (f->state) {
    case fiber_state::running: {
        std::string who;
        try { describe(f, who); } catch (...) {}
        std::fprintf(stderr, "coop: coroutine %s destroyed while running\n", who.c_str());
        std::abort();
    }
    case fiber_state::suspended:
        unwind_fiber(f);
        if (f->state == fiber_state::abandoned) return;
        break;
    case fiber_state::abandoned:
        return;
    case fiber_state::created:
    case fiber_state::finished:
        break;
    }
    hooks::tsan_destroy(f->self.tsan);
    coop::stack s = std::move(f->stk);
    f->destroy_callable(f);   // the callable and the control block
}                              // s: the stack goes back to the pool

void* resumed_to_end(fiber* f) {
    if (f->state == fiber_state::finished && f->error)
        std::rethrow_exception(std::exchange(f->error, nullptr));
    return f->result;
}

void throw_bad_resume(const fiber* f) {
    if (!f) throw std::logic_error("coop::coroutine::resume: the coroutine is empty");
    if (f->state == fiber_state::finished)
        throw std::logic_error("coop::coroutine::resume: the coroutine has finished");
    if (f->state == fiber_state::abandoned)
        throw std::logic_error("coop::coroutine::resume: the coroutine was abandoned");
    throw std::logic_error("coop::coroutine::resume: the coroutine is running");
}

void throw_outside() {
    throw std::logic_error("coop::this_coroutine::yield: not called from inside a coroutine");
}

void throw_in_task() {
    throw std::logic_error(
        "coop::this_coroutine::yield: called in a coop::reactor task, which has no resumer "
        "to yield to; use coop::yield()");
}

void throw_foreign_yielder() {
    throw std::logic_error("coop::yielder: used outside the coroutine it was given to");
}

} // namespace coop::detail

// The first code a fiber runs (entered from coop_fiber_trampoline with the
// control block and the data of the first switch into the fiber).
extern "C" [[noreturn]] COOP_HIDDEN void coop_fiber_main(void* block, void* first) noexcept {
    using namespace coop::detail;
    fiber* f = static_cast<fiber*>(block);
#if defined(COOP_ASAN)
    fiber_ctx* came = this_thread()->left;
    hooks::asan_arrive(nullptr, &came->stack_lo, &came->stack_size);
#endif
    overflow_arm();
    try {
        f->result = f->run(f, first);
    } catch (const coop::forced_unwind&) {
        // destroyed while suspended: the stack is unwound, nothing to report
    } catch (...) {
        f->error = std::current_exception();
    }
    f->state = fiber_state::finished;
    exit_fiber(f);
}

namespace coop {

int fiber_errno() noexcept {
    asm volatile("" ::: "memory");
    return errno;
}

void set_fiber_errno(int e) noexcept {
    asm volatile("" ::: "memory");
    errno = e;
}

} // namespace coop
