// src/poller.hpp — the one interface between the reactor and the kernel.
// Backends, one file each; a reactor picks one when it is constructed
// (make_poller, src/poller.cpp):
//   src/poller_uring.cpp   Linux io_uring: completion-based (the Linux default)
//   src/poller_epoll.cpp   Linux epoll (+ eventfd, + timerfd without epoll_pwait2)
//   src/poller_kqueue.cpp  kqueue (macOS, BSD; on Linux against tests/kqueue_emul)
// Linux builds compile io_uring and epoll; POLLER=kqueue builds only kqueue.
//
// Two models share the interface, and a backend says which it follows
// (completion_based()):
//
// Readiness (epoll, kqueue). An fd is registered once for both directions,
// edge-triggered (EPOLLET / EV_CLEAR): the kernel reports a transition to
// readable or writable once, so a registration never needs modifying and an
// fd nobody waits on costs no wake-ups. The reactor only waits after an
// operation returned EAGAIN, so no edge can be missed. An error or hang-up
// that stops both directions is reported as readable + writable.
//
// Completion (io_uring). The reactor hands the backend whole operations
// (submit: read, write, recv, send, accept, connect, poll) tagged with a
// token; the backend queues them and hands them to the kernel at its next
// wait() (or flush()), all in one system call, which also collects the
// completions. Each completion comes back from event() as a `done` event
// with the token and the operation's result (>= 0, or -errno). An operation
// may refer to memory (buffers, a sockaddr) until its completion has been
// returned by event(): the kernel works on it meanwhile. cancel() asks the
// kernel to end an operation early; it still completes, with -ECANCELED or
// with its result if it finished first.
//
// Deadlines are absolute CLOCK_MONOTONIC (= std::chrono::steady_clock)
// nanoseconds (src/clock.hpp), with sub-millisecond precision in every
// backend. The events stay in the backend's buffer until the next wait():
// event() translates one at a time, so there is one event buffer, not a
// kernel one and a copy.
#ifndef COOP_SRC_POLLER_HPP
#define COOP_SRC_POLLER_HPP

#include <coop/deadline.hpp>

#include <cerrno>
#include <cstdint>
#include <memory>

namespace coop::detail {

// What a completion-based backend can carry out.
enum class io_opcode : unsigned char {
    read,       // read(2) into buf, len bytes, at `offset` (io_current_pos: the file position)
    write,      // write(2) from buf, likewise
    recv,       // recv(2) into buf, len bytes, no flags
    send,       // send(2) from buf, len bytes, MSG_NOSIGNAL
    accept,     // accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC), armed for
                // many connections: one completion each, `more` set while it stays armed
    connect,    // connect(2) to the sockaddr at buf, len bytes long
    poll,       // one-shot poll(2) of fd for the events in len (POLLIN, POLLOUT);
                // the result is the revents mask
};

// "Read/write at the file position", for io_request::offset.
inline constexpr std::uint64_t io_current_pos = ~std::uint64_t{0};

// One operation for submit(). Read by submit() only: it may live anywhere
// (the reactor keeps it on the waiting task's stack), but what it points to
// must stay valid until the operation's completion.
struct io_request {
    io_opcode op = io_opcode::read;
    int fd = -1;
    void* buf = nullptr;
    std::uint32_t len = 0;
    std::uint64_t offset = io_current_pos;
};

// One entry of the last wait(), as event() translates it.
struct poll_event {
    enum class kind : unsigned char {
        ready,   // readiness: token is what add() was given
        done,    // completion: token is what submit() was given
    };
    kind what = kind::ready;
    bool readable = false;     // ready: the fd turned readable
    bool writable = false;     // ready: the fd turned writable
    bool more = false;         // done: the operation stays armed; more completions follow
    int result = 0;            // done: the operation's result, >= 0 or -errno
    std::uint64_t token = 0;
};

// Completion tokens below this value belong to the backend (its wake-up,
// its cancels); the reactor's are addresses, never that small.
inline constexpr std::uint64_t backend_tokens = 4096;

class poller {
public:
    virtual ~poller() = default;
    poller() = default;
    poller(const poller&) = delete;
    poller& operator=(const poller&) = delete;

    // "io_uring", "epoll" or "kqueue".
    virtual const char* name() const noexcept = 0;
    // Completion model (submit/cancel) rather than readiness (add/remove).
    virtual bool completion_based() const noexcept { return false; }

    // Readiness model. Register fd for readability and writability,
    // edge-triggered; events carry `token`. Returns 0 or an errno value
    // (EBADF, EPERM for files that are always ready, ENOMEM, ...; ENOSYS
    // from a completion-based backend).
    virtual int add(int fd, std::uint64_t token) noexcept = 0;
    // Drop fd's registration (errors such as an already closed fd ignored).
    virtual void remove(int fd) noexcept = 0;

    // Completion model. Queue an operation; 0, EBUSY when the submission
    // queue stays full even after handing it to the kernel (the caller lets
    // the loop collect completions and tries again), ENOSYS from a readiness
    // backend.
    virtual int submit(const io_request&, std::uint64_t /*token*/) noexcept { return ENOSYS; }
    // Ask the kernel to end the operation submitted with token (queued like
    // an operation; the operation still completes, see above).
    virtual void cancel(std::uint64_t /*token*/) noexcept {}
    // The same for every operation in flight on fd. Must reach the kernel
    // before fd is closed (flush()): the kernel finds them by the open file.
    virtual void cancel_fd(int /*fd*/) noexcept {}
    // Hand what is queued to the kernel now, without waiting.
    virtual void flush() noexcept {}

    // Hand queued operations to the kernel and wait until at least one
    // event, wake(), or the deadline (absolute ns on the monotonic clock; 0:
    // don't block; no_deadline_ns: no limit). Returns how many entries are
    // in the backend's own buffer (read them with event()), or -errno on a
    // failure of the backend itself. EINTR is retried. May return 0 early.
    virtual int wait(std::int64_t deadline_ns) noexcept = 0;
    // Entry i of the last wait(): true and *out filled for the reactor's
    // events; false for the backend's own (a wake-up, a timer, a cancel's
    // answer), which it consumes.
    virtual bool event(int i, poll_event* out) noexcept = 0;

    // Make a concurrent or the next wait() return. Any thread, async-safe.
    virtual void wake() noexcept = 0;
};

// The backend for a new reactor: COOP_POLLER from the environment if set
// ("io_uring", "epoll", "kqueue": only those of this build), else the
// build's first choice that the kernel accepts (io_uring, falling back to
// epoll on Linux; kqueue elsewhere). Throws std::invalid_argument for an
// unknown COOP_POLLER, std::system_error when the kernel refuses the
// backend asked for (or every backend).
std::unique_ptr<poller> make_poller();
// What make_poller() would choose now, without keeping a backend.
const char* default_poller_name();

// The backends (each defined in its own file; null when the kernel does not
// offer what the backend needs and `must` is false, else std::system_error).
std::unique_ptr<poller> make_uring_poller(bool must);
std::unique_ptr<poller> make_epoll_poller();
std::unique_ptr<poller> make_kqueue_poller();

} // namespace coop::detail

#endif
