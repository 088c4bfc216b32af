// coop/coroutine.hpp — minimal stackful coroutines on top of coop_jump.
//
//   coop::coroutine co([](coop::yielder& y) {
//       void* got = y.yield(some_ptr);   // hands some_ptr to resume()'s caller
//       ...                              // got = what the next resume() sent
//   });
//   void* out = co.resume(in);           // runs co until it yields or ends
//
// Values flow both ways as void*: resume(v) delivers v to the yield the
// coroutine is parked in (or, at the first resume, to a body taking
// (yielder&, void*)), and returns what the coroutine yields next, or what a
// body returning a pointer returns when it ends (nullptr for other bodies).
// coop::generator<T> (generator.hpp) gives typed values on top.
//
// Ownership and lifetime:
//   - The control block and the callable live at the top of the coroutine's
//     own stack: a coroutine costs one pooled stack, no heap allocation.
//   - An exception escaping the body is rethrown from the resume() that ran it.
//   - Destroying a suspended coroutine unwinds its stack: the yield it is
//     parked in throws coop::forced_unwind, destructors run, the stack goes
//     back to the pool. forced_unwind is not a std::exception; a catch (...)
//     inside a coroutine must rethrow it.
//   - resume() on a finished, running or empty coroutine throws
//     std::logic_error; this_coroutine::yield() outside a coroutine too.
//
// The switch: resume/yield use the inline switch of detail/fiber_switch.hpp
// rather than coop_jump: each resume and yield site gets its own indirect
// jump, which the branch predictor gets right (see that file).
//
// FP environment: by default a coroutine shares its thread's FP control state
// (rounding mode, exception masks, FTZ/DAZ; see context.h). With
// coroutine_options::preserve_fp_env each side saves its FP control state
// before a switch and restores it when switched back to, as coop_jump_fp
// does: the coroutine keeps its own state and its resumer gets its own back
// at every yield, at the price of a save and a restore per switch.
#ifndef COOP_COROUTINE_HPP
#define COOP_COROUTINE_HPP

#include <coop/context.h>
#include <coop/detail/fiber_hooks.hpp>
#include <coop/detail/fiber_switch.hpp>
#include <coop/stack.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

