// src/coroutine.cpp — the out-of-line parts of coop::coroutine: entry,
// completion, forced unwind and error reporting. The hot paths (resume,
// yield) are inline in coroutine.hpp.
#include "coop/coroutine.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace coop::detail {

constinit thread_local frame* t_current [[gnu::tls_model("initial-exec")]] = nullptr;

namespace {
// Ids are unique per process. Threads take them from the global counter in
// blocks, so creating a coroutine costs no atomic read-modify-write.
constexpr std::uint64_t kIdBlock = 1024;
std::atomic<std::uint64_t> g_next_id_block{1};
constinit thread_local std::uint64_t t_id_next = 0;
constinit thread_local std::uint64_t t_id_end = 0;

std::uint64_t next_id() noexcept {
    if (t_id_next == t_id_end) [[unlikely]] {
        t_id_next = g_next_id_block.fetch_add(kIdBlock, std::memory_order_relaxed);
        t_id_end = t_id_next + kIdBlock;
    }
    return t_id_next++;
}
} // namespace

// src/overflow.cpp: the first coroutine a thread runs installs the stack
// overflow handler and the thread's alternate signal stack (coop/debug.hpp).
void overflow_arm() noexcept;

void init_frame(frame* f, coop::stack&& s, void* frame_lo, const coroutine_options& o) {
    f->stk = std::move(s);
    f->fp = o.preserve_fp_env;
    f->id = next_id();
    if (o.name) {
        std::strncpy(f->name, o.name, sizeof f->name - 1);
        f->name[sizeof f->name - 1] = '\0';
    }
    f->tsan_fiber = hooks::tsan_create();
    const std::size_t below =
        static_cast<std::size_t>(static_cast<char*>(frame_lo) - static_cast<char*>(f->stk.bottom()));
    (void)below;   // make_frame left at least a page below the control block
    // The trampoline finds the control block 16 bytes above the fresh
    // context, which needs it at a 16-byte aligned address.
    if (reinterpret_cast<std::uintptr_t>(frame_lo) % 16 != 0) std::abort();
    f->ctx = fiber_make(frame_lo);
}

} // namespace coop::detail

// The first code a coroutine runs (called by coop_fiber_trampoline with the
// control block, which sits right above the fresh context, and the first
// resume's data). That resume already stored its own context in f->caller.
extern "C" __attribute__((visibility("hidden"), noreturn)) void coop_fiber_main(void* self, void* first) noexcept {
    using namespace coop::detail;
    frame* f = static_cast<frame*>(self);
    hooks::asan_arrive(nullptr, &f->caller_lo, &f->caller_size);
    overflow_arm();      // once per thread; a thread-local test afterwards
    try {
        f->result = f->body(f, first);
    } catch (const coop::forced_unwind&) {
        // destroyed while suspended: the stack is unwound, nothing to report
    } catch (...) {
        f->error = std::current_exception();
    }
    f->state = co_state::finished;
    hooks::asan_leave(nullptr, f->caller_lo, f->caller_size);   // this stack is done
    hooks::tsan_switch(f->tsan_caller);
    fiber_yield(f->caller, &f->ctx, nullptr);
    // Nobody may resume a finished coroutine (resume() checks the state).
    std::fputs("coop: a finished coroutine was resumed\n", stderr);
    std::abort();
}

namespace coop::detail {

void* finished(frame* f) {
    if (f->error) std::rethrow_exception(std::exchange(f->error, nullptr));
    return f->result;
}

void throw_bad_resume(const frame* f) {
    if (!f) throw std::logic_error("coop::coroutine::resume: the coroutine is empty");
    if (f->state == co_state::finished)
        throw std::logic_error("coop::coroutine::resume: the coroutine has finished");
    throw std::logic_error("coop::coroutine::resume: the coroutine is running");
}

void throw_outside() {
    throw std::logic_error("coop::this_coroutine::yield: not called from inside a coroutine");
}

void throw_callable_too_large() {
    throw std::invalid_argument("coop::coroutine: the callable does not fit on the stack with room to run");
}

void destroy_frame(frame* f) noexcept {
    if (f->state == co_state::running) {
        std::fprintf(stderr, "coop: coroutine %llu destroyed while running\n",
                     static_cast<unsigned long long>(f->id));
        std::abort();
    }
    // A suspended coroutine: make the yield it is parked in throw
    // forced_unwind so its destructors run. A body that swallows it and
    // yields again gets it again at every yield until it ends.
    f->unwinding = true;
    while (f->state == co_state::suspended) {
        try {
            resume(f, nullptr);
        } catch (...) {
            // an exception thrown while unwinding has nobody to go to
        }
    }
    hooks::tsan_destroy(f->tsan_fiber);
    coop::stack s = std::move(f->stk);
    f->destroy_fn(f);     // the callable and the control block
}                          // s: the stack goes back to the pool

} // namespace coop::detail
