// src/reactor.cpp — tasks and the scheduler: spawn, the run queue, parking
// and waking, timers, post(), teardown. Backend-neutral: the kernel is
// reached only through src/poller.hpp.
#include "reactor_impl.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace coop {
namespace detail {

namespace {
// The reactor whose run() executes on this thread, and the one most
// recently constructed on it (for coop::close outside run()).
constinit thread_local reactor* t_running = nullptr;
constinit thread_local reactor* t_bound = nullptr;
} // namespace

reactor_impl* thread_reactor() noexcept {
    if (task_cb* t = current_task_or_null()) return t->r;
    if (t_running) return t_running->impl();
    return t_bound ? t_bound->impl() : nullptr;
}

void throw_not_in_task(const char* what) {
    throw std::logic_error(std::string(what) + ": called outside a coop::reactor task");
}

// ---------------------------------------------------------------- parking

int park_timer(task_cb* t, std::int64_t deadline_ns) {
    if (deadline_ns <= monotonic_ns()) return ETIMEDOUT;
    t->r->timers.push(t, deadline_ns);
    return 0;
}

void park_unwound(task_cb* t, wait_node* node) noexcept {
    if (node && node->owner) node->owner->remove(node);
    t->wait = nullptr;
    if (t->heap_index != no_heap_index) t->r->timers.remove(t);
    t->state = task_state::running;
}

void wake(task_cb* t, int err) noexcept {
    if (t->state != task_state::parked) return;
    if (wait_node* n = t->wait) {
        if (n->owner) n->owner->remove(n);
        t->wait = nullptr;
    }
    reactor_impl* r = t->r;
    if (t->heap_index != no_heap_index) r->timers.remove(t);
    t->wake_err = err;
    t->state = task_state::runnable;
    r->push(t);
}

// ---------------------------------------------------------------- reactor_impl

reactor_impl::reactor_impl(reactor* o) : owner(o) {}

reactor_impl::~reactor_impl() {
    tearing_down = true;
    rq = run_queue{};
    // Unwind every task that has not finished: parked and runnable ones get
    // forced_unwind from the switch they are suspended in; tasks that never
    // started are dropped without running.
    while (task_cb* t = all_head) {
        frame* f = t->f;
        if (f->state == co_state::suspended) {
            f->unwinding = true;
            while (f->state == co_state::suspended) {
                // A parked task stays `parked` until its park() sees the
                // forced_unwind and unlinks itself.
                try {
                    detail::resume(f, nullptr);
                } catch (...) {
                }
            }
        }
        finish(t);
    }
    rq = run_queue{};
    posted_fn* p = post_head_;
    while (p) {
        posted_fn* n = p->next;
        delete p;
        p = n;
    }
}

task_cb* reactor_impl::adopt(frame* f, task_cb* cb) {
    cb->f = f;
    cb->r = this;
    cb->rq = &rq;
    cb->has_handle = true;
    f->user = cb;
    cb->all_prev = nullptr;
    cb->all_next = all_head;
    if (all_head) all_head->all_prev = cb;
    all_head = cb;
    ++live;
    push(cb);
    return cb;
}

inline void reactor_impl::run_task(task_cb* t) {
    t->state = task_state::running;
    frame* f = t->f;
    detail::resume(f, nullptr);      // task_body catches everything: no throw
    if (f->state == co_state::finished) [[unlikely]]
        finish(t);
}

void reactor_impl::finish(task_cb* t) noexcept {
    t->state = task_state::done;
    if (t->all_prev) t->all_prev->all_next = t->all_next; else all_head = t->all_next;
    if (t->all_next) t->all_next->all_prev = t->all_prev;
    t->all_prev = t->all_next = nullptr;
    --live;
    wake_all(t->joiners, 0);
    if (!t->has_handle) {
        std::exception_ptr e = std::move(t->error);
        destroy_frame(t->f);          // t lived in that frame
        if (e && !tearing_down && !detached_error) detached_error = std::move(e);
    } else if (tearing_down) {
        t->r = nullptr;               // the handle frees the block later
    }
}

void reactor_impl::fire_timers(std::int64_t now) noexcept {
    while (!timers.empty() && timers.next() <= now) wake(timers.pop(), ETIMEDOUT);
}

void reactor_impl::poll_io(std::int64_t deadline_ns) {
    ++polls;
    const int n = poll.wait(events_, max_events, deadline_ns);
    if (n < 0) [[unlikely]] {
        std::fprintf(stderr, "coop: the %s poller failed: errno %d\n", poller::backend(), -n);
        std::abort();
    }
    for (int i = 0; i < n; ++i) {
        const poll_event& ev = events_[i];
        const int fd = static_cast<int>(static_cast<std::uint32_t>(ev.token));
        const std::uint32_t gen = static_cast<std::uint32_t>(ev.token >> 32);
        fd_entry* e = fds.find(fd);
        if (!e || !e->registered || e->gen != gen) continue;   // stale: the fd was closed meanwhile
        if (ev.hangup) e->hangup = true;
        if (ev.readable) {
            e->read_edge = true;
            wake_all(e->readers, 0);
        }
        if (ev.writable) wake_all(e->writers, 0);
    }
}

void reactor_impl::post(posted_fn* p) {
    {
        std::lock_guard<std::mutex> lk(post_mu_);
        p->next = nullptr;
        if (post_tail_) post_tail_->next = p; else post_head_ = p;
        post_tail_ = p;
    }
    if (!wake_pending.exchange(true, std::memory_order_acq_rel)) poll.wake();
}

void reactor_impl::drain_posts() {
    wake_pending.store(false, std::memory_order_seq_cst);
    posted_fn* list;
    {
        std::lock_guard<std::mutex> lk(post_mu_);
        list = post_head_;
        post_head_ = post_tail_ = nullptr;
    }
    while (list) {
        posted_fn* p = list;
        list = p->next;
        try {
            p->launch(*owner);
        } catch (...) {
            delete p;
            // put the rest back in front, then report
            if (list) {
                std::lock_guard<std::mutex> lk(post_mu_);
                posted_fn* last = list;
                while (last->next) last = last->next;
                last->next = post_head_;
                if (!post_head_) post_tail_ = last;
                post_head_ = list;
                wake_pending.store(true);
            }
            throw;
        }
        delete p;
    }
}

void reactor_impl::run() {
    if (t_current) throw std::logic_error("coop::reactor::run: called from inside a coroutine");
    if (running) throw std::logic_error("coop::reactor::run: already running");
    struct scope {
        reactor_impl* r;
        reactor* prev;
        ~scope() {
            r->running = false;
            t_running = prev;
            r->stop_requested.store(false, std::memory_order_relaxed);
        }
    } guard{this, t_running};
    running = true;
    t_running = owner;

    for (;;) {
        if (wake_pending.load(std::memory_order_relaxed)) drain_posts();
        for (int i = 0; i < poll_interval; ++i) {
            task_cb* t = rq.pop();
            if (!t) break;
            run_task(t);
            if (detached_error) [[unlikely]]
                std::rethrow_exception(std::exchange(detached_error, nullptr));
            if (stop_requested.load(std::memory_order_relaxed)) [[unlikely]]
                return;
        }
        if (!rq.head) {
            if (live == 0 && !wake_pending.load(std::memory_order_acquire)) return;
            poll_io(timers.empty() ? poller::no_deadline : timers.next());
            if (!timers.empty()) fire_timers(monotonic_ns());
        } else {
            // Busy: keep timers and I/O moving anyway.
            if (!timers.empty()) fire_timers(monotonic_ns());
            if (fd_waiters) poll_io(0);
        }
        if (stop_requested.load(std::memory_order_relaxed)) return;
    }
}

void release_task(task_cb* t) noexcept {
    if (t->state == task_state::done) {
        destroy_frame(t->f);
    } else {
        t->has_handle = false;
    }
}

} // namespace detail

