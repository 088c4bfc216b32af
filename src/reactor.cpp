// src/reactor.cpp — tasks and the scheduler: spawn, hand-off switching,
// parking and waking, timers, the run() loop, post() and stop(), teardown.
// Backend-neutral: the kernel is reached only through src/poller.hpp.
#include "reactor_impl.hpp"

#include "clock.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace coop {
namespace detail {

namespace {
// The reactors alive on this thread, newest first (this_reactor(), close()).
constinit thread_local reactor_impl* t_reactors = nullptr;
// The reactor whose run() executes on this thread.
constinit thread_local reactor_impl* t_running = nullptr;
} // namespace

void bind_to_thread(reactor_impl* r) noexcept {
    r->thread_prev = nullptr;
    r->thread_next = t_reactors;
    if (t_reactors) t_reactors->thread_prev = r;
    t_reactors = r;
}

void unbind_from_thread(reactor_impl* r) noexcept {
    if (r->thread_prev) r->thread_prev->thread_next = r->thread_next;
    else if (t_reactors == r) t_reactors = r->thread_next;
    if (r->thread_next) r->thread_next->thread_prev = r->thread_prev;
    r->thread_prev = r->thread_next = nullptr;
}

reactor_impl* thread_reactors() noexcept { return t_reactors; }

void throw_not_in_task(const char* what) {
    throw std::logic_error(std::string(what) + ": called outside a coop::reactor task");
}

void assert_failed(const char* cond, const char* file, int line) noexcept {
    std::fprintf(stderr, "coop: assertion failed: %s (%s:%d)\n", cond, file, line);
    std::abort();
}

// ---------------------------------------------------------------- parking

int park_timer(task_block* t, std::int64_t deadline_ns) {
    if (deadline_ns <= monotonic_ns()) return ETIMEDOUT;
    static_cast<reactor_impl*>(t->owner)->timers.push(t, deadline_ns);
    return 0;
}

void park_unwound(task_block* t, wait_node* node) noexcept {
    if (node && node->owner) node->owner->remove(node);
    t->wait = nullptr;
    if (t->heap_index != no_heap_index) static_cast<reactor_impl*>(t->owner)->timers.remove(t);
    t->state = task_state::running;
}

int park_canceled(task_block* t) {
    // During teardown a canceled task still passes through the scheduler,
    // so that one which ignores ECANCELED and keeps calling cannot keep the
    // teardown from moving on (it is unwound when its rounds are used up).
    scheduler* s = t->owner;
    if (s->tearing_down && !t->fib()->unwinding) {   // unwinding: no switch (teardown resumed us)
        t->state = task_state::runnable;
        s->rq.push(t);
        s->switch_away(t);
        if (t->fib()->unwinding) unwind_point(t->fib());
    }
    return ECANCELED;
}

void wake(task_block* t, int err) noexcept {
    if (t->state != task_state::parked) return;
    COOP_ASSERT(t->wait == nullptr || (t->wait->task == t && t->wait->owner != nullptr));
    if (wait_node* n = t->wait) {
        if (n->owner) n->owner->remove(n);
        t->wait = nullptr;
    }
    auto* r = static_cast<reactor_impl*>(t->owner);
    if (t->heap_index != no_heap_index) r->timers.remove(t);
    t->wake_err = err;
    t->state = task_state::runnable;
    r->rq.push(t);
}

void destroy_task(task_block* t) noexcept {
    fiber* f = t->fib();
    t->~task_block();                 // it lives in f's sched_space
    destroy_fiber(f);
}

// ---------------------------------------------------------------- hand-off

void scheduler::reap_now() noexcept {
    task_block* t = std::exchange(reap, nullptr);
    COOP_ASSERT(t->state == task_state::done && !t->has_handle);
    destroy_task(t);
}

void scheduler::task_ended(task_block* t) noexcept {
    auto* r = static_cast<reactor_impl*>(this);
    fiber* f = t->fib();
    COOP_ASSERT(t->state == task_state::running && f->state == fiber_state::running);
    r->retire(t);
    if (f->unwinding) return;         // teardown frees it; the fiber exits to the teardown
    if (!t->has_handle && !t->joining) {   // a joiner whose handle was dropped releases it
        if (t->error) r->report_detached(std::move(t->error));
        COOP_ASSERT(reap == nullptr);
        reap = t;                     // freed once we run on another stack
    }
    fiber_ctx* to = &loop;
    if (hops_left != 0 && !attention.load(std::memory_order_relaxed)) {
        --hops_left;
        if (task_block* n = rq.pop()) {
            COOP_ASSERT(n->state == task_state::runnable);
            n->state = task_state::running;
            n->fib()->state = fiber_state::running;
            to = &n->fib()->self;
        }
    }
    f->exit_to = to;
}

// ---------------------------------------------------------------- reactor_impl

reactor_impl::reactor_impl(reactor* o)
    : owner(o), poll(make_poller()), completion(poll->completion_based()) {
    bind_to_thread(this);
}

reactor_impl::~reactor_impl() {
    teardown();
    unbind_from_thread(this);
}

task_block* reactor_impl::adopt(fiber* f, task_block* b) {
    COOP_ASSERT(f->state == fiber_state::created && !f->scheduled && b->fib() == f);
    b->owner = this;
    b->has_handle = true;
    b->canceled = tearing_down;       // a task spawned during teardown never starts
    if (free_slots_.empty()) {
        live_.push_back(nullptr);                    // may throw: nothing is changed yet
        free_slots_.reserve(live_.capacity());       // retire() then never allocates
        free_slots_.push_back(static_cast<std::uint32_t>(live_.size() - 1));
    }
    b->slot = free_slots_.back();
    free_slots_.pop_back();
    live_[b->slot] = b;
    f->scheduled = true;
    ++live;
    if (rt) rt->add_work();
    b->state = task_state::runnable;
    rq.push(b);
    return b;
}

void reactor_impl::retire(task_block* t) noexcept {
    COOP_ASSERT(t->state != task_state::done);
    COOP_ASSERT(t->wait == nullptr && t->heap_index == no_heap_index);
    t->state = task_state::done;
    COOP_ASSERT(live_[t->slot] == t);
    live_[t->slot] = nullptr;
    free_slots_.push_back(t->slot);                  // within the reserved capacity
    --live;
    wake_all(t->joiners, 0);
    if (rt) rt->remove_work();
}

void reactor_impl::report_detached(std::exception_ptr e) noexcept {
    if (tearing_down) return;         // nobody left to tell: the reactor is going away
    if (!detached_error) detached_error = std::move(e);
    attention.store(true, std::memory_order_relaxed);
}

void reactor_impl::fire_timers(std::int64_t now) noexcept {
    while (!timers.empty() && timers.next() <= now) wake(timers.pop(), ETIMEDOUT);
}

void reactor_impl::poll_io(std::int64_t deadline_ns) {
    ++polls;
    const int n = poll->wait(deadline_ns);
    if (n < 0) [[unlikely]] {
        std::fprintf(stderr, "coop: the %s poller failed: errno %d\n", poll->name(), -n);
        std::abort();
    }
    poll_event ev;
    for (int i = 0; i < n; ++i) {
        if (!poll->event(i, &ev)) continue;  // the poller's own (wake-up, timer)
        if (ev.what == poll_event::kind::done) {
            complete_io(ev);
            continue;
        }
        const int fd = static_cast<int>(static_cast<std::uint32_t>(ev.token));
        const std::uint32_t gen = static_cast<std::uint32_t>(ev.token >> 32);
        fd_entry* e = fds.find(fd);
        if (!e || !e->registered || e->gen != gen) continue;   // stale: the fd was closed meanwhile
        if (ev.readable) wake_all(e->readers, 0);
        if (ev.writable) wake_all(e->writers, 0);
    }
}

// The inbox. Producers (post(), deliver(), stop()) queue under inbox_mu_
// and, still under it, wake the poller if the loop sleeps: a reactor being
// destroyed takes inbox_mu_ first, so its poller is never written to after
// it is gone. `attention` makes the running task's next hand-off go to the
// loop; it needs no ordering of its own (relaxed): the inbox is read under
// the mutex, and the kernel wake-up is what a sleeping loop waits for.
void reactor_impl::signal_locked() noexcept {
    attention.store(true, std::memory_order_relaxed);
    if (!wake_pending_ && sleeping.load(std::memory_order_relaxed)) {
        wake_pending_ = true;         // one wake-up per sleep, however many items
        poll->wake();
    }
}

void reactor_impl::wake_loop() noexcept {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    signal_locked();
}

void reactor_impl::post(posted_fn* p) {
    if (rt) rt->add_work();           // until it has started as a task
    std::lock_guard<std::mutex> lk(inbox_mu_);
    p->next = nullptr;
    if (post_tail_) post_tail_->next = p; else post_head_ = p;
    post_tail_ = p;
    signal_locked();
}

void reactor_impl::deliver(remote_waiter* w) noexcept {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    w->next = nullptr;
    if (remote_tail_) remote_tail_->next = w; else remote_head_ = w;
    remote_tail_ = w;
    signal_locked();
}

bool reactor_impl::inbox_pending() {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    return post_head_ || remote_head_;
}

void reactor_impl::deliver_remote_wakes() noexcept {
    remote_waiter* woken;
    {
        std::lock_guard<std::mutex> lk(inbox_mu_);
        woken = remote_head_;
        remote_head_ = remote_tail_ = nullptr;
    }
    while (woken) {
        remote_waiter* w = woken;
        woken = w->next;              // read first: the task may return once woken
        w->delivered = true;
        wake(w->task, w->result);
    }
}

void reactor_impl::drain_inbox() {
    deliver_remote_wakes();
    posted_fn* list;
    {
        std::lock_guard<std::mutex> lk(inbox_mu_);
        list = post_head_;
        post_head_ = post_tail_ = nullptr;
        wake_pending_ = false;
    }
    while (list) {
        posted_fn* p = list;
        list = p->next;
        try {
            p->launch(*owner);
        } catch (...) {
            delete p;
            if (rt) rt->remove_work();
            // put the rest back in front, then report
            if (list) {
                std::lock_guard<std::mutex> lk(inbox_mu_);
                posted_fn* last = list;
                while (last->next) last = last->next;
                last->next = post_head_;
                if (!post_head_) post_tail_ = last;
                post_head_ = list;
                attention.store(true, std::memory_order_relaxed);
            }
            throw;
        }
        delete p;
        if (rt) rt->remove_work();    // it is a task now, counted as one
    }
}

void reactor_impl::request_stop() noexcept {
    // From one of our own tasks the loop is not asleep: the task's next
    // switch goes to it. From anywhere else the loop may sleep in the kernel.
    if (task_block* t = current_task_or_null(); t && t->owner == this) {
        stop_requested.store(true, std::memory_order_relaxed);
        attention.store(true, std::memory_order_relaxed);
        return;
    }
    // The flag is raised under inbox_mu_, not before it: run() cannot see
    // the stop, return, and let the reactor be destroyed while this thread
    // has yet to take the lock and write to the poller (see signal_locked()).
    std::lock_guard<std::mutex> lk(inbox_mu_);
    stop_requested.store(true, std::memory_order_relaxed);
    attention.store(true, std::memory_order_relaxed);
    poll->wake();
}

void deliver_remote(remote_waiter* w) noexcept {
    task_block* t = w->task;
    auto* r = static_cast<reactor_impl*>(t->owner);
    if (task_block* me = current_task_or_null(); me && me->owner == r) {
        w->delivered = true;          // same reactor: wake it here and now
        wake(t, w->result);
        return;
    }
    r->deliver(w);
}

void await_delivery(remote_waiter* w) noexcept {
    task_block* t = w->task;
    while (!w->delivered) {           // the inbox entry is queued (see remote.hpp)
        // Being unwound by teardown: no switching any more; the entry is
        // dropped with the reactor, untouched.
        if (t->fib()->unwinding) return;
        t->state = task_state::parked;
        t->owner->switch_away(t);
    }
}

// Spin up to ns (or to the next timer) for `attention`, the flag producers
// set with every inbox item; true if it came.
bool reactor_impl::spin_for_attention(std::int64_t ns) noexcept {
    std::int64_t until = monotonic_ns() + ns;
    if (!timers.empty() && timers.next() < until) until = timers.next();
    do {
        for (int i = 0; i < 64; ++i) {
            if (attention.load(std::memory_order_relaxed)) return true;
#if defined(__x86_64__)
            __builtin_ia32_pause();
#elif defined(__aarch64__)
            asm volatile("yield");
#endif
        }
    } while (monotonic_ns() < until);
    return false;
}

// The loop resumes t; returns when a task switches to the loop.
inline void reactor_impl::resume_from_loop(task_block* t) noexcept {
    COOP_ASSERT(t->state == task_state::runnable);
    t->state = task_state::running;
    t->fib()->state = fiber_state::running;
    (void)switch_to(this_thread(), loop, t->fib()->self, nullptr);
    if (reap) reap_now();
}

void reactor_impl::run() {
    if (this_thread()->current)
        throw std::logic_error("coop::reactor::run: called from inside a coroutine or task");
    if (running) throw std::logic_error("coop::reactor::run: already running");
    struct scope {
        reactor_impl* r;
        reactor_impl* prev;
        ~scope() {
            r->running = false;
            r->hops_left = 0;
            t_running = prev;
        }
    } guard{this, t_running};
    running = true;
    t_running = this;
    loop.owner = nullptr;             // run() is not allowed on a fiber: the thread's stack

    for (;;) {
        // Work only the loop does: errors to rethrow, stop(), the inbox.
        if (detached_error) [[unlikely]]
            std::rethrow_exception(std::exchange(detached_error, nullptr));
        if (stop_requested.load(std::memory_order_relaxed)) [[unlikely]] {
            stop_requested.store(false, std::memory_order_relaxed);
            return;
        }
        if (rt && rt->finished.load(std::memory_order_acquire)) [[unlikely]]
            return;
        if (attention.exchange(false, std::memory_order_relaxed)) drain_inbox();

        // Timers and the kernel: wait when nothing is runnable, else look
        // without waiting (so busy tasks cannot starve them).
        if (rq.empty()) {
            // Alone, a reactor is done when its tasks are; in a runtime,
            // when the runtime is (another reactor may still post to it).
            if (!rt && live == 0 && !inbox_pending()) return;
            // In a runtime, spin a little before sleeping: a value handed
            // over by another reactor then costs a cache-line transfer
            // instead of a kernel wake-up of this thread (producers write
            // the eventfd only while `sleeping` is set).
            if (rt && rt->idle_spin_ns > 0 && spin_for_attention(rt->idle_spin_ns)) continue;
            sleeping.store(true, std::memory_order_relaxed);
            // Under inbox_mu_ (see `sleeping`): items, and a runtime that
            // finished just now (all_done() signals under the same mutex).
            const bool pending = inbox_pending() || (rt && rt->finished.load(std::memory_order_acquire));
            poll_io(pending ? 0 : timers.empty() ? no_deadline_ns : timers.next());
            sleeping.store(false, std::memory_order_relaxed);
            if (pending) attention.store(true, std::memory_order_relaxed);
            if (!timers.empty()) fire_timers(monotonic_ns());
            continue;                 // see what the wait brought before running anyone
        }
        if (!timers.empty()) fire_timers(monotonic_ns());
        if (fd_waiters) poll_io(0);

        // Run: the first task hands off to the next ones, up to
        // poll_interval resumes in all, then comes back here.
        hops_left = poll_interval - 1;
        resume_from_loop(rq.pop());
    }
}

// Teardown, on the thread's own stack (never from a task of this reactor).
void reactor_impl::teardown() noexcept {
    if (running) {
        std::fputs("coop: a reactor was destroyed while its run() executes\n", stderr);
        std::abort();
    }
    {   // posts, deliveries and stops in flight on other threads are done with us
        std::lock_guard<std::mutex> lk(inbox_mu_);
    }
    tearing_down = true;
    loop.owner = nullptr;
    hops_left = 0;                    // every switch away comes back to the loop

    // 1. Cancel every task and run them: blocking calls fail with ECANCELED
    //    (after one trip through the loop), so most tasks end by themselves.
    //    A bounded number of rounds: a task that ignores ECANCELED moves on.
    for (task_block* t : live_) {
        if (!t) continue;
        t->canceled = true;
        if (t->state == task_state::parked) wake(t, ECANCELED);
    }
    std::size_t budget = 8 * live + 64;
    for (;;) {
        // Tasks waiting for another thread's completion get it; posts are
        // dropped below, unstarted.
        if (attention.exchange(false, std::memory_order_relaxed)) deliver_remote_wakes();
        // Tasks whose operations the kernel is canceling wait for their
        // completions (invariant 3): collect them, then let the tasks end.
        if (rq.empty() && task_ops != 0 && budget != 0) {
            poll_io(no_deadline_ns);
            continue;
        }
        if (rq.empty() || budget-- == 0) break;
        task_block* t = rq.pop();
        if (t->fib()->state == fiber_state::created) {   // never started: dropped below
            t->state = task_state::runnable;
            continue;
        }
        resume_from_loop(t);
    }
    rq = run_queue{};

    // 2. Unwind what is left: forced_unwind from the switch each task is
    //    suspended in; tasks that never started are dropped without running.
    //    (A task unwound here may spawn: its task takes any free slot, so
    //    sweep until none is left.)
    while (live > 0) {
        for (std::size_t i = 0; i < live_.size(); ++i) {
            task_block* t = live_[i];
            if (!t) continue;
            fiber* f = t->fib();
            if (f->state == fiber_state::suspended) {
                if (t->wait || t->heap_index != no_heap_index) park_unwound(t, t->wait);
                t->state = task_state::running;
                unwind_fiber(f);      // its exit comes back here (fiber::caller)
                if (reap) reap_now();
            }
            if (t->state != task_state::done) retire(t);
            t->owner = nullptr;
            if (f->state == fiber_state::abandoned) continue;   // diagnosed; its stack is leaked
            if (!t->has_handle && !t->joining) destroy_task(t);  // else the handle (or joiner) frees it
        }
    }
    rq = run_queue{};                 // unwound tasks' operations may have woken others
    drop_streams();

    posted_fn* p = post_head_;
    while (p) {
        posted_fn* n = p->next;
        delete p;
        if (rt) rt->remove_work();
        p = n;
    }
    post_head_ = post_tail_ = nullptr;
    // Deliveries still queued belong to tasks that are gone (abandoned ones
    // included): dropped without being touched.
    remote_head_ = remote_tail_ = nullptr;
    if (detached_error)
        std::fputs("coop: a detached task's exception was never rethrown by run() "
                   "(the reactor was destroyed first)\n", stderr);
}

void release_task(task_block* t) noexcept {
    if (t->joining) {                 // a task waits in join() on this handle: it finds out
        t->has_handle = false;
        return;
    }
    if (t->state == task_state::done) {
        if (t->error && t->owner) static_cast<reactor_impl*>(t->owner)->report_detached(std::move(t->error));
        if (t->fib()->state != fiber_state::abandoned) destroy_task(t);
    } else {
        t->has_handle = false;
    }
}

} // namespace detail

