// src/reactor_impl.hpp — the reactor's state, shared by reactor.cpp (tasks,
// scheduling, posts), reactor_fd.cpp (fd waits, close) and io.cpp. Nothing
// here depends on the poller backend beyond src/poller.hpp.
#ifndef COOP_SRC_REACTOR_IMPL_HPP
#define COOP_SRC_REACTOR_IMPL_HPP

#include "coop/reactor.hpp"
#include "poller.hpp"
#include "timer_heap.hpp"

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

namespace coop::detail {

// What the reactor knows about one fd number.
struct fd_entry {
    std::uint32_t gen = 0;        // bumped by close/forget: events tagged with an older one are stale
    bool registered = false;      // added to the poller under `gen`
    unsigned char kind = 0;       // for io::write: 0 unknown, 1 socket, 2 not a socket
    unsigned char stream = 0;     // for io::read: 0 unknown, 1 stream socket, 2 other
    // io::read's drained-read skip (stream sockets, once registered): a read
    // that came back short drained the socket, so the next one would only
    // say EAGAIN; it parks straight away instead, until an edge arrives.
    // `hangup` is sticky: a pending EOF or error never waits for an edge.
    bool read_edge = true;        // a read may find data (an edge came since the last short read)
    bool hangup = false;          // the kernel reported hang-up or error for this file
    wait_list readers;
    wait_list writers;
};

// fd number -> entry, in fixed chunks so that entries never move (parked
// tasks hold pointers to their wait lists).
class fd_table {
public:
    static constexpr std::size_t chunk = 1024;
    fd_entry* find(int fd) const noexcept {
        const std::size_t c = static_cast<std::size_t>(fd) / chunk;
        if (fd < 0 || c >= chunks_.size() || !chunks_[c]) return nullptr;
        return &chunks_[c][static_cast<std::size_t>(fd) % chunk];
    }
    fd_entry& get(int fd) {
        const std::size_t c = static_cast<std::size_t>(fd) / chunk;
        if (c >= chunks_.size()) chunks_.resize(c + 1);
        if (!chunks_[c]) chunks_[c].reset(new fd_entry[chunk]);
        return chunks_[c][static_cast<std::size_t>(fd) % chunk];
    }

private:
    std::vector<std::unique_ptr<fd_entry[]>> chunks_;
};

// Poll tokens: fd number in the low half, its generation in the high half.
inline std::uint64_t fd_token(int fd, std::uint32_t gen) noexcept {
    return (std::uint64_t{gen} << 32) | static_cast<std::uint32_t>(fd);
}

class reactor_impl {
public:
    // Task resumes between two looks at timers and the kernel while tasks
    // keep being runnable.
    static constexpr int poll_interval = 64;
    static constexpr int max_events = 256;

    explicit reactor_impl(reactor* owner);
    ~reactor_impl();

    void run();
    void push(task_cb* t) noexcept { rq.push(t); }
    task_cb* adopt(frame* f, task_cb* cb);
    void post(posted_fn* p);
    void forget_fd(int fd) noexcept;

    reactor* owner;
    poller poll;
    timer_heap timers;
    fd_table fds;
    run_queue rq;
    task_cb* all_head = nullptr;        // live tasks (for teardown)
    std::size_t live = 0;
    std::size_t fd_waiters = 0;         // tasks inside wait_fd
    std::uint64_t polls = 0;
    bool running = false;
    bool tearing_down = false;
    std::atomic<bool> stop_requested{false};
    std::atomic<bool> wake_pending{false};   // posts queued / wake() sent
    std::exception_ptr detached_error;

private:
    void run_task(task_cb* t);
    void finish(task_cb* t) noexcept;
    void poll_io(std::int64_t deadline_ns);
    void fire_timers(std::int64_t now) noexcept;
    void drain_posts();

    std::mutex post_mu_;
    posted_fn* post_head_ = nullptr;
    posted_fn* post_tail_ = nullptr;
    poll_event events_[max_events];
};

// Park the calling task t until fd is ready in the given direction (or
// deadline / cancel / close). level: first check the fd's current state
// (public wait_* calls); without it, the caller has just seen EAGAIN.
int wait_fd(task_cb* t, int fd, bool write, std::int64_t deadline_ns, bool level);

// The reactor the calling thread uses for fd bookkeeping outside tasks.
reactor_impl* thread_reactor() noexcept;

// Release a finished-or-detached task's block when its handle goes away.
void release_task(task_cb* t) noexcept;

} // namespace coop::detail

#endif
