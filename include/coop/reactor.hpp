// coop/reactor.hpp — run coroutines as tasks over epoll (Linux) or kqueue
// (macOS, BSD): a task that waits for time, an fd, a channel or another task
// costs nothing while the others run.
//
//   coop::reactor r;                              // one per thread
//   coop::task t = r.spawn([] {
//       coop::sleep_for(10ms);                    // parks this task only
//       auto ec = coop::wait_readable(fd, 1s);    // {} or ETIMEDOUT, ECANCELED, EBADF
//   });
//   r.run();                                      // until every task has finished
//
// Tasks. spawn() starts a stackful coroutine (a pooled stack; the task's
// control block lives in the coroutine frame at the top of that stack, so a
// spawn allocates nothing else) and returns a coop::task handle. Dropping the
// handle detaches the task: it keeps running and its resources go away when
// it ends. Tasks may spawn tasks (coop::this_reactor()).
//
// Scheduling. Runnable tasks run in FIFO order; coop::yield() goes to the
// back of the queue. Between two polls of the kernel at most 64 tasks are
// resumed, so busy yielders cannot starve timers or I/O. When no task is
// runnable the reactor sleeps in the kernel until the next timer, an fd event,
// post() or stop().
//
// Errors. Blocking calls return std::error_code values with POSIX meanings
// (std::generic_category): ETIMEDOUT — the deadline passed; ECANCELED — the
// task was canceled (task::cancel(): the current and every later blocking call
// of that task fail so); EBADF — the fd was closed with coop::close() while
// the task waited. They never throw for these. Calling a blocking function
// outside a reactor task throws std::logic_error.
//
// Fds. wait_readable/wait_writable register an fd with the kernel once
// (edge-triggered, both directions) and keep it registered until
// coop::close(fd) or coop::forget_fd(fd). An fd coop has waited on must be
// closed with coop::close() (or released with forget_fd() before ::close):
// the kernel drops its registration silently otherwise, and a task waiting
// on a reused fd number would not be woken. Registrations carry a generation
// tag, so an event for an fd closed through coop is never delivered to a
// task waiting on the fd number's next file.
//
// Several tasks may wait on the same fd and direction: an event wakes all of
// them; each retries its operation, and those that find nothing to do wait
// again. An error or hang-up (EPOLLERR/EPOLLHUP; with kqueue, EV_EOF on both
// filters) wakes readers and writers; being edge-triggered, it is reported
// once, not in a loop.
//
// Threads. A reactor and its tasks, handles and channels belong to the
// thread that runs it. The only calls allowed from other threads are post()
// and stop().
#ifndef COOP_REACTOR_HPP
#define COOP_REACTOR_HPP

#include <coop/coroutine.hpp>
#include <coop/deadline.hpp>
#include <coop/detail/task.hpp>
#include <coop/stack.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coop {

struct spawn_options {
    // Usable stack bytes (rounded up to pages), reserved, not committed: a
    // task costs the pages it touches. From the thread's stack pool.
    std::size_t stack_size = default_stack_size;
    // For stack-overflow reports and debugging (copied, up to 31 bytes).
    const char* name = nullptr;
    // The task keeps its own FP control state (see coroutine.hpp).
    bool preserve_fp_env = false;
};

class reactor;

// Handle to a spawned task. Move-only; use it on the reactor's thread only,
// and do not let it outlive the reactor unless the task has finished.
class task {
public:
    task() noexcept = default;
    task(task&& o) noexcept : cb_(std::exchange(o.cb_, nullptr)) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            detach();
            cb_ = std::exchange(o.cb_, nullptr);
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { detach(); }

    // Wait until the task has finished. Returns {} when it has (and rethrows
    // the exception that escaped it, if any; the handle is empty afterwards),
    // ETIMEDOUT when the deadline passed first, ECANCELED when the *calling*
    // task is canceled (the joined task keeps running). From outside a task,
    // join() works only on a finished task (std::logic_error otherwise, and
    // on an empty handle or a task joining itself).
    std::error_code join(deadline d = {}) {
        if (!cb_ || cb_->state != detail::task_state::done) {
            detail::task_cb* self = detail::current_task_or_null();
            if (!cb_ || !self || self == cb_) [[unlikely]]
                join_misuse();
            detail::wait_node node;
            if (int e = detail::park(self, &cb_->joiners, &node, d.ns()))
                return std::error_code(e, std::generic_category());
        }
        return take_result();
    }

    // Cancel: the task's current blocking call (if it is parked) and all its
    // later ones fail with ECANCELED. The task decides how to end. No-op on
    // a finished task or an empty handle.
    void cancel() noexcept;

    // True when the task has finished (or the handle is empty).
    bool done() const noexcept { return !cb_ || cb_->state == detail::task_state::done; }
    explicit operator bool() const noexcept { return cb_ != nullptr; }
    // The coroutine id (unique per process) and name given at spawn.
    std::uint64_t id() const noexcept { return cb_ ? cb_->f->id : 0; }
    std::string_view name() const noexcept { return cb_ ? std::string_view(cb_->f->name) : std::string_view(); }