// ---------------------------------------------------------------- reactor

reactor::reactor() : impl_(new detail::reactor_impl(this)) {}

reactor::~reactor() { delete impl_; }

detail::task_block* reactor::adopt(detail::fiber* f, detail::task_block* b) { return impl_->adopt(f, b); }
void reactor::run() { impl_->run(); }
void reactor::stop() noexcept { impl_->request_stop(); }
void reactor::post_node(detail::posted_fn* p) { impl_->post(p); }
std::size_t reactor::size() const noexcept { return impl_->live; }
std::uint64_t reactor::polls() const noexcept { return impl_->polls; }
const char* reactor::backend() const noexcept { return impl_->poll->name(); }
const char* reactor::default_backend() { return detail::default_poller_name(); }

reactor& this_reactor() {
    if (detail::task_block* t = detail::current_task_or_null(); t && t->owner)
        return *static_cast<detail::reactor_impl*>(t->owner)->owner;
    if (detail::t_running) return *detail::t_running->owner;
    if (detail::t_reactors) return *detail::t_reactors->owner;
    throw std::logic_error("coop::this_reactor: no reactor on this thread");
}

// ---------------------------------------------------------------- task

void task::join_misuse() const {
    if (!block_) throw std::logic_error("coop::task::join: empty task handle");
    if (detail::current_task_or_null() == block_)
        throw std::logic_error("coop::task::join: a task cannot join itself");
    if (block_->joining)
        throw std::logic_error("coop::task::join: another task is already joining this task");
    throw std::logic_error("coop::task::join: the task has not finished and the caller is not a task");
}

