// coop/reactor.hpp — run coroutines as tasks over io_uring or epoll (Linux)
// or kqueue (macOS, BSD): a task that waits for time, an fd, a channel or
// another task costs nothing while the others run.
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
// back of the queue. A task that yields or parks switches straight to the
// next runnable task (hand-off: one switch per hop). Between two looks at
// timers and the kernel at most 64 tasks are resumed, so busy yielders
// cannot starve timers or I/O. When no task is runnable the reactor sleeps in
// the kernel until the next timer, an fd event, post() or stop().
//
// Errors. Blocking calls return std::error_code values with POSIX meanings
// (std::generic_category): ETIMEDOUT — the deadline passed; ECANCELED — the
// task was canceled (task::cancel(): the current and every later blocking call
// of that task fail so); EBADF — the fd was closed with coop::close() while
// the task waited. They never throw for these. Calling a blocking function
// outside a reactor task throws std::logic_error.
//
// Backends. Each reactor picks its kernel interface when it is constructed
// (backend() names it): on Linux io_uring where the kernel grants it (5.19
// or later, not refused by sysctl or a seccomp policy), else epoll, without
// a word; kqueue on macOS and the BSDs. COOP_POLLER=io_uring|epoll in the
// environment forces one (the constructor throws if the kernel refuses it).
// With epoll and kqueue, coop::io tries each system call and waits for
// readiness on EAGAIN; with io_uring it hands whole operations to the kernel
// and the task waits for their completion: one io_uring_enter per
// scheduler round submits them and collects what completed.
//
// Fds. coop keeps kernel state for an fd it has waited on (readiness: a
// registration, edge-triggered, both directions; io_uring: operations in
// flight, an armed accept — and there every coop::io call counts as a
// wait) until coop::close(fd) or coop::forget_fd(fd). Such an fd must be
// closed with coop::close() (or released with forget_fd() before ::close):
// the kernel drops a registration silently otherwise, and a task waiting on a
// reused fd number would not be woken; io_uring holds the file open while an
// operation is in flight, so a socket closed behind coop's back would stay
// open and its waiters would wait. coop::close cancels what is in flight on
// the fd before closing it. Registrations and operations carry a generation
// tag, so an event for an fd closed through coop is never delivered to a
// task waiting on the fd number's next file.
//
// Several tasks may wait on the same fd and direction: an event wakes all of
// them; each retries its operation, and those that find nothing to do wait
// again (io_uring: each waits for its own operation). An error or hang-up
// (EPOLLERR/EPOLLHUP; with kqueue, EV_EOF on both filters) wakes readers and
// writers; being edge-triggered, it is reported once, not in a loop.
//
// Threads. A reactor and its tasks, handles and channels belong to the
// thread that runs it; a task never changes threads. The only calls allowed
// from other threads are post() and stop().
//
// Teardown. Destroying a reactor first cancels every task and runs them:
// their blocking calls fail with ECANCELED, so a task that is flushing a
// connection in a destructor, say, finishes normally. A task still alive
// after a few rounds of that (one that ignores ECANCELED) is unwound: its
// blocking calls and yields throw coop::forced_unwind, or return ECANCELED
// inside a destructor that the unwinding runs. Tasks that never started are
// dropped without running. See coop/coroutine.hpp for what cannot be unwound.
// An I/O operation in flight in the kernel (io_uring) is canceled and its
// completion awaited before its task ends or is unwound: the task's buffers
// stay valid as long as the kernel may write them.
#ifndef COOP_REACTOR_HPP
#define COOP_REACTOR_HPP

#include <coop/coroutine.hpp>
#include <coop/deadline.hpp>
#include <coop/detail/task.hpp>
#include <coop/export.h>
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
    // Usable stack bytes (rounded up to pages, at least min_stack_size),
    // reserved, not committed: a task costs the pages it touches. From the
    // thread's stack pool.
    std::size_t stack_size = default_stack_size;
    // For stack-overflow reports and debugging (copied, up to 31 bytes).
    const char* name = nullptr;
    // The task keeps its own FP control state (see coroutine.hpp).
    bool preserve_fp_env = false;
};

class reactor;

