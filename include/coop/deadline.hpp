// coop/deadline.hpp — the point in time a blocking call gives up at.
//
// Every blocking call of the reactor layer (sleep, fd waits, coop::io,
// channels, join) takes a coop::deadline:
//
//   coop::deadline{}                         no deadline: wait as long as it takes
//   coop::no_deadline                        the same, spelled out
//   steady_clock::now() + 50ms               an absolute std::chrono::steady_clock point
//   50ms                                     any std::chrono::duration: relative to
//                                            the moment the deadline is constructed
//
// A deadline that has already passed makes a call that would have to wait
// fail at once with ETIMEDOUT (std::errc::timed_out); a call that can complete
// without waiting still completes. Timers are never early: a call that
// returns ETIMEDOUT returns at or after its deadline. steady_clock is
// CLOCK_MONOTONIC on Linux and the BSDs.
#ifndef COOP_DEADLINE_HPP
#define COOP_DEADLINE_HPP

#include <chrono>
#include <cstdint>
#include <limits>

namespace coop {

namespace detail {
// "No deadline" in nanoseconds on the steady clock, everywhere in coop.
inline constexpr std::int64_t no_deadline_ns = std::numeric_limits<std::int64_t>::max();
} // namespace detail

class deadline {
public:
    using clock = std::chrono::steady_clock;

    // No deadline.
    constexpr deadline() noexcept = default;

    // An absolute point on the steady clock. time_point::max() means none.
    constexpr deadline(clock::time_point tp) noexcept
        : ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count()) {}

    // Relative: now + d. Huge durations saturate to "no deadline", negative
    // ones give a deadline in the past.
    template <class Rep, class Period>
    deadline(std::chrono::duration<Rep, Period> d) noexcept : ns_(after(d)) {}

    static constexpr deadline never() noexcept { return deadline(); }

    constexpr bool is_never() const noexcept { return ns_ == kNever; }
    // Nanoseconds on the steady clock (INT64_MAX when there is no deadline).
    constexpr std::int64_t ns() const noexcept { return ns_; }
    clock::time_point time_point() const noexcept {
        return clock::time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(ns_)));
    }

    friend constexpr bool operator==(deadline a, deadline b) noexcept { return a.ns_ == b.ns_; }

private:
    static constexpr std::int64_t kNever = detail::no_deadline_ns;

    template <class Rep, class Period>
    static std::int64_t after(std::chrono::duration<Rep, Period> d) noexcept {
        const std::int64_t now =
            std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
        // Range check in floating point first so that hours::max() and the
        // like do not overflow the conversion to nanoseconds.
        const double rel = std::chrono::duration<double, std::nano>(d).count();
        constexpr double kLimit = 4.0e18;
        if (rel >= kLimit) return kNever;
        if (rel <= -kLimit) return std::numeric_limits<std::int64_t>::min() / 2;
        const std::int64_t r = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
        if (r > 0 && now > kNever - r) return kNever;
        return now + r;
    }

    std::int64_t ns_ = kNever;
};

inline constexpr deadline no_deadline{};

} // namespace coop

#endif
