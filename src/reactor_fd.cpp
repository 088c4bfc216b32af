// src/reactor_fd.cpp — waiting on fds, and closing them safely: the fd
// table, generation tags, wait_readable/wait_writable, close, forget_fd, and
// the fd-state functions io.cpp uses: readiness waits (epoll, kqueue), and
// operations in flight and armed accepts (io_uring).
#include "reactor_impl.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace coop {
namespace detail {

namespace {
// A task waiting on an fd, counted while it waits (invariant 3 of
// reactor_impl.hpp).
struct fd_waiter_count {
    reactor_impl* r;
    explicit fd_waiter_count(reactor_impl* x) noexcept : r(x) { ++r->fd_waiters; }
    ~fd_waiter_count() { --r->fd_waiters; }
};
inline reactor_impl* reactor_of(task_block* t) noexcept { return static_cast<reactor_impl*>(t->owner); }
inline std::uint64_t op_token(io_op* op) noexcept { return reinterpret_cast<std::uintptr_t>(op); }
// Accept streams are told apart from io_ops by the low bit (both are aligned).
inline std::uint64_t stream_token(accept_stream* s) noexcept { return reinterpret_cast<std::uintptr_t>(s) | 1; }
} // namespace

int wait_fd(task_block* t, int fd, bool write, std::int64_t deadline_ns, bool level) {
    if (fd < 0) return EBADF;
    if (t->canceled && !t->fib()->unwinding) return park_canceled(t);   // unwinding: park() throws
    if (reactor_of(t)->completion) {
        // A one-shot poll in the kernel: it answers at once when the fd is
        // ready already (level semantics), so no poll(2) first.
        io_op op;
        op.req.op = io_opcode::poll;
        op.req.fd = fd;
        op.req.len = write ? POLLOUT : POLLIN;
        const int r = run_io(t, op, deadline_ns);
        if (r < 0) return -r;
        return (r & POLLNVAL) ? EBADF : 0;
    }
    if (level) {
        pollfd p{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
        int n;
        do n = ::poll(&p, 1, 0); while (n < 0 && errno == EINTR);
        if (n < 0) return errno;
        if (n > 0) return (p.revents & POLLNVAL) ? EBADF : 0;
    }
    auto* r = static_cast<reactor_impl*>(t->owner);
    fd_entry& e = r->fds.get(fd);
    if (!e.registered) {
        int err = r->poll->add(fd, fd_token(fd, e.gen));
        if (err == EPERM) return 0;        // a regular file: always ready
        if (err) return err;
        e.registered = true;
    }
    wait_node node;
    const fd_waiter_count c(r);
    return park(t, write ? &e.writers : &e.readers, &node, deadline_ns);
}

void reactor_impl::forget_fd(int fd) noexcept {
    fd_entry* e = fds.find(fd);
    if (!e) return;
    ++e->gen;
    e->kind = fd_kind::unknown;
    if (e->registered) {
        poll->remove(fd);
        e->registered = false;
    }
    wake_all(e->readers, EBADF);
    wake_all(e->writers, EBADF);
    bool armed = false;
    if (accept_stream* s = std::exchange(e->acc, nullptr)) {
        // Connections accepted but not taken yet go with the listener.
        for (std::size_t i = s->head; i < s->results.size(); ++i)
            if (s->results[i] >= 0) ::close(s->results[i]);
        s->results.clear();
        s->head = 0;
        s->orphaned = true;
        wake_all(s->waiters, EBADF);
        armed = s->armed;
        if (!armed) free_stream(s);   // else at its last completion
    }
    if (e->ops != 0 || armed) {
        // The kernel finds the operations by the open file, and holds it
        // while they are in flight (a socket would stay open and its reads
        // pending): the cancel must reach it before the caller closes fd.
        // Their waiters get EBADF (generation) when the completions come.
        poll->cancel_fd(fd);
        poll->flush();
    }
}

// ---------------------------------------------------------------- completion backends

bool completion_io(task_block* t) noexcept { return reactor_of(t)->completion; }

namespace {

// Park t until op has completed, whatever wakes it meanwhile (a cancel or
// a deadline has already ended its wait: the kernel still owns op's
// memory). A task being unwound cannot switch: it waits in the kernel.
void await_op(reactor_impl* r, task_block* t, io_op& op) noexcept {
    while (!op.done) {
        if (t->fib()->unwinding) {
            r->finish_sync(op);
            return;
        }
        t->state = task_state::parked;
        r->switch_away(t);
    }
}

} // namespace

int run_io(task_block* t, io_op& op, std::int64_t deadline_ns) {
    fiber* f = t->fib();
    if (f->unwinding) [[unlikely]] {      // inside a destructor that unwinding runs
        unwind_point(f);
        return -ECANCELED;
    }
    if (t->canceled) [[unlikely]]
        return -park_canceled(t);
    if (op.req.fd < 0) return -EBADF;
    reactor_impl* r = reactor_of(t);
    fd_entry& e = r->fds.get(op.req.fd);
    op.task = t;
    op.entry = &e;
    op.gen = e.gen;
    op.done = false;
    while (const int err = r->poll->submit(op.req, op_token(&op))) {
        if (err != EBUSY) return -err;
        // The kernel takes no more submissions until completions are
        // collected: let the loop do that, then try again.
        t->state = task_state::runnable;
        r->rq.push(t);
        r->switch_away(t);
        if (f->unwinding) [[unlikely]] {
            unwind_point(f);
            return -ECANCELED;
        }
    }
    e.registered = true;
    ++e.ops;
    ++r->fd_waiters;
    ++r->task_ops;
    // forced_unwind out of park(): the kernel still owns op's memory, which
    // the unwinding is about to release.
    struct in_flight {
        reactor_impl* r;
        io_op* op;
        ~in_flight() {
            if (!op->done) r->finish_sync(*op);
        }
    } guard{r, &op};
    const int w = park(t, nullptr, nullptr, deadline_ns);
    if (!op.done) {
        // The deadline or a cancel ended the wait first. The cancel goes to
        // the kernel now, not with the next round: until it arrives the
        // operation may still complete (and take data meant for the next
        // read). One that completed first reports what it did.
        r->poll->cancel(op_token(&op));
        r->poll->flush();
        await_op(r, t, op);
        if (op.result == -ECANCELED) op.result = -(w ? w : ECANCELED);
        if (f->unwinding) unwind_point(f);   // waited in the kernel: go on unwinding
    }
    return op.result;
}

void reactor_impl::finish_sync(io_op& op) noexcept {
    poll->cancel(op_token(&op));
    while (!op.done) poll_io(no_deadline_ns);
}

void reactor_impl::complete_io(const poll_event& ev) noexcept {
    if (ev.token & 1) {
        auto* s = reinterpret_cast<accept_stream*>(static_cast<std::uintptr_t>(ev.token & ~std::uint64_t{1}));
        const bool last = !ev.more;
        const bool ours = last && ev.result == -ECANCELED && s->disarming;
        if (last) s->armed = s->disarming = false;
        if (s->orphaned) {
            if (ev.result >= 0) ::close(ev.result);
            if (!s->armed) free_stream(s);
            return;
        }
        if (ours) {
            // Our own cancel (backlog full): nothing to hand over. A
            // waiter (there is none while connections are held) re-arms.
        } else {
            s->results.push_back(ev.result);   // never dropped: may grow past the backlog
            if (s->armed && !s->disarming && s->results.size() - s->head >= accept_stream::backlog) {
                s->disarming = true;
                poll->cancel(stream_token(s));
            }
        }
        if (wait_node* n = s->waiters.head) wake(n->task, 0);
        return;
    }
    auto* op = reinterpret_cast<io_op*>(static_cast<std::uintptr_t>(ev.token));
    fd_entry* e = op->entry;
    --e->ops;
    --fd_waiters;
    --task_ops;
    op->result = e->gen == op->gen ? ev.result : -EBADF;
    op->done = true;
    if (op->task->state == task_state::parked) wake(op->task, 0);
}

int next_connection(task_block* t, int listen_fd, std::int64_t deadline_ns) {
    if (listen_fd < 0) return -EBADF;
    fiber* f = t->fib();
    if (t->canceled && !f->unwinding) return -park_canceled(t);   // unwinding: park() throws
    reactor_impl* r = reactor_of(t);
    fd_entry& e = r->fds.get(listen_fd);
    const std::uint32_t gen = e.gen;
    for (;;) {
        if (e.gen != gen) return -EBADF;   // closed while this task was being woken
        accept_stream* s = e.acc;
        if (!s) {
            s = new accept_stream;          // once per listening fd, not per connection
            s->fd = listen_fd;
            s->results.reserve(accept_stream::backlog);
            s->next = r->accept_streams;
            if (s->next) s->next->prev = s;
            r->accept_streams = s;
            e.acc = s;
            e.registered = true;
        }
        if (s->head < s->results.size()) {
            const int got = s->results[s->head++];
            if (s->head == s->results.size()) {
                s->results.clear();
                s->head = 0;
            }
            return got;
        }
        if (!s->armed) {
            io_request req;
            req.op = io_opcode::accept;
            req.fd = listen_fd;
            if (const int err = r->poll->submit(req, stream_token(s))) {
                if (err != EBUSY) return -err;
                // see run_io: the loop collects completions first
                t->state = task_state::runnable;
                r->rq.push(t);
                r->switch_away(t);
                if (f->unwinding) {
                    unwind_point(f);
                    return -ECANCELED;
                }
                continue;
            }
            s->armed = true;
            s->disarming = false;
        }
        wait_node node;
        const fd_waiter_count c(r);
        if (const int w = park(t, &s->waiters, &node, deadline_ns)) return -w;
    }
}

void reactor_impl::free_stream(accept_stream* s) noexcept {
    if (s->prev) s->prev->next = s->next; else accept_streams = s->next;
    if (s->next) s->next->prev = s->prev;
    delete s;
}

// At teardown, once no task is left: end every armed accept and close what
// it accepted, so no connection is left open with nobody to know about it.
void reactor_impl::drop_streams() noexcept {
    for (accept_stream* s = accept_streams; s; s = s->next) {
        for (std::size_t i = s->head; i < s->results.size(); ++i)
            if (s->results[i] >= 0) ::close(s->results[i]);
        s->results.clear();
        s->head = 0;
        if (!s->orphaned) {
            s->orphaned = true;
            if (fd_entry* e = fds.find(s->fd); e && e->acc == s) e->acc = nullptr;
        }
        if (s->armed) poll->cancel(stream_token(s));
    }
    for (accept_stream* s = accept_streams; s;) {
        accept_stream* n = s->next;
        if (!s->armed) free_stream(s);
        s = n;
    }
    while (accept_streams) poll_io(no_deadline_ns);   // their last completions free them
}

namespace {
// The calling task's reactor's entry for fd, if coop holds a registration.
fd_entry* registered_entry(int fd) noexcept {
    task_block* t = current_task_or_null();
    if (!t || !t->owner) return nullptr;
    fd_entry* e = static_cast<reactor_impl*>(t->owner)->fds.find(fd);
    return (e && e->registered) ? e : nullptr;
}
} // namespace

fd_kind known_fd_kind(int fd) noexcept {
    fd_entry* e = registered_entry(fd);
    return e ? e->kind : fd_kind::unknown;
}

void remember_fd_kind(int fd, fd_kind k) noexcept {
    if (fd_entry* e = registered_entry(fd)) e->kind = k;
}

} // namespace detail

std::error_code wait_readable(int fd, deadline d) {
    detail::task_block* t = detail::current_task("coop::wait_readable");
    return detail::errc_of(detail::wait_fd(t, fd, false, d.ns(), true));
}

std::error_code wait_writable(int fd, deadline d) {
    detail::task_block* t = detail::current_task("coop::wait_writable");
    return detail::errc_of(detail::wait_fd(t, fd, true, d.ns(), true));
}

void forget_fd(int fd) noexcept {
    for (detail::reactor_impl* r = detail::thread_reactors(); r; r = r->thread_next) r->forget_fd(fd);
}

std::error_code close(int fd) noexcept {
    forget_fd(fd);
    if (::close(fd) != 0 && errno != EINTR) return detail::errc_of(errno);
    return {};
}

} // namespace coop