// Handle to a spawned task. Move-only; use it on the reactor's thread only.
// It may outlive the reactor; the task has then ended (teardown ends every
// task) and join() reports how.
class task {
public:
    task() noexcept = default;
    task(task&& o) noexcept : block_(std::exchange(o.block_, nullptr)) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            detach();
            block_ = std::exchange(o.block_, nullptr);
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { detach(); }

    // Wait until the task has finished. Returns {} when it has (and rethrows
    // the exception that escaped it, if any; the handle is empty afterwards),
    // ETIMEDOUT when the deadline passed first, ECANCELED when the *calling*
    // task is canceled (the joined task keeps running). std::logic_error on
    // an empty handle, for a task joining itself, for a second task joining
    // the same handle while one waits, when the handle is moved or dropped
    // while a task waits in join(), and from outside a task unless the task
    // has finished.
    [[gnu::always_inline]] std::error_code join(deadline d = {}) {
        detail::task_block* b = block_;
        if (!b || b->state != detail::task_state::done) {
            detail::task_block* self = detail::current_task_or_null();
            if (!b || !self || self == b || b->joining) [[unlikely]]
                join_misuse();
            detail::wait_node node;
            b->joining = true;        // keeps b alive while we wait, whatever happens to the handle
            int e;
            {
                // Runs only when park unwinds (teardown): lets go of b.
                struct unjoin {
                    detail::task_block* b;
                    ~unjoin() { if (b) [[unlikely]] left_join(b); }
                } guard{b};
                e = detail::park(self, &b->joiners, &node, d.ns());
                guard.b = nullptr;
            }
            b->joining = false;
            // A dropped handle must not be read: has_handle says so first.
            if (!b->has_handle || block_ != b) [[unlikely]]
                handle_changed_while_joining(b);
            if (e) return std::error_code(e, std::generic_category());
        }
        return take_result();
    }

    // Cancel: the task's current blocking call (if it is parked) and all its
    // later ones fail with ECANCELED. The task decides how to end. No-op on
    // a finished task or an empty handle.
    COOP_API void cancel() noexcept;

    // True when the task has finished (or the handle is empty).
    bool done() const noexcept { return !block_ || block_->state == detail::task_state::done; }
    explicit operator bool() const noexcept { return block_ != nullptr; }
    // The coroutine id (unique per process) and name given at spawn.
    std::uint64_t id() const noexcept { return block_ ? block_->fib()->id : 0; }
    std::string_view name() const noexcept {
        return block_ ? std::string_view(block_->fib()->name) : std::string_view();
    }

    // Let the task run on unobserved (what the destructor does). If it has
    // already ended with an exception, that exception is reported as a
    // detached task's: the reactor's run() rethrows it.
    COOP_API void detach() noexcept;

private:
    friend class reactor;
    explicit task(detail::task_block* b) noexcept : block_(b) {}
    [[noreturn]] COOP_API void join_misuse() const;
    [[noreturn]] COOP_API void handle_changed_while_joining(detail::task_block* b) const;
    COOP_API static void left_join(detail::task_block* b) noexcept;
    COOP_API std::error_code take_result();
    detail::task_block* block_ = nullptr;
};

namespace detail {
class reactor_impl;
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
    // Creates the kernel backend (see Backends above) and its wake-up
    // channel. Throws std::system_error if the kernel refuses,
    // std::invalid_argument for a COOP_POLLER this build does not have.
    COOP_API reactor();
    // Cancels and runs, then unwinds, every task that has not finished (see
    // the file comment) and frees them. Posted callables that never ran are
    // dropped. Must not run inside one of this reactor's tasks (aborts).
    COOP_API ~reactor();
    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    // Start fn() as a task; it first runs when the reactor gets to it. An
    // exception escaping fn goes to task::join(), or, for a detached task,
    // out of run().
    template <class F>
    task spawn(F&& fn, spawn_options opts = {}) {
        using Fn = std::decay_t<F>;
        static_assert(std::is_invocable_v<Fn&>, "a task body is callable with no arguments");
        using Body = detail::task_body<Fn>;
        coroutine_options co;
        co.stack_size = opts.stack_size;
        co.preserve_fp_env = opts.preserve_fp_env;
        co.name = opts.name;
        auto* f = detail::make_fiber<Body>(co, &Body::run, std::is_nothrow_invocable_v<Fn&>,
                                           std::forward<F>(fn));
        auto* b = ::new (static_cast<void*>(f->sched_space)) detail::task_block();
        try {
            return task(adopt(f, b));
        } catch (...) {
            detail::destroy_task(b);          // not adopted: never ran, nothing else refers to it
            throw;
        }
    }

