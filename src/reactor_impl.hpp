// src/reactor_impl.hpp — the reactor's state, shared by reactor.cpp (tasks,
// scheduling, posts, teardown) and reactor_fd.cpp (fd waits, close). io.cpp
// reaches fds only through the fd-state functions at the end of this file.
// Nothing here depends on the poller backend beyond src/poller.hpp.
//
// Invariants of the scheduler (see also coop/detail/task.hpp):
//   1. Everything here belongs to the reactor's thread, except what other
//      threads touch through post(), deliver_remote() and stop(): the inbox
//      (under inbox_mu_), sleeping, stop_requested and attention (atomics),
//      and the runtime's shared counter.
//   2. A task has a slot in live_ iff it is not done (live counts them);
//      free_slots_ holds the others and has room for all of them, so that
//      retiring a task never allocates. The table is the reactor's own
//      memory: spawning and ending a task touch no other task's stack.
//   3. fd_waiters counts tasks parked in wait_fd() or next_connection() and
//      I/O operations in flight that a task waits for (run_io()); the loop
//      polls the kernel while tasks are runnable only when it is non-zero.
//      task_ops counts those operations alone: each one's memory (the
//      io_op, the buffers) belongs to the kernel until its completion has
//      been handled (complete_io), so teardown waits for all of them.
//   4. reap is non-null only between a detached task's end and the next
//      code that runs on another stack, which frees it (reap_now()).
//   5. The loop context (scheduler::loop) is valid while run() or teardown
//      executes; every switch away from a task goes to another runnable task
//      or to it.
#ifndef COOP_SRC_REACTOR_IMPL_HPP
#define COOP_SRC_REACTOR_IMPL_HPP

#include "coop/detail/remote.hpp"
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

// What io.cpp remembers about an fd while coop holds its registration.
enum class fd_kind : unsigned char { unknown, socket, not_socket };

struct accept_stream;

// What the reactor knows about one fd number.
struct fd_entry {
    std::uint32_t gen = 0;        // bumped by close/forget: events tagged with an older one are stale
    std::uint32_t ops = 0;        // operations in flight on the fd (any generation; completion backends)
    bool registered = false;      // added to the poller under `gen` (completion backends: used
                                  // in an operation under `gen`)
    fd_kind kind = fd_kind::unknown;  // forgotten with the registration
    wait_list readers;
    wait_list writers;
    accept_stream* acc = nullptr; // the listening fd's armed accept (completion backends)
};

// An I/O operation a task hands to a completion-based backend (run_io).
// Lives on the task's stack; its request's buffers belong to the kernel
// until `done`.
struct io_op {
    io_request req;
    task_block* task = nullptr;   // the task waiting for it
    fd_entry* entry = nullptr;    // req.fd's entry
    std::uint32_t gen = 0;        // req.fd's generation at submission
    int result = 0;               // >= 0 or -errno: the kernel's, or -EBADF when the fd
                                  // was closed with coop::close meanwhile
    bool done = false;            // the completion has been handled
};

// A listening fd's multishot accept: the kernel accepts connections as they
// come and hands each one over as a completion; they wait here, in order,
// until io::accept takes them. Owned by the reactor (created on the first
// accept of the fd, listed in accept_streams); freed after its last
// completion once the fd is forgotten (orphaned) or the reactor goes.
struct accept_stream {
    static constexpr std::size_t backlog = 64;   // held connections: more, and it is disarmed
    int fd = -1;
    bool armed = false;           // the accept is in flight (until a completion without `more`)
    bool disarming = false;       // we canceled it (backlog full): its -ECANCELED is ours
    bool orphaned = false;        // the fd was forgotten: connections still coming are closed
    std::vector<int> results;     // accepted fds and errors (-errno), FIFO from `head`
    std::size_t head = 0;
    wait_list waiters;            // tasks parked in accept
    accept_stream* prev = nullptr;    // the reactor's list
    accept_stream* next = nullptr;
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

class reactor_impl;

// What a coop::runtime shares with its reactors (src/runtime.cpp).
struct runtime_shared {
    // Work left over all the runtime's reactors: live tasks plus posted
    // callables not yet started. When it reaches 0 the runtime is finished.
    std::atomic<std::int64_t> work{0};
    std::atomic<bool> finished{false};
    std::vector<reactor_impl*> reactors;
    std::int64_t idle_spin_ns = 0;        // how long an idle reactor spins before sleeping
    // relaxed: an increment always happens before the decrement that pairs
    // with it (same thread, or through the inbox mutex), so the count cannot
    // reach 0 early; only the decrement to 0 needs to order (below).
    void add_work() noexcept { work.fetch_add(1, std::memory_order_relaxed); }
    // acq_rel: whoever takes the count to 0 sees every other reactor's last
    // changes; they all see `finished` through the wake-up that follows.
    void remove_work() noexcept {
        if (work.fetch_sub(1, std::memory_order_acq_rel) == 1) all_done();
    }
    void all_done() noexcept;
};

class reactor_impl : public scheduler {
public:
    explicit reactor_impl(reactor* owner);
    ~reactor_impl();

