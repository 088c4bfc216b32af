// src/reactor_fd.cpp — waiting on fds, and closing them safely: the fd
// table, generation tags, wait_readable/wait_writable, close, forget_fd.
#include "reactor_impl.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace coop {
namespace detail {

int wait_fd(task_cb* t, int fd, bool write, std::int64_t deadline_ns, bool level) {
    if (fd < 0) return EBADF;
    if (t->canceled) return ECANCELED;
    if (level) {
        pollfd p{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
        int n;
        do n = ::poll(&p, 1, 0); while (n < 0 && errno == EINTR);
        if (n < 0) return errno;
        if (n > 0) return (p.revents & POLLNVAL) ? EBADF : 0;
    }
    reactor_impl* r = t->r;
    fd_entry& e = r->fds.get(fd);
    if (!e.registered) {
        int err = r->poll.add(fd, fd_token(fd, e.gen));
        if (err == EPERM) return 0;        // a regular file: always ready
        if (err) return err;
        e.registered = true;
    }
    wait_node node;
    struct counted {
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
    e->kind = 0;
    e->stream = 0;
    e->read_edge = true;
    e->hangup = false;
    if (e->registered) {
        poll.remove(fd);
        e->registered = false;
    }
    wake_all(e->readers, EBADF);
    wake_all(e->writers, EBADF);
}

} // namespace detail

namespace {
std::error_code to_ec(int e) noexcept {
    return e ? std::error_code(e, std::generic_category()) : std::error_code();
}
} // namespace

std::error_code wait_readable(int fd, deadline d) {
    detail::task_cb* t = detail::current_task("coop::wait_readable");
    return to_ec(detail::wait_fd(t, fd, false, d.ns(), true));
}

std::error_code wait_writable(int fd, deadline d) {
    detail::task_cb* t = detail::current_task("coop::wait_writable");
    return to_ec(detail::wait_fd(t, fd, true, d.ns(), true));
}

void forget_fd(int fd) noexcept {
    if (detail::reactor_impl* r = detail::thread_reactor()) r->forget_fd(fd);
}

std::error_code close(int fd) noexcept {
    forget_fd(fd);
    if (::close(fd) != 0 && errno != EINTR) return to_ec(errno);
    return {};
}

} // namespace coop
