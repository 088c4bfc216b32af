// coop/offload.hpp — run a blocking call on a pool of worker threads while
// the calling task parks, so the reactor keeps running its other tasks.
//
//   auto r = coop::offload([&] { return ::getaddrinfo(host, port, &hints, &res); }, 5s);
//   if (r.error) ...            // ETIMEDOUT, ECANCELED
//   else use(*r.value);         // what fn returned
//
// For what epoll and kqueue cannot wait for: name resolution, disk files,
// CPU-heavy steps, libraries that block. fn runs on one of a bounded number
// of worker threads shared by the whole process (default 4, like libuv's;
// COOP_OFFLOAD_THREADS in the environment or set_offload_threads() change
// it). Calls beyond that wait in a FIFO queue.
//
// The result or the exception fn throws reaches the task: offload() returns
// the value, or rethrows the exception. ETIMEDOUT when the deadline passes
// first, ECANCELED when the calling task is canceled: both return at once;
// a call still queued is dropped, a running one finishes on its worker and
// its result is destroyed there. fn must therefore own what it uses, or use
// only what outlives the call (capture by value when in doubt).
//
// The worker wakes the task through its reactor's inbox (detail/remote.hpp).
// Calling offload() outside a reactor task throws std::logic_error.
#ifndef COOP_OFFLOAD_HPP
#define COOP_OFFLOAD_HPP

#include <coop/call_result.hpp>
#include <coop/deadline.hpp>
#include <coop/detail/error.hpp>
#include <coop/detail/remote.hpp>
#include <coop/detail/task.hpp>
#include <coop/export.h>

#include <cerrno>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace coop {

// Worker threads of the offload pool: at least 1. Raising it starts threads
// at once; lowering it lets the surplus exit once idle.
COOP_API void set_offload_threads(std::size_t n);
COOP_API std::size_t offload_threads() noexcept;

namespace detail {

// A call handed to the pool. Its state moves under the pool's mutex:
// queued -> running -> done (delivered to the task), or -> abandoned when
// the task stopped waiting (the worker then deletes it).
struct offload_job {
    enum class state : unsigned char { queued, running, done, abandoned };
    remote_waiter waiter;
    offload_job* next = nullptr;      // the pool's queue
    state st = state::queued;
    virtual void run() noexcept = 0;  // calls fn, keeps its result or exception
    virtual ~offload_job() = default;
};

template <class F, class R>
struct offload_call final : offload_job {
    captured_call<F, R> call;
    template <class G>
    explicit offload_call(G&& g) : call(std::forward<G>(g)) {}
    void run() noexcept override { call.invoke(); }
};

// Queue the job for a worker (starting the pool on first use).
COOP_API void offload_submit(offload_job* job);
// After the task's park ended without the delivery (local: ETIMEDOUT or
// ECANCELED): the job is withdrawn and no longer the task's: dropped if it
// was still queued, left to its worker to delete if it runs, deleted once
// its delivery is handled if it had finished.
COOP_API void offload_withdraw(offload_job* job, int local) noexcept;

} // namespace detail

template <class F, class R = std::invoke_result_t<std::decay_t<F>&>>
call_result<R> offload(F&& fn, deadline d = {}) {
    static_assert(!std::is_reference_v<R>, "coop::offload: fn must return a value, not a reference");
    detail::task_block* t = detail::current_task("coop::offload");
    call_result<R> out;
    if (t->canceled) {
        out.error = detail::errc_of(detail::park_canceled(t));
        return out;
    }
    using call = detail::offload_call<std::decay_t<F>, R>;
    auto* job = new call(std::forward<F>(fn));
    job->waiter.task = t;
    detail::offload_submit(job);
    struct withdraw_on_unwind {          // forced_unwind out of park(): the job is not ours
        detail::offload_job* j;
        ~withdraw_on_unwind() {
            if (j) detail::offload_withdraw(j, ECANCELED);
        }
    } guard{job};
    const int e = detail::park(t, nullptr, nullptr, d.ns());
    guard.j = nullptr;
    if (!job->waiter.delivered) {
        detail::offload_withdraw(job, e);   // the job is no longer ours
        out.error = detail::errc_of(e ? e : ECANCELED);
        return out;
    }
    struct owner {                       // the job is ours again: free it however we leave
        detail::offload_job* j;
        ~owner() { delete j; }
    } own{job};
    static_cast<call*>(job)->call.deliver(out);
    return out;
}

} // namespace coop

#endif
