// src/io.cpp — coop::io. Reaches the reactor only through the fd-state
// functions of src/reactor_impl.hpp, and works in one of two ways, as the
// calling task's reactor does:
//   readiness (epoll, kqueue): try the system call, park on EAGAIN until
//     the fd is ready, retry;
//   completion (io_uring): hand the whole operation to the kernel
//     (run_io) and park until it completes: no system call of its own.
// Outside a task, every call is the plain system call (it throws only when
// it would have to park).
#include "coop/io.hpp"
#include "coop/offload.hpp"
#include "reactor_impl.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#if __has_include(<valgrind/memcheck.h>)
#  include <valgrind/memcheck.h>
#  define COOP_HAVE_MEMCHECK 1
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>

namespace coop::io {

namespace {

using detail::errc_of;
using detail::fd_kind;
using detail::io_opcode;
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

// ---------------------------------------------------------------- completion

// The calling task, when its reactor is completion-based.
task_block* ring_task() noexcept {
    task_block* t = detail::current_task_or_null();
    return (t && t->owner && detail::completion_io(t)) ? t : nullptr;
}

// What read(2) and write(2) move at most in one call on Linux; the ring's
// lengths are 32 bits.
constexpr std::size_t kMaxTransfer = 0x7ffff000;

// One operation through the ring: its result, or -errno.
int ring_op(task_block* t, io_opcode op, int fd, void* buf, std::size_t n, std::uint64_t offset,
            const deadline& d) {
    detail::io_op o;
    o.req.op = op;
    o.req.fd = fd;
    o.req.buf = buf;
    o.req.len = static_cast<std::uint32_t>(std::min(n, kMaxTransfer));
    o.req.offset = offset;
    return detail::run_io(t, o, d.ns());
}

// The kernel filled buf behind the back of tools that track which memory
// is initialized: Valgrind's memcheck sees reads(2) it makes itself, not
// the ring's. (ASan and TSan track no contents; a buffer the kernel writes
// is only ever one the caller handed over for the call's duration.)
void kernel_wrote(void* buf, int n) noexcept {
#if defined(COOP_HAVE_MEMCHECK)
    if (n > 0) (void)VALGRIND_MAKE_MEM_DEFINED(buf, static_cast<std::size_t>(n));
#else
    (void)buf;
    (void)n;
#endif
}

// Read through the ring: recv() on known sockets, read() at the file
// position otherwise (or at `offset`).
result ring_read(task_block* t, int fd, void* buf, std::size_t n, std::uint64_t offset, const deadline& d) {
    for (;;) {
        const bool sock = offset == detail::io_current_pos && detail::known_fd_kind(fd) == fd_kind::socket;
        const int r = ring_op(t, sock ? io_opcode::recv : io_opcode::read, fd, buf, n, offset, d);
        if (r >= 0) {
            kernel_wrote(buf, r);
            return {static_cast<std::size_t>(r), {}};
        }
        int e = -r;
        if (e == EINTR) continue;
        if (e == ENOTSOCK && sock) {       // the number now names another file
            detail::remember_fd_kind(fd, fd_kind::not_socket);
            continue;
        }
        // A file the kernel cannot wait on without blocking (an O_NONBLOCK
        // one it has no non-blocking path for) answers EAGAIN: wait, retry.
        if (e != EAGAIN && e != EWOULDBLOCK) return {0, errc_of(e)};
        if ((e = detail::wait_fd(t, fd, false, d.ns(), true)) != 0) return {0, errc_of(e)};
    }
}

// Write through the ring: a SEND with MSG_NOSIGNAL at the file position
// (ENOTSOCK: a WRITE instead), a WRITE at an offset. Unlike write_once(),
// "not a socket" is not remembered here: every ring call counts as a wait
// (the fd's entry holds what coop learned of it until coop::close), so an fd
// written once and closed with plain ::close() would leave that memory to a
// socket reusing its number, and a WRITE on a socket whose peer is gone
// raises SIGPIPE. A pipe or file written at its position pays a failed SEND
// per call instead.
result ring_write(task_block* t, int fd, const void* buf, std::size_t n, std::uint64_t offset,
                  const deadline& d) {
    void* p = const_cast<void*>(buf);     // the ring's request has one pointer for both ways
    bool sock = offset == detail::io_current_pos;
    for (;;) {
        const int r = ring_op(t, sock ? io_opcode::send : io_opcode::write, fd, p, n, offset, d);
        if (r >= 0) {
            if (sock) detail::remember_fd_kind(fd, fd_kind::socket);   // io::read then RECVs
            return {static_cast<std::size_t>(r), {}};
        }
        int e = -r;
        if (e == EINTR) continue;
        if (e == ENOTSOCK && sock) {
            sock = false;
            continue;
        }
        if (e != EAGAIN && e != EWOULDBLOCK) return {0, errc_of(e)};
        if ((e = detail::wait_fd(t, fd, true, d.ns(), true)) != 0) return {0, errc_of(e)};
    }
}

} // namespace

result read(int fd, void* buf, std::size_t n, deadline d) {
    if (int e = canceled()) return {0, errc_of(e)};
    if (task_block* t = ring_task()) return ring_read(t, fd, buf, n, detail::io_current_pos, d);
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
    if (task_block* t = ring_task()) return ring_write(t, fd, buf, n, detail::io_current_pos, d);
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

// ---------------------------------------------------------------- files

namespace {

bool offset_ok(std::uint64_t off) noexcept {
    return off <= static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());
}

} // namespace

result pread(int fd, void* buf, std::size_t n, std::uint64_t offset, deadline d) {
    if (int e = canceled()) return {0, errc_of(e)};
    if (!offset_ok(offset)) return {0, errc_of(EINVAL)};
    if (task_block* t = ring_task()) return ring_read(t, fd, buf, n, offset, d);
    if (!detail::current_task_or_null()) {
        for (;;) {
            ssize_t k = ::pread(fd, buf, n, static_cast<off_t>(offset));
            if (k >= 0) return {static_cast<std::size_t>(k), {}};
            if (errno != EINTR) return {0, errc_of(errno)};
        }
    }
    // A readiness backend cannot wait for a file: a worker thread reads
    // into a buffer of its own, which reaches buf only if this call is
    // still waiting (the worker may outlive a deadline or a cancel).
    struct got {
        ssize_t n;
        int err;
        std::unique_ptr<char[]> data;
    };
    const std::size_t len = std::min(n, kMaxTransfer);
    auto r = coop::offload([fd, len, offset] {
        got g{0, 0, std::unique_ptr<char[]>(new char[len ? len : 1])};
        do g.n = ::pread(fd, g.data.get(), len, static_cast<off_t>(offset));
        while (g.n < 0 && errno == EINTR);
        if (g.n < 0) g.err = errno;
        return g;
    }, d);
    if (r.error) return {0, r.error};
    if (r.value->n < 0) return {0, errc_of(r.value->err)};
    std::memcpy(buf, r.value->data.get(), static_cast<std::size_t>(r.value->n));
    return {static_cast<std::size_t>(r.value->n), {}};
}

result pwrite(int fd, const void* buf, std::size_t n, std::uint64_t offset, deadline d) {
    if (int e = canceled()) return {0, errc_of(e)};
    if (!offset_ok(offset)) return {0, errc_of(EINVAL)};
    if (task_block* t = ring_task()) return ring_write(t, fd, buf, n, offset, d);
    if (!detail::current_task_or_null()) {
        for (;;) {
            ssize_t k = ::pwrite(fd, buf, n, static_cast<off_t>(offset));
            if (k >= 0) return {static_cast<std::size_t>(k), {}};
            if (errno != EINTR) return {0, errc_of(errno)};
        }
    }
    // The worker writes a copy of the data (see pread).
    const std::size_t len = std::min(n, kMaxTransfer);
    std::shared_ptr<char[]> copy(new char[len ? len : 1]);
    std::memcpy(copy.get(), buf, len);
    auto r = coop::offload([fd, len, offset, copy] {
        ssize_t k;
        do k = ::pwrite(fd, copy.get(), len, static_cast<off_t>(offset));
        while (k < 0 && errno == EINTR);
        return k < 0 ? -static_cast<ssize_t>(errno) : k;
    }, d);
    if (r.error) return {0, r.error};
    if (*r.value < 0) return {0, errc_of(static_cast<int>(-*r.value))};
    return {static_cast<std::size_t>(*r.value), {}};
}

// ---------------------------------------------------------------- sockets

accept_result accept(int listen_fd, deadline d, sockaddr* addr, socklen_t* len) {
    if (int e = canceled()) return {-1, errc_of(e)};
    if (task_block* t = ring_task()) {
        // The kernel keeps accepting into the reactor (next_connection);
        // the peer's address, when asked for, comes from getpeername().
        for (;;) {
            const int r = detail::next_connection(t, listen_fd, d.ns());
            if (r >= 0) {
                if (addr && len && ::getpeername(r, addr, len) != 0) *len = 0;   // reset already
                return {r, {}};
            }
            const int e = -r;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
            return {-1, errc_of(e)};
        }
    }
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
    int e;
    if (task_block* t = ring_task()) {
        const int r = ring_op(t, io_opcode::connect, fd, const_cast<sockaddr*>(addr), len, 0, d);
        if (r >= 0) return {};
        e = -r;
        // A kernel that hands the pending connection back to us: wait for
        // it below, as without the ring.
        if (e != EINPROGRESS && e != EALREADY && e != EINTR && e != EAGAIN) return errc_of(e);
    } else {
        if (::connect(fd, addr, len) == 0) return {};
        e = errno;
        if (e != EINPROGRESS && e != EINTR) return errc_of(e);
    }
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
