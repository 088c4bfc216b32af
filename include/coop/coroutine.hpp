// coop/coroutine.hpp — minimal stackful coroutines, on the fibers of
// coop/detail/fiber.hpp.
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
//     A destructor that yields while the stack unwinds gets nullptr back at
//     once (there is nobody to yield to). A coroutine that cannot be unwound
//     (a noexcept body; forced_unwind reaching a noexcept function; a body
//     that keeps swallowing forced_unwind) is abandoned instead: one line on
//     stderr, its stack is leaked, the destructors still on it do not run.
//   - resume() on a finished, running or empty coroutine throws
//     std::logic_error; this_coroutine::yield() outside a coroutine, inside
//     a reactor task (use coop::yield() there), and a yielder used outside
//     its own coroutine throw it too.
//   - Exceptions: each coroutine has its own C++ exception state, so a catch
//     block that yields, std::current_exception(), `throw;` and
//     std::uncaught_exceptions() see the coroutine's own exceptions.
//   - Threads: a suspended coroutine may be resumed from another thread.
//     Its own thread_locals and errno are then another thread's: see
//     coop/fiber_local.hpp for reading them safely after a switch.
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

#include <coop/detail/assert.hpp>
#include <coop/detail/fiber.hpp>
#include <coop/export.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

namespace coop {

class yielder;

namespace detail {

[[noreturn]] COOP_API void throw_bad_resume(const fiber* f);
[[noreturn]] COOP_API void throw_outside();
[[noreturn]] COOP_API void throw_in_task();
[[noreturn]] COOP_API void throw_foreign_yielder();
// After a resume that did not end in a yield: the body's result, or its
// exception rethrown.
COOP_API void* resumed_to_end(fiber* f);

// Run f (created or suspended; checked by the caller) until it yields or
// ends, on the calling thread.
[[gnu::always_inline]] inline void* resume(fiber* f, void* v) {
    COOP_ASSERT(f->state == fiber_state::created || f->state == fiber_state::suspended);
    thread_state* ts = this_thread();
    if (fiber* me = ts->current; f->caller.owner != me) [[unlikely]]
        f->caller.owner = me;             // stored only when it changes: no store-forwarding chain
    f->state = fiber_state::running;
    void* out = switch_to(ts, f->caller, f->self, v);
    if (f->state != fiber_state::suspended) [[unlikely]]
        return resumed_to_end(f);
    return out;
}

// Suspend the running coroutine f, handing v to its resumer (ts: this
// thread's state, read by the caller).
[[gnu::always_inline]] inline void* yield(fiber* f, void* v, thread_state* ts) {
    if (f->unwinding && unwinding_in_destructor(f)) [[unlikely]]
        return nullptr;                       // nobody to yield to while the stack unwinds
    COOP_ASSERT(f->state == fiber_state::running && ts->current == f);
    f->state = fiber_state::suspended;
    void* in = switch_to(ts, f->self, f->caller, v);
    if (f->unwinding) [[unlikely]]
        unwind_point(f);
    return in;
}

template <class Fn>
void* invoke(fiber* f, void* first);

} // namespace detail

// Passed to a coroutine body; yields without a thread-local lookup of the
// coroutine (one to check it is used inside its own coroutine).
class yielder {
public:
    // Suspend, handing v to resume()'s caller; returns what the next
    // resume() sends. std::logic_error outside this yielder's coroutine.
    void* yield(void* v = nullptr) {
        detail::thread_state* ts = detail::this_thread();
        if (ts->current != f_) [[unlikely]]
            detail::throw_foreign_yielder();
        return detail::yield(f_, v, ts);
    }
    void* operator()(void* v = nullptr) { return yield(v); }

private:
    template <class Fn>
    friend void* detail::invoke(detail::fiber*, void*);
    explicit yielder(detail::fiber* f) noexcept : f_(f) {}
    detail::fiber* f_;
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
constexpr bool body_is_nothrow() {
    if constexpr (std::is_invocable_v<Fn&, yielder&, void*>)
        return std::is_nothrow_invocable_v<Fn&, yielder&, void*>;
    else if constexpr (std::is_invocable_v<Fn&, yielder&>)
        return std::is_nothrow_invocable_v<Fn&, yielder&>;
    else
        return std::is_nothrow_invocable_v<Fn&>;
}

template <class Fn>
void* invoke(fiber* f, void* first) {
    Fn& fn = static_cast<fiber_with<Fn>*>(f)->value;
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
} // namespace detail

class coroutine {
public:
    coroutine() noexcept = default;

    // A suspended coroutine that runs fn at its first resume(). fn takes (),
    // (coop::yielder&) or (coop::yielder&, void* first) and may return void*.
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, coroutine>>>
    explicit coroutine(F&& fn, const coroutine_options& opts = {})
        : f_(detail::make_fiber<std::decay_t<F>>(opts, &detail::invoke<std::decay_t<F>>,
                                                 detail::body_is_nothrow<std::decay_t<F>>(),
                                                 std::forward<F>(fn))) {}

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
        detail::fiber* f = f_;
        if (!f || (f->state != detail::fiber_state::suspended &&
                   f->state != detail::fiber_state::created)) [[unlikely]]
            detail::throw_bad_resume(f);
        return detail::resume(f, v);
    }

    bool done() const noexcept { return !f_ || f_->state >= detail::fiber_state::finished; }
    bool started() const noexcept { return f_ && f_->state != detail::fiber_state::created; }
    explicit operator bool() const noexcept { return f_ != nullptr; }
    std::uint64_t id() const noexcept { return f_ ? f_->id : 0; }
    std::string_view name() const noexcept { return f_ ? std::string_view(f_->name) : std::string_view(); }
    // Usable stack range of this coroutine.
    void* stack_bottom() const noexcept { return f_ ? f_->stk.bottom() : nullptr; }
    void* stack_top() const noexcept { return f_ ? f_->stk.top() : nullptr; }

    // Unwinds a suspended coroutine (see above) and frees it.
    void reset() noexcept {
        if (f_) detail::destroy_fiber(std::exchange(f_, nullptr));
    }

private:
    detail::fiber* f_ = nullptr;
};

namespace this_coroutine {

// True when called from inside a coroutine (a reactor task is one too).
inline bool inside() noexcept { return detail::this_thread()->current != nullptr; }

// Suspend the calling coroutine, handing v to its resumer; returns what the
// next resume() sends. Throws std::logic_error outside a coroutine and
// inside a reactor task, which has no resumer to yield to: coop::yield()
// (reactor.hpp) is the call there.
inline void* yield(void* v = nullptr) {
    detail::thread_state* ts = detail::this_thread();
    detail::fiber* f = ts->current;
    if (!f) [[unlikely]]
        detail::throw_outside();
    if (f->scheduled) [[unlikely]]
        detail::throw_in_task();
    return detail::yield(f, v, ts);
}

// Id of the calling coroutine (0 outside one). Ids are unique per process.
inline std::uint64_t id() noexcept {
    detail::fiber* f = detail::this_thread()->current;
    return f ? f->id : 0;
}
// Name of the calling coroutine ("" outside one or when unnamed).
inline std::string_view name() noexcept {
    detail::fiber* f = detail::this_thread()->current;
    return f ? std::string_view(f->name) : std::string_view();
}

} // namespace this_coroutine
} // namespace coop

#endif