void task::handle_changed_while_joining(detail::task_block* b) const {
    // The handle was moved away or dropped while we waited: whoever holds
    // the task now owns its result. If nobody does (the block outlived its
    // handle because we were joining), it is released here.
    if (!b->has_handle) detail::release_task(b);
    throw std::logic_error("coop::task::join: the handle was moved or dropped while a task was joining it");
}

void task::left_join(detail::task_block* b) noexcept {
    // The joiner is unwound (teardown) out of its park: the block stayed
    // alive for it; released now if its handle is gone.
    b->joining = false;
    if (!b->has_handle) detail::release_task(b);
}

std::error_code task::take_result() {
    detail::task_block* b = std::exchange(block_, nullptr);
    std::exception_ptr err = std::move(b->error);
    detail::release_task(b);
    if (err) std::rethrow_exception(err);
    return {};
}

void task::cancel() noexcept {
    if (!block_ || block_->state == detail::task_state::done) return;
    block_->canceled = true;
    if (block_->owner) detail::wake(block_, ECANCELED);
}

void task::detach() noexcept {
    if (block_) detail::release_task(std::exchange(block_, nullptr));
}

// ---------------------------------------------------------------- inside a task

std::error_code sleep_until(std::chrono::steady_clock::time_point tp) {
    detail::task_block* t = detail::current_task("coop::sleep_until");
    const int e = detail::park(t, nullptr, nullptr, deadline(tp).ns());
    return detail::errc_of(e == ETIMEDOUT ? 0 : e);
}

} // namespace coop