namespace coop {

struct coroutine_options {
    // Usable stack bytes (rounded up to pages); taken from the thread's pool.
    std::size_t stack_size = default_stack_size;
    // Save/restore the FP control state per coroutine (see above).
    bool preserve_fp_env = false;
    // For stack-overflow reports and debugging; copied (up to 31 bytes).
    const char* name = nullptr;
};

// Thrown from yield() inside a coroutine that is being destroyed while
// suspended. Let it pass: catch (...) blocks must rethrow it.
struct forced_unwind {};

class yielder;

namespace detail {

enum class co_state : unsigned char { created, running, suspended, finished };

// The control block, placed at the top of the coroutine's stack.
struct frame {
    void* ctx = nullptr;              // the suspended coroutine (created/suspended)
    void* caller = nullptr;           // who resumed it (while running)
    co_state state = co_state::created;
    bool fp = false;                  // save/restore FP control state per side
    bool unwinding = false;           // being destroyed: yields throw forced_unwind
    void* (*body)(frame*, void*) = nullptr;    // runs the callable
    void (*destroy_fn)(frame*) noexcept = nullptr;
    void* result = nullptr;           // what the body returned
    std::exception_ptr error;         // escaped the body; rethrown by resume
    coop::stack stk;                  // owns the memory this frame lives in
    std::uint64_t id = 0;
    void* user = nullptr;             // for the layers above (the reactor's task)
    // sanitizer bookkeeping (unused in normal builds)
    const void* caller_lo = nullptr;
    std::size_t caller_size = 0;
    void* tsan_fiber = nullptr;
    void* tsan_caller = nullptr;
    char name[32] = {};
};

// The coroutine running on this thread (null on a thread's own stack).
// constinit lets the compiler access it directly, without a TLS wrapper.
// initial-exec: one %fs/tpidr_el0-relative access, no __tls_get_addr, also
// inside libcoop.so (which therefore must be loaded at program start or
// find room in the static TLS surplus when dlopen'ed; it needs 8 bytes).
extern constinit thread_local frame* t_current [[gnu::tls_model("initial-exec")]];

[[noreturn]] void throw_bad_resume(const frame* f);
[[noreturn]] void throw_outside();
[[noreturn]] void throw_callable_too_large();
void* finished(frame* f);
void init_frame(frame* f, coop::stack&& s, void* frame_lo, const coroutine_options& o);
void destroy_frame(frame* f) noexcept;

// Run f until it yields or ends. Precondition checked by the caller:
// state is created or suspended.
inline void* resume(frame* f, void* v) {
    frame* const prev = t_current;
    f->state = co_state::running;
    t_current = f;
    void* asan_save = nullptr;
    hooks::asan_leave(&asan_save, f->stk.bottom(), f->stk.size());
#if defined(COOP_TSAN)
    f->tsan_caller = hooks::tsan_current();
    hooks::tsan_switch(f->tsan_fiber);
#endif
    void* out;
    if (!f->fp) [[likely]] {
        out = fiber_resume(f->ctx, &f->caller, v);
    } else {
        const fp_control mine = fp_control_save();
        out = fiber_resume(f->ctx, &f->caller, v);
        fp_control_restore(mine);
    }
    hooks::asan_arrive(asan_save, nullptr, nullptr);
    t_current = prev;
    if (f->state == co_state::finished) [[unlikely]]
        return finished(f);
    return out;
}

// Suspend the running coroutine f, handing v to its resumer.
inline void* yield(frame* f, void* v) {
    f->state = co_state::suspended;
    void* asan_save = nullptr;
    hooks::asan_leave(&asan_save, f->caller_lo, f->caller_size);
    hooks::tsan_switch(f->tsan_caller);
    void* in;
    if (!f->fp) [[likely]] {
        in = fiber_yield(f->caller, &f->ctx, v);
    } else {
        const fp_control mine = fp_control_save();
        in = fiber_yield(f->caller, &f->ctx, v);
        fp_control_restore(mine);
    }
    hooks::asan_arrive(asan_save, &f->caller_lo, &f->caller_size);
    if (f->unwinding) [[unlikely]]
        throw forced_unwind{};
    return in;
}

template <class Fn>
struct frame_with : frame {
    Fn fn;
    template <class F>
    explicit frame_with(F&& f) : fn(std::forward<F>(f)) {}
};

template <class Fn>
void* invoke(frame* f, void* first);

} // namespace detail

// Passed to a coroutine body; yields without a thread-local lookup.
class yielder {
public:
    // Suspend, handing v to resume()'s caller; returns what the next
    // resume() sends.
    void* yield(void* v = nullptr) { return detail::yield(f_, v); }
    void* operator()(void* v = nullptr) { return detail::yield(f_, v); }

private:
    template <class Fn>
    friend void* detail::invoke(detail::frame*, void*);
    explicit yielder(detail::frame* f) noexcept : f_(f) {}
    detail::frame* f_;
};

namespace detail {
// A body's result as the void* resume() returns: pointers (const ones too)
// pass through, anything else (void included) becomes nullptr.
template <class Call>
void* call_body(Call&& call) {
    using R = decltype(call());
    if constexpr (std::is_pointer_v<R>)
        return const_cast<void*>(static_cast<const volatile void*>(call()));
    else if constexpr (std::is_null_pointer_v<R>)
        return call(), nullptr;
    else
        return (void)call(), nullptr;
}

template <class Fn>
void* invoke(frame* f, void* first) {
    Fn& fn = static_cast<frame_with<Fn>*>(f)->fn;
    yielder y(f);
    if constexpr (std::is_invocable_v<Fn&, yielder&, void*>) {
        return call_body([&] { return fn(y, first); });
    } else if constexpr (std::is_invocable_v<Fn&, yielder&>) {
        (void)first;
        return call_body([&] { return fn(y); });
    } else {
        static_assert(std::is_invocable_v<Fn&>,
                      "a coroutine body takes (), (coop::yielder&) or (coop::yielder&, void*)");
        (void)first;
        return call_body([&] { return fn(); });
    }
}

template <class Fn>
void destroy_callable(frame* f) noexcept {
    static_cast<frame_with<Fn>*>(f)->~frame_with<Fn>();
}

// Build a frame for callable fn at the top of a pooled stack.
template <class F>
frame* make_frame(F&& fn, const coroutine_options& o) {
    using Fn = std::decay_t<F>;
    using Impl = frame_with<Fn>;
    coop::stack s = coop::stack::pooled(o.stack_size);
    std::uintptr_t top = reinterpret_cast<std::uintptr_t>(s.top());
    std::uintptr_t at = (top - sizeof(Impl)) & ~(std::uintptr_t{alignof(Impl)} - 1);
    at &= ~std::uintptr_t{15};
    if (at < reinterpret_cast<std::uintptr_t>(s.bottom()) + 4096)
        throw_callable_too_large();
    Impl* f = ::new (reinterpret_cast<void*>(at)) Impl(std::forward<F>(fn));
    f->body = &invoke<Fn>;
    f->destroy_fn = &destroy_callable<Fn>;
    init_frame(f, std::move(s), f, o);
    return f;
}

} // namespace detail

class coroutine {
public:
    coroutine() noexcept = default;

