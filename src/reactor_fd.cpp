// src/reactor_fd.cpp — waiting on fds, and closing them safely: the fd
// table, generation tags, wait_readable/wait_writable, close, forget_fd, and
// the fd-state functions io.cpp uses.
#include "reactor_impl.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace coop {
namespace detail {

int wait_fd(task_block* t, int fd, bool write, std::int64_t deadline_ns, bool level) {
    if (fd < 0) return EBADF;
    if (t->canceled && !t->fib()->unwinding) return park_canceled(t);   // unwinding: park() throws
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
        int err = r->poll.add(fd, fd_token(fd, e.gen));
        if (err == EPERM) return 0;        // a regular file: always ready
        if (err) return err;
        e.registered = true;
    }
    wait_node node;
    struct counted {                       // invariant 3 of reactor_impl.hpp
        reactor_impl* r;
        explicit counted(reactor_impl* x) noexcept : r(x) { ++r->fd_waiters; }
        ~counted() { --r->fd_waiters; }
    } c(r);
    return park(t, write ? &e.writers : &e.readers, &node, deadline_ns);
}

void reactor_impl::forget_fd(int fd) noexcept {
    fd_entry* e = fds.find(fd);
    if (!e) return;
    ++e->gen;
    e->kind = fd_kind::unknown;
    if (e->registered) {
        poll.remove(fd);
        e->registered = false;
    }
    wake_all(e->readers, EBADF);
    wake_all(e->writers, EBADF);
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
