// src/io.cpp — coop::io: try the syscall, park on EAGAIN, retry.
#include "coop/io.hpp"
#include "reactor_impl.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace coop::io {

namespace {

using detail::task_cb;

std::error_code ec(int e) noexcept { return std::error_code(e, std::generic_category()); }

bool canceled() noexcept {
    task_cb* t = detail::current_task_or_null();
    return t && t->canceled;
}

// After EAGAIN: park until fd is ready. 0 or an errno value.
int wait(int fd, bool write, const deadline& d, const char* what) {
    task_cb* t = detail::current_task(what);
    return detail::wait_fd(t, fd, write, d.ns(), false);
}

#if !defined(MSG_NOSIGNAL)
constexpr int MSG_NOSIGNAL = 0;     // macOS: SO_NOSIGPIPE is the way there
#endif

// One write attempt: send() with MSG_NOSIGNAL on sockets, write() otherwise.
// What kind of fd this is gets remembered in the reactor's fd table.
ssize_t write_once(int fd, const void* buf, std::size_t n) noexcept {
    detail::reactor_impl* r = detail::thread_reactor();
    detail::fd_entry* e = nullptr;
    if (r) {
        try {
            e = &r->fds.get(fd);
        } catch (...) {
            e = nullptr;
        }
    }
    if (!e || e->kind != 2) {
        ssize_t k = ::send(fd, buf, n, MSG_NOSIGNAL);
        if (k >= 0 || errno != ENOTSOCK) {
            if (e && k >= 0) e->kind = 1;
            return k;
        }
        if (e) e->kind = 2;
    }
    return ::write(fd, buf, n);
}

} // namespace

namespace {

// The reactor's entry for fd if coop already registered it (the drained-
// read skip only applies then: registration is what guarantees an edge).
detail::fd_entry* registered_entry(int fd) noexcept {
    detail::reactor_impl* r = detail::thread_reactor();
    if (!r) return nullptr;
    detail::fd_entry* e = r->fds.find(fd);
    return (e && e->registered) ? e : nullptr;
}

bool is_stream_socket(int fd, detail::fd_entry* e) noexcept {
    if (e->stream == 0) {
        int type = 0;
        socklen_t len = sizeof type;
        e->stream = (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM)
                        ? 1 : 2;
    }
    return e->stream == 1;
}

} // namespace

result read(int fd, void* buf, std::size_t n, deadline d) {
    if (canceled()) return {0, ec(ECANCELED)};
    detail::fd_entry* ent = registered_entry(fd);
    // The last read of this stream socket came back short and no edge (nor
    // hang-up) has come since: a read now would only return EAGAIN. Park
    // first; the edge for the next bytes is still pending in the kernel.
    if (ent && !ent->read_edge && !ent->hangup && n > 0) {
        if (int e = wait(fd, false, d, "coop::io::read")) return {0, ec(e)};
    }
    for (;;) {
        ssize_t k = ::read(fd, buf, n);
        if (k >= 0) {
            ent = ent ? ent : registered_entry(fd);
            if (ent && k > 0 && static_cast<std::size_t>(k) < n && is_stream_socket(fd, ent))
                ent->read_edge = false;   // short read of a stream socket: drained
            return {static_cast<std::size_t>(k), {}};
        }
        int e = errno;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return {0, ec(e)};
        if ((e = wait(fd, false, d, "coop::io::read")) != 0) return {0, ec(e)};
        ent = ent ? ent : registered_entry(fd);
    }
}


result write(int fd, const void* buf, std::size_t n, deadline d) {
    if (canceled()) return {0, ec(ECANCELED)};
    for (;;) {
        ssize_t k = write_once(fd, buf, n);
        if (k >= 0) return {static_cast<std::size_t>(k), {}};
        int e = errno;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return {0, ec(e)};
        if ((e = wait(fd, true, d, "coop::io::write")) != 0) return {0, ec(e)};
    }
}

result read_exact(int fd, void* buf, std::size_t n, deadline d) {
    char* p = static_cast<char*>(buf);
    std::size_t got = 0;
    while (got < n) {
        result r = read(fd, p + got, n - got, d);
        if (r.error) return {got, r.error};
        if (r.size == 0) return {got, ec(EPIPE)};
        got += r.size;
    }
    return {got, {}};
}

result write_all(int fd, const void* buf, std::size_t n, deadline d) {
    const char* p = static_cast<const char*>(buf);
    std::size_t put = 0;
    if (n == 0 && canceled()) return {0, ec(ECANCELED)};
    while (put < n) {
        result r = write(fd, p + put, n - put, d);
        if (r.error) return {put, r.error};
        put += r.size;
    }
    return {put, {}};
}

accept_result accept(int listen_fd, deadline d, sockaddr* addr, socklen_t* len) {
    if (canceled()) return {-1, ec(ECANCELED)};
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
        if (e != EAGAIN && e != EWOULDBLOCK) return {-1, ec(e)};
        if ((e = wait(listen_fd, false, d, "coop::io::accept")) != 0) return {-1, ec(e)};
    }
}

std::error_code connect(int fd, const sockaddr* addr, socklen_t len, deadline d) {
    if (canceled()) return ec(ECANCELED);
    if (::connect(fd, addr, len) == 0) return {};
    int e = errno;
    if (e != EINPROGRESS && e != EINTR) return ec(e);
    // The connection proceeds in the background; it is done when the
    // socket turns writable.
    for (;;) {
        if ((e = wait(fd, true, d, "coop::io::connect")) != 0) return ec(e);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) return ec(errno);
        if (soerr != 0) return ec(soerr);
        // Writable and no error: connected, unless the wake-up was for
        // someone else; getpeername tells.
        sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0) return {};
        if (errno != ENOTCONN) return ec(errno);
    }
}

std::error_code set_nonblocking(int fd) noexcept {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return ec(errno);
    return {};
}

} // namespace coop::io
