// src/clock.hpp — the one clock of the reactor layer: CLOCK_MONOTONIC in
// nanoseconds (= std::chrono::steady_clock, what coop::deadline counts in),
// and its conversion to a timespec for the kernel's APIs.
#ifndef COOP_SRC_CLOCK_HPP
#define COOP_SRC_CLOCK_HPP

#include <time.h>

#include <cstdint>

namespace coop::detail {

inline std::int64_t monotonic_ns() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// ns >= 0.
inline timespec to_timespec(std::int64_t ns) noexcept {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    return ts;
}

} // namespace coop::detail

#endif