    // Let the task run on unobserved (what the destructor does).
    void detach() noexcept;

private:
    friend class reactor;
    explicit task(detail::task_cb* cb) noexcept : cb_(cb) {}
    [[noreturn]] void join_misuse() const;
    std::error_code take_result();
    detail::task_cb* cb_ = nullptr;
};

namespace detail {
// A callable handed to reactor::post from another thread.
struct posted_fn {
    posted_fn* next = nullptr;
    virtual ~posted_fn() = default;
    virtual void launch(reactor& r) = 0;
};
template <class Fn>
struct posted_impl;
} // namespace detail

class reactor {
public:
    // Creates the kernel poller (epoll or kqueue) and its wake-up channel.
    // Throws std::system_error if the kernel refuses.
    reactor();
    // Unwinds every task that has not finished (their destructors run; their
    // blocking calls fail with ECANCELED) and frees them. Posted callables
    // that never ran are dropped.
    ~reactor();
    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    // Start fn() as a task; it first runs when run() gets to it. An exception
    // escaping fn goes to task::join(), or, for a detached task, out of run().
    template <class F>
    task spawn(F&& fn, spawn_options opts = {}) {
        using Fn = std::decay_t<F>;
        static_assert(std::is_invocable_v<Fn&>, "a task body is callable with no arguments");
        coroutine_options co;
        co.stack_size = opts.stack_size;
        co.preserve_fp_env = opts.preserve_fp_env;
        co.name = opts.name;
        detail::frame* f = detail::make_frame(detail::task_body<Fn>(std::forward<F>(fn)), co);
        auto* body = &static_cast<detail::frame_with<detail::task_body<Fn>>*>(f)->fn;
        return task(adopt(f, &body->cb));
    }

    // Run tasks until all have finished, or until stop(). Rethrows an
    // exception that escaped a detached task (the reactor stays usable; run()
    // again continues). Throws std::logic_error when called from a task.
    void run();

    // Make run() return after the task running now yields or parks. Tasks
    // stay as they are; run() again continues them. Thread-safe.
    void stop() noexcept;

    // From any thread: run fn() as a task of this reactor (wakes it up if it
    // sleeps in the kernel). Callables posted before or while run() executes
    // run during it; run() does not return while some are pending.
    template <class F>
    void post(F&& fn);

    // Tasks spawned and not finished yet.
    std::size_t size() const noexcept;
    // Diagnostics: how many times the reactor has asked the kernel for
    // events (blocking or not).
    std::uint64_t polls() const noexcept;
    // "epoll" or "kqueue".
    static const char* backend() noexcept;

    detail::reactor_impl* impl() const noexcept { return impl_; }

private:
    detail::task_cb* adopt(detail::frame* f, detail::task_cb* cb);
    void post_node(detail::posted_fn* p);
    detail::reactor_impl* impl_;
};

namespace detail {
template <class Fn>
struct posted_impl final : posted_fn {
    Fn fn;
    template <class G>
    explicit posted_impl(G&& g) : fn(std::forward<G>(g)) {}
    void launch(reactor& r) override { r.spawn(std::move(fn)); }
};
} // namespace detail

template <class F>
void reactor::post(F&& fn) {
    post_node(new detail::posted_impl<std::decay_t<F>>(std::forward<F>(fn)));
}

// The reactor of the calling thread: the one whose run() is executing, else
// the last one constructed on this thread and still alive. std::logic_error
// if there is none.
reactor& this_reactor();

// ---------------------------------------------------------------- inside a task
// Each of these throws std::logic_error when called outside a reactor task.

// Go to the back of the run queue. Inline: the switch's return then pairs
// with the scheduler's resume, which keeps the branch predictor right.
inline void yield() {
    detail::task_cb* t = detail::current_task("coop::yield");
    detail::frame* f = t->f;
    if (f->unwinding) [[unlikely]]
        return;                       // being torn down: nothing to yield to
    t->state = detail::task_state::runnable;
    t->rq->push(t);
    detail::yield(f, nullptr);
}

// Park until the steady clock reaches t: {} then, ECANCELED if canceled.
// A point in the past returns {} at once.
std::error_code sleep_until(std::chrono::steady_clock::time_point t);

// sleep_until(now + d).
template <class Rep, class Period>
std::error_code sleep_for(std::chrono::duration<Rep, Period> d) {
    return sleep_until(deadline(d).time_point());
}

// Park until fd is readable (or writable): {} when it is (level semantics:
// returns at once if it already is; includes EOF, hang-up and errors —
// the next read or write tells which), ETIMEDOUT, ECANCELED, or EBADF (fd
// invalid, or closed with coop::close() meanwhile).
std::error_code wait_readable(int fd, deadline d = {});
std::error_code wait_writable(int fd, deadline d = {});

// ---------------------------------------------------------------- fds
// Wake every task waiting on fd with EBADF, drop coop's registration, then
// close fd. Returns ::close's error, if any (EINTR counts as closed). Usable
// inside and outside tasks.
std::error_code close(int fd) noexcept;

// Like close() without closing: wakes waiters with EBADF and drops the
// registration, for code that hands fd to someone else.
void forget_fd(int fd) noexcept;

} // namespace coop

#endif