// ---------------------------------------------------------------- reactor

reactor::reactor() : impl_(nullptr) {
    impl_ = new detail::reactor_impl(this);
    detail::t_bound = this;
}

reactor::~reactor() {
    if (detail::t_bound == this) detail::t_bound = nullptr;
    delete impl_;
}

detail::task_cb* reactor::adopt(detail::frame* f, detail::task_cb* cb) { return impl_->adopt(f, cb); }
void reactor::run() { impl_->run(); }
void reactor::stop() noexcept {
    impl_->stop_requested.store(true, std::memory_order_relaxed);
    if (!detail::current_task_or_null()) impl_->poll.wake();
}
void reactor::post_node(detail::posted_fn* p) { impl_->post(p); }
std::size_t reactor::size() const noexcept { return impl_->live; }
std::uint64_t reactor::polls() const noexcept { return impl_->polls; }
const char* reactor::backend() noexcept { return detail::poller::backend(); }

reactor& this_reactor() {
    if (detail::task_cb* t = detail::current_task_or_null(); t && t->r) return *t->r->owner;
    if (detail::t_running) return *detail::t_running;
    if (detail::t_bound) return *detail::t_bound;
    throw std::logic_error("coop::this_reactor: no reactor on this thread");
}

// ---------------------------------------------------------------- task

void task::join_misuse() const {
    if (!cb_) throw std::logic_error("coop::task::join: empty task handle");
    if (detail::current_task_or_null() == cb_) throw std::logic_error("coop::task::join: a task cannot join itself");
    throw std::logic_error("coop::task::join: the task has not finished and the caller is not a task");
}

std::error_code task::take_result() {
    detail::task_cb* cb = std::exchange(cb_, nullptr);
    std::exception_ptr err = std::move(cb->error);
    detail::release_task(cb);
    if (err) std::rethrow_exception(err);
    return {};
}

void task::cancel() noexcept {
    if (!cb_ || cb_->state == detail::task_state::done) return;
    cb_->canceled = true;
    if (cb_->r) detail::wake(cb_, ECANCELED);
}

void task::detach() noexcept {
    if (cb_) detail::release_task(std::exchange(cb_, nullptr));
}

// ---------------------------------------------------------------- inside a task

std::error_code sleep_until(std::chrono::steady_clock::time_point tp) {
    detail::task_cb* t = detail::current_task("coop::sleep_until");
    const std::int64_t ns = deadline(tp).ns();
    int e = detail::park(t, nullptr, nullptr, ns);
    if (e == ETIMEDOUT) e = 0;
    return e ? std::error_code(e, std::generic_category()) : std::error_code();
}

} // namespace coop