    void run();
    task_block* adopt(fiber* f, task_block* b);
    void post(posted_fn* p);
    // From any thread: queue w for the loop, which wakes w->task.
    void deliver(remote_waiter* w) noexcept;
    void request_stop() noexcept;
    // Make a sleeping loop look at its inbox and stop flags (any thread).
    void wake_loop() noexcept;
    void forget_fd(int fd) noexcept;
    // Take t off the books: done, out of the live list, joiners woken.
    void retire(task_block* t) noexcept;
    // A finished task's exception nobody will join: rethrown by run().
    void report_detached(std::exception_ptr e) noexcept;

    // Completion of an operation (poll_io): wakes its task.
    void complete_io(const poll_event& ev) noexcept;
    // Cancel op and wait for its completion without switching (a task that
    // is being unwound cannot park).
    void finish_sync(io_op& op) noexcept;
    void free_stream(accept_stream* s) noexcept;

    reactor* owner;
    std::unique_ptr<poller> poll;       // the backend, chosen at construction (make_poller)
    bool completion;                    // poll->completion_based()
    timer_heap timers;
    fd_table fds;
    std::size_t fd_waiters = 0;         // tasks waiting on the kernel (invariant 3)
    std::size_t task_ops = 0;           // operations in flight for tasks (invariant 3)
    accept_stream* accept_streams = nullptr;   // every stream not yet freed
    std::uint64_t polls = 0;
    bool running = false;               // run() executes
    // stop() from any thread; relaxed: it hands over no data, and the
    // wake-up that follows it is ordered by post_mu_ and the kernel.
    std::atomic<bool> stop_requested{false};
    std::exception_ptr detached_error;  // rethrown by run()
    reactor_impl* thread_prev = nullptr;  // the reactors alive on this thread, newest first
    reactor_impl* thread_next = nullptr;
    runtime_shared* rt = nullptr;         // the runtime this reactor belongs to, if any
    // The loop is about to sleep in the kernel (or does). Written by the
    // loop before it looks at the inbox under inbox_mu_; read by producers
    // under inbox_mu_: the mutex orders the two, so a producer either sees
    // it set and wakes the poller, or its item is seen before the sleep.
    std::atomic<bool> sleeping{false};

private:
    void poll_io(std::int64_t deadline_ns);
    void fire_timers(std::int64_t now) noexcept;
    void drain_inbox();
    void deliver_remote_wakes() noexcept;
    bool inbox_pending();
    void signal_locked() noexcept;
    void teardown() noexcept;
    void drop_streams() noexcept;
    void resume_from_loop(task_block* t) noexcept;
    bool spin_for_attention(std::int64_t ns) noexcept;

    // The inbox: what other threads hand to this reactor.
    std::vector<task_block*> live_;          // live tasks by slot; null where free (invariant 2)
    std::vector<std::uint32_t> free_slots_;  // slots of live_ that are free

    std::mutex inbox_mu_;
    posted_fn* post_head_ = nullptr;        // guarded by inbox_mu_: callables to start as tasks
    posted_fn* post_tail_ = nullptr;
    remote_waiter* remote_head_ = nullptr;  // guarded by inbox_mu_: tasks to wake
    remote_waiter* remote_tail_ = nullptr;
    bool wake_pending_ = false;             // guarded by inbox_mu_: the poller was woken
};

// The reactors alive on the calling thread, newest first.
reactor_impl* thread_reactors() noexcept;
// Enter r in (or take it out of) the calling thread's list: a reactor
// belongs to the thread that constructs it, or that a runtime runs it on.
void bind_to_thread(reactor_impl* r) noexcept;
void unbind_from_thread(reactor_impl* r) noexcept;

// ---------------------------------------------------------------- fd state
// (what io.cpp and the fd waits use)

// Park the calling task t until fd is ready in the given direction (or
// deadline / cancel / close). level: first check the fd's current state
// (public wait_* calls); without it, the caller has just seen EAGAIN.
int wait_fd(task_block* t, int fd, bool write, std::int64_t deadline_ns, bool level);

// What the calling task's reactor remembers of fd's kind (unknown outside a
// task, or while coop holds no registration for fd).
fd_kind known_fd_kind(int fd) noexcept;
// Remember fd's kind, only while the calling task's reactor holds a
// registration for fd: coop::close/forget_fd forget it with the
// registration, so a reused fd number never inherits it.
void remember_fd_kind(int fd, fd_kind k) noexcept;

// Whether t's reactor works with a completion-based backend: io.cpp then
// runs operations with run_io() instead of trying them and waiting.
bool completion_io(task_block* t) noexcept;

// Submit op (its req filled in) for t, the calling task, and park until it
// completes, deadline_ns passes or t is canceled; in the last two cases the
// operation is canceled in the kernel and still waited for. Returns the
// operation's result (>= 0 or -errno: -EBADF when the fd was closed with
// coop::close meanwhile), or -ETIMEDOUT / -ECANCELED when the kernel
// canceled it for the deadline or cancel; an operation that completed first
// reports its result.
int run_io(task_block* t, io_op& op, std::int64_t deadline_ns);

// The next thing the kernel's armed accept on listen_fd produced, for t,
// the calling task: an accepted fd (non-blocking, close-on-exec) or -errno
// as the kernel reported it; parks until there is one (-ETIMEDOUT,
// -ECANCELED, -EBADF when the fd is closed meanwhile). Completion backends.
int next_connection(task_block* t, int listen_fd, std::int64_t deadline_ns);

// Release a task's block when its handle goes away.
void release_task(task_block* t) noexcept;

} // namespace coop::detail

#endif
