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
// nanoseconds (src/clock.hpp), with sub-millisecond precision in every
// backend. The events stay in the poller's buffer, in the kernel's format,
// until the next wait(): event() translates one at a time, so there is one
// event buffer, not a kernel one and a copy.
#ifndef COOP_SRC_POLLER_HPP
#define COOP_SRC_POLLER_HPP

#include <coop/deadline.hpp>

#include <cstdint>
#include <memory>

namespace coop::detail {

struct poll_event {
    std::uint64_t token;   // what add() was given
    bool readable;
    bool writable;
};

class poller {
public:
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

    // Wait until at least one event, wake(), or the deadline (absolute ns
    // on the monotonic clock; 0: don't block; no_deadline_ns: no limit).
    // Returns how many entries the kernel delivered into the poller's own
    // buffer (read them with event()), or -errno on a failure of the poller
    // itself. EINTR is retried.
    int wait(std::int64_t deadline_ns) noexcept;
    // Entry i of the last wait(): true and *out filled for an fd event;
    // false for the poller's own (a wake-up or a timer), which it consumes.
    bool event(int i, poll_event* out) noexcept;

    // Make a concurrent or the next wait() return. Any thread, async-safe.
    void wake() noexcept;

    static const char* backend() noexcept;

    struct impl;

private:
    std::unique_ptr<impl> p_;
};

} // namespace coop::detail

#endif
