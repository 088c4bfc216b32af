// coop/runtime.hpp — a thread-per-core runtime: N reactors on N threads.
//
//   coop::runtime rt;                         // one reactor per online CPU
//   for (std::size_t i = 0; i < rt.size(); ++i)
//       rt.spawn_on(i, [i] { serve(i); });    // a task of reactor i
//   rt.run();                                 // until every task of every reactor is done
//
// Each reactor keeps to its thread: its tasks never move, and they talk to
// other reactors through shared channels (coop/shared_channel.hpp),
// spawn_on()/post(), or the offload pool (coop/offload.hpp). A reactor with
// nothing to do sleeps in the kernel until another thread hands it work.
//
// run() starts threads for reactors 1..N-1 and runs reactor 0 on the
// calling thread. It returns when the runtime has no work left (no live task
// and no posted callable on any reactor), or after stop(). An exception that
// escapes a detached task stops the runtime and is rethrown by run().
//
// Reactors are built in the constructor and destroyed in the destructor, on
// the thread that owns the runtime: tasks left after stop() are canceled and
// unwound there (see reactor.hpp, Teardown).
#ifndef COOP_RUNTIME_HPP
#define COOP_RUNTIME_HPP

#include <coop/call_result.hpp>
#include <coop/deadline.hpp>
#include <coop/detail/error.hpp>
#include <coop/detail/remote.hpp>
#include <coop/export.h>
#include <coop/reactor.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coop {

class runtime;

namespace detail {

// A call from a task of one reactor to another (runtime::call_on). Shared by
// the two sides (two references); its state moves under mu:
//   queued -> running -> done (delivered to the caller), or
//   queued/running -> abandoned when the caller stopped waiting (deadline,
//   cancel, unwinding): the target then skips or drops the result.
// A call the target never runs (its reactor torn down first) ends as done
// with ECANCELED.
struct remote_call {
    enum class state : unsigned char { queued, running, done, abandoned };
    std::atomic<int> refs{2};
    std::mutex mu;
    state st = state::queued;
    int err = 0;                       // ECANCELED when it was never run
    remote_waiter waiter;              // the caller
    virtual void run() noexcept = 0;
    virtual ~remote_call() = default;
    void release() noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;   // the other side is done
    }
};

template <class F, class R>
struct remote_call_impl final : remote_call {
    captured_call<F, R> call;
    template <class G>
    explicit remote_call_impl(G&& g) : call(std::forward<G>(g)) {}
    void run() noexcept override { call.invoke(); }
};

// Post c to reactor i of rt, to run as a task there.
COOP_API void remote_call_post(runtime& rt, std::size_t i, remote_call* c);
// The caller stopped waiting without the delivery: the call is no longer its own.
COOP_API void remote_call_withdraw(remote_call* c) noexcept;

} // namespace detail

struct runtime_options {
    // Reactors (and threads); 0: one per online CPU.
    std::size_t threads = 0;
    // Pin reactor i's thread to the i-th online CPU (modulo their number).
    bool pin = false;
    // How long a reactor with nothing to run spins, watching for work from
    // other reactors, before it sleeps in the kernel. A value handed to a
    // spinning reactor costs a cache-line transfer; to a sleeping one, a
    // system call and a thread wake-up. 0: sleep at once.
    std::chrono::nanoseconds idle_spin = std::chrono::microseconds(3);
};

class runtime {
public:
    COOP_API explicit runtime(runtime_options o = {});
    COOP_API ~runtime();               // std::abort()s while run() executes
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    // Number of reactors.
    COOP_API std::size_t size() const noexcept;

    // From any thread, before or during run(): start fn() as a detached
    // task of reactor i (at once when called from a task of reactor i, else
    // through its inbox). std::out_of_range for a bad i.
    template <class F>
    void spawn_on(std::size_t i, F&& fn) {
        if (on_reactor(i))
            this_reactor().spawn(std::forward<F>(fn));
        else
            reactor_at(i).post(std::forward<F>(fn));
    }

    // From any thread: run fn() as a task of reactor i, through its inbox
    // even from reactor i itself (it runs after what is runnable now).
    template <class F>
    void post(std::size_t i, F&& fn) {
        reactor_at(i).post(std::forward<F>(fn));
    }

    // From a task of this runtime: run fn() as a task of reactor i and park
    // the calling task until it returns; fn's value (or exception) reaches
    // the caller. At once, without a task, when the caller already runs on
    // reactor i. ETIMEDOUT at the deadline and ECANCELED when the calling
    // task is canceled: both return at once; a call not yet started is
    // skipped, a running one finishes and its result is dropped there. fn
    // must therefore own what it uses, or use only what outlives the call.
    // ECANCELED also when reactor i is torn down before it runs the call.
    template <class F, class R = std::invoke_result_t<std::decay_t<F>&>>
    call_result<R> call_on(std::size_t i, F&& fn, deadline d = {});

    // Run every reactor until no work is left or stop(); see above.
    COOP_API void run();
    // From any thread: make run() return soon; tasks stay as they are.
    COOP_API void stop() noexcept;

    // The runtime whose reactor runs the calling thread (null elsewhere).
    COOP_API static runtime* current() noexcept;
    // The index of that reactor; std::logic_error when current() is null.
    COOP_API static std::size_t current_index();

    struct impl;

private:
    COOP_API reactor& reactor_at(std::size_t i);
    COOP_API bool on_reactor(std::size_t i) const noexcept;
    std::unique_ptr<impl> impl_;
};

template <class F, class R>
call_result<R> runtime::call_on(std::size_t i, F&& fn, deadline d) {
    static_assert(!std::is_reference_v<R>, "coop::runtime::call_on: fn must return a value, not a reference");
    detail::task_block* t = detail::current_task("coop::runtime::call_on");
    call_result<R> out;
    if (t->canceled) {
        out.error = detail::errc_of(detail::park_canceled(t));
        return out;
    }
    if (on_reactor(i)) {                   // already there: just call it
        if constexpr (std::is_void_v<R>)
            fn();
        else
            out.value.emplace(fn());
        return out;
    }
    using call = detail::remote_call_impl<std::decay_t<F>, R>;
    auto* c = new call(std::forward<F>(fn));
    c->waiter.task = t;
    try {
        detail::remote_call_post(*this, i, c);
    } catch (...) {
        delete c;                          // never posted: both references are ours
        throw;
    }
    struct withdraw_on_unwind {           // forced_unwind out of park(): the call is not ours
        detail::remote_call* c;
        ~withdraw_on_unwind() {
            if (c) detail::remote_call_withdraw(c);
        }
    } guard{c};
    const int e = detail::park(t, nullptr, nullptr, d.ns());
    guard.c = nullptr;
    if (!c->waiter.delivered) {
        detail::remote_call_withdraw(c);
        out.error = detail::errc_of(e ? e : ECANCELED);
        return out;
    }
    struct owner {                         // delivered: our reference, however we leave
        detail::remote_call* c;
        ~owner() { c->release(); }
    } own{c};
    if (c->err) {
        out.error = detail::errc_of(c->err);
        return out;
    }
    static_cast<call*>(c)->call.deliver(out);
    return out;
}

} // namespace coop

#endif
