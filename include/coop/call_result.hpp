// coop/call_result.hpp — what a call run somewhere else gives back: the
// offload pool (offload.hpp) and another reactor (runtime::call_on).
//
//   coop::call_result<int> r = coop::offload([] { return slow(); }, 1s);
//   if (r) use(*r.value); else log(r.error);   // ETIMEDOUT, ECANCELED
//
// An exception fn throws is rethrown to the caller instead.
#ifndef COOP_CALL_RESULT_HPP
#define COOP_CALL_RESULT_HPP

#include <exception>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coop {

template <class T>
struct call_result {
    std::optional<T> value;           // what fn returned (empty on error)
    std::error_code error;            // ETIMEDOUT, ECANCELED
    explicit operator bool() const noexcept { return !error; }
};
template <>
struct call_result<void> {
    std::error_code error;
    explicit operator bool() const noexcept { return !error; }
};

namespace detail {

// fn, run once on another thread or reactor, and what it left: its value or
// its exception. Both sides reach it only in turn (the hand-over orders them).
template <class F, class R>
struct captured_call {
    F fn;
    std::optional<std::conditional_t<std::is_void_v<R>, char, R>> value;
    std::exception_ptr error;

    template <class G>
    explicit captured_call(G&& g) : fn(std::forward<G>(g)) {}

    void invoke() noexcept {
        try {
            if constexpr (std::is_void_v<R>) {
                fn();
                value.emplace('\0');
            } else {
                value.emplace(fn());
            }
        } catch (...) {
            error = std::current_exception();
        }
    }

    // On the caller's side, once: the value into out, or the exception
    // rethrown (moved out first, so it is released on the caller's thread).
    void deliver(call_result<R>& out) {
        if (std::exception_ptr e = std::move(error)) std::rethrow_exception(std::move(e));
        if constexpr (!std::is_void_v<R>) out.value.emplace(std::move(*value));
    }
};

} // namespace detail
} // namespace coop

#endif