    // A suspended coroutine that runs fn at its first resume(). fn takes (),
    // (coop::yielder&) or (coop::yielder&, void* first) and may return void*.
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, coroutine>>>
    explicit coroutine(F&& fn, const coroutine_options& opts = {})
        : f_(detail::make_frame(std::forward<F>(fn), opts)) {}

    coroutine(coroutine&& o) noexcept : f_(std::exchange(o.f_, nullptr)) {}
    coroutine& operator=(coroutine&& o) noexcept {
        if (this != &o) {
            reset();
            f_ = std::exchange(o.f_, nullptr);
        }
        return *this;
    }
    coroutine(const coroutine&) = delete;
    coroutine& operator=(const coroutine&) = delete;
    ~coroutine() { reset(); }

    // Run until the coroutine yields (returns the yielded pointer) or ends
    // (returns what the body returned, or nullptr). Rethrows an exception
    // that escaped the body. Throws std::logic_error if the coroutine is
    // finished, running, or empty.
    void* resume(void* v = nullptr) {
        detail::frame* f = f_;
        if (!f || (f->state != detail::co_state::suspended &&
                   f->state != detail::co_state::created)) [[unlikely]]
            detail::throw_bad_resume(f);
        return detail::resume(f, v);
    }

    bool done() const noexcept { return !f_ || f_->state == detail::co_state::finished; }
    bool started() const noexcept { return f_ && f_->state != detail::co_state::created; }
    explicit operator bool() const noexcept { return f_ != nullptr; }
    std::uint64_t id() const noexcept { return f_ ? f_->id : 0; }
    std::string_view name() const noexcept { return f_ ? std::string_view(f_->name) : std::string_view(); }
    // Usable stack range of this coroutine.
    void* stack_bottom() const noexcept { return f_ ? f_->stk.bottom() : nullptr; }
    void* stack_top() const noexcept { return f_ ? f_->stk.top() : nullptr; }

    // Unwinds a suspended coroutine (see above) and frees it.
    void reset() noexcept {
        if (f_) detail::destroy_frame(std::exchange(f_, nullptr));
    }

    // For the layers above: the control block.
    detail::frame* native() const noexcept { return f_; }

private:
    detail::frame* f_ = nullptr;
};

namespace this_coroutine {

// True when called from inside a coroutine.
inline bool inside() noexcept { return detail::t_current != nullptr; }

// Suspend the calling coroutine, handing v to its resumer; returns what the
// next resume() sends. Throws std::logic_error outside a coroutine.
inline void* yield(void* v = nullptr) {
    detail::frame* f = detail::t_current;
    if (!f) [[unlikely]]
        detail::throw_outside();
    return detail::yield(f, v);
}

// Id of the calling coroutine (0 outside one). Ids are unique per process.
inline std::uint64_t id() noexcept { return detail::t_current ? detail::t_current->id : 0; }
// Name of the calling coroutine ("" outside one or when unnamed).
inline std::string_view name() noexcept {
    return detail::t_current ? std::string_view(detail::t_current->name) : std::string_view();
}

} // namespace this_coroutine
} // namespace coop

#endif