    // Run tasks until all have finished, or until stop(). Rethrows an
    // exception that escaped a detached task (the reactor stays usable; run()
    // again continues). Throws std::logic_error when called from a
    // coroutine or a task, or when this reactor already runs.
    COOP_API void run();

    // Make run() return once the running task yields or parks. Tasks stay
    // as they are; run() again continues them. Thread-safe, and safe to
    // call from a task of any reactor.
    COOP_API void stop() noexcept;

    // From any thread: run fn() as a task of this reactor (wakes it up if it
    // sleeps in the kernel). Callables posted before or while run() executes
    // run during it; run() does not return while some are pending.
    template <class F>
    void post(F&& fn);

    // Tasks spawned and not finished yet.
    COOP_API std::size_t size() const noexcept;
    // Diagnostics: how many times the reactor has asked the kernel for
    // events (blocking or not).
    COOP_API std::uint64_t polls() const noexcept;
    // The kernel interface this reactor uses: "io_uring", "epoll" or
    // "kqueue" (see the file comment, Backends).
    COOP_API const char* backend() const noexcept;
    // The one a reactor constructed now would use (COOP_POLLER included).
    // Sets up and drops a backend to find out; throws as the constructor.
    COOP_API static const char* default_backend();

    detail::reactor_impl* impl() const noexcept { return impl_; }

private:
    COOP_API detail::task_block* adopt(detail::fiber* f, detail::task_block* b);
    COOP_API void post_node(detail::posted_fn* p);
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

// The reactor of the calling thread: the one whose task is running, else
// the one whose run() is executing, else the most recently constructed one
// on this thread that is still alive. std::logic_error if there is none.
COOP_API reactor& this_reactor();

// ---------------------------------------------------------------- inside a task
// Each of these throws std::logic_error when called outside a reactor task.

// Go to the back of the run queue; the next runnable task runs meanwhile.
[[gnu::always_inline]] inline void yield() {
    detail::thread_state* ts = detail::this_thread();
    detail::task_block* t = detail::current_task("coop::yield", ts);
    detail::fiber* f = t->fib();
    if (f->unwinding) [[unlikely]] {
        detail::unwind_point(f);          // throws, unless inside a destructor
        return;
    }
    t->state = detail::task_state::runnable;
    t->owner->rq.push(t);
    t->owner->switch_away(t, ts);
    if (f->unwinding) [[unlikely]]
        detail::unwind_point(f);
}

// Park until the steady clock reaches t: {} then, ECANCELED if canceled.
// A point in the past returns {} at once.
COOP_API std::error_code sleep_until(std::chrono::steady_clock::time_point t);

// sleep_until(now + d).
template <class Rep, class Period>
std::error_code sleep_for(std::chrono::duration<Rep, Period> d) {
    return sleep_until(deadline(d).time_point());
}

// Park until fd is readable (or writable): {} when it is (level semantics:
// returns at once if it already is; includes EOF, hang-up and errors —
// the next read or write tells which), ETIMEDOUT, ECANCELED, or EBADF (fd
// invalid, or closed with coop::close() meanwhile).
COOP_API std::error_code wait_readable(int fd, deadline d = {});
COOP_API std::error_code wait_writable(int fd, deadline d = {});

// ---------------------------------------------------------------- fds
// Wake every task waiting on fd with EBADF, drop the registration every
// reactor of this thread has for it, then close fd. Returns ::close's
// error, if any (EINTR counts as closed). Usable inside and outside tasks.
COOP_API std::error_code close(int fd) noexcept;

// Like close() without closing: wakes waiters with EBADF and drops the
// registrations, for code that hands fd to someone else.
COOP_API void forget_fd(int fd) noexcept;

} // namespace coop

#endif
