// src/poller.hpp — the one interface between the reactor and the kernel's
// readiness API. Backends, one file each, chosen at build time (POLLER=):
//   src/poller_epoll.cpp   Linux epoll (+ eventfd, + timerfd without epoll_pwait2)
//   src/poller_kqueue.cpp  kqueue (macOS, BSD; on Linux against tests/kqueue_emul)
//
// Model. An fd is registered once for both directions, edge-triggered
// (EPOLLET / EV_CLEAR): the kernel reports a transition to readable or
// writable once, so a registration never needs modifying and an fd nobody
// waits on costs no wake-ups. The reactor only waits after an operation
// returned EAGAIN, so no edge can be missed. An error or hang-up that stops
// both directions is reported as readable + writable.
//
// Deadlines are absolute CLOCK_MONOTONIC (= std::chrono::steady_clock)
// nanoseconds, with sub-millisecond precision in every backend.
#ifndef COOP_SRC_POLLER_HPP
#define COOP_SRC_POLLER_HPP

#include <cstdint>
#include <memory>

namespace coop::detail {

struct poll_event {
    std::uint64_t token;   // what add() was given
    bool readable;
    bool writable;
    bool hangup;           // the peer closed its side, or an error: reads will not block
};

class poller {
public:
    static constexpr std::int64_t no_deadline = INT64_MAX;

    // Throws std::system_error when the kernel refuses.
    poller();
    ~poller();
    poller(const poller&) = delete;
    poller& operator=(const poller&) = delete;

    // Register fd for readability and writability, edge-triggered; events
    // carry `token`. Returns 0 or an errno value (EBADF, EPERM for files
    // that are always ready, ENOMEM, ...).
    int add(int fd, std::uint64_t token) noexcept;
    // Drop fd's registration (errors such as an already closed fd ignored).
    void remove(int fd) noexcept;

    // Wait until at least one event, wake(), or the deadline (0: don't block,
    // no_deadline: no limit). Stores up to `capacity` events and returns how
    // many; wake-ups and internal timer events are consumed and not
    // reported, so 0 is possible before the deadline. EINTR is retried.
    // Returns -errno on a failure of the poller itself.
    int wait(poll_event* out, int capacity, std::int64_t deadline_ns) noexcept;

    // Make a concurrent or the next wait() return. Any thread, async-safe.
    void wake() noexcept;

    static const char* backend() noexcept;

    struct impl;

private:
    std::unique_ptr<impl> p_;
};

// CLOCK_MONOTONIC in nanoseconds.
std::int64_t monotonic_ns() noexcept;

} // namespace coop::detail

#endif
