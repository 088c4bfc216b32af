// src/io.cpp — coop::io: try the syscall, park on EAGAIN, retry. Reaches the
// reactor only through the fd-state functions of src/reactor_impl.hpp.
#include "coop/io.hpp"
#include "reactor_impl.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace coop::io {

namespace {

using detail::errc_of;
using detail::fd_kind;
using detail::task_block;

// Asked first by every call: a canceled task's calls fail with ECANCELED
// before trying anything (passing through the scheduler during teardown,
// see park_canceled()).
int canceled() {
    task_block* t = detail::current_task_or_null();
    return (t && t->canceled) ? detail::park_canceled(t) : 0;
}

// After EAGAIN: park until fd is ready. 0 or an errno value.
int wait(int fd, bool write, const deadline& d, const char* what) {
    task_block* t = detail::current_task(what);
    return detail::wait_fd(t, fd, write, d.ns(), false);
}

#if !defined(MSG_NOSIGNAL)
constexpr int MSG_NOSIGNAL = 0;     // macOS: SO_NOSIGPIPE is the way there
#endif

// One write attempt: send() with MSG_NOSIGNAL, so that a socket whose peer
// went away gives EPIPE instead of SIGPIPE; write() for what is not a
// socket (ENOTSOCK). What send() found is remembered only while coop holds
// the fd's registration, which coop::close() drops: a number reused by
// another file starts unknown again.
ssize_t write_once(int fd, const void* buf, std::size_t n) noexcept {
    const fd_kind k = detail::known_fd_kind(fd);
    if (k != fd_kind::not_socket) {
        ssize_t r = ::send(fd, buf, n, MSG_NOSIGNAL);
        if (r >= 0 || errno != ENOTSOCK) {
            if (r >= 0 && k == fd_kind::unknown) detail::remember_fd_kind(fd, fd_kind::socket);
            return r;
        }
        detail::remember_fd_kind(fd, fd_kind::not_socket);
    }
    return ::write(fd, buf, n);
}

} // namespace

result read(int fd, void* buf, std::size_t n, deadline d) {
    if (int e = canceled()) return {0, errc_of(e)};
    for (;;) {
        ssize_t k = ::read(fd, buf, n);
        if (k >= 0) return {static_cast<std::size_t>(k), {}};
        int e = errno;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return {0, errc_of(e)};
        if ((e = wait(fd, false, d, "coop::io::read")) != 0) return {0, errc_of(e)};
    }
}

result write(int fd, const void* buf, std::size_t n, deadline d) {
    if (int e = canceled()) return {0, errc_of(e)};
    for (;;) {
        ssize_t k = write_once(fd, buf, n);
        if (k >= 0) return {static_cast<std::size_t>(k), {}};
        int e = errno;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return {0, errc_of(e)};
        if ((e = wait(fd, true, d, "coop::io::write")) != 0) return {0, errc_of(e)};
    }
}

result read_exact(int fd, void* buf, std::size_t n, deadline d) {
    char* p = static_cast<char*>(buf);
    std::size_t got = 0;
    while (got < n) {
        result r = read(fd, p + got, n - got, d);
        if (r.error) return {got, r.error};
        if (r.size == 0) return {got, errc_of(EPIPE)};
        got += r.size;
    }
    return {got, {}};
}

result write_all(int fd, const void* buf, std::size_t n, deadline d) {
    const char* p = static_cast<const char*>(buf);
    std::size_t put = 0;
    if (n == 0) {
        if (int e = canceled()) return {0, errc_of(e)};
    }
    while (put < n) {
        result r = write(fd, p + put, n - put, d);
        if (r.error) return {put, r.error};
        put += r.size;
    }
    return {put, {}};
}

accept_result accept(int listen_fd, deadline d, sockaddr* addr, socklen_t* len) {
    if (int e = canceled()) return {-1, errc_of(e)};
    const socklen_t len_in = len ? *len : 0;
    for (;;) {
        if (len) *len = len_in;
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
        int fd = ::accept4(listen_fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        int fd = ::accept(listen_fd, addr, len);
        if (fd >= 0) {
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);
            ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        }
#endif
        if (fd >= 0) return {fd, {}};
        int e = errno;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return {-1, errc_of(e)};
        if ((e = wait(listen_fd, false, d, "coop::io::accept")) != 0) return {-1, errc_of(e)};
    }
}

std::error_code connect(int fd, const sockaddr* addr, socklen_t len, deadline d) {
    if (int e = canceled()) return errc_of(e);
    if (::connect(fd, addr, len) == 0) return {};
    int e = errno;
    if (e != EINPROGRESS && e != EINTR) return errc_of(e);
    // The connection proceeds in the background; it is done when the
    // socket turns writable.
    for (;;) {
        if ((e = wait(fd, true, d, "coop::io::connect")) != 0) return errc_of(e);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) return errc_of(errno);
        if (soerr != 0) return errc_of(soerr);
        // Writable and no error: connected, unless the wake-up was for
        // someone else; getpeername tells.
        sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0) return {};
        if (errno != ENOTCONN) return errc_of(errno);
    }
}

std::error_code set_nonblocking(int fd) noexcept {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errc_of(errno);
    return {};
}

} // namespace coop::io
