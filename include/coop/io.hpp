// coop/io.hpp — socket, pipe and file I/O that parks the calling task
// instead of blocking the thread.
//
//   coop::io::result r = coop::io::read(fd, buf, sizeof buf, 5s);
//   if (r.error) ...                  // ETIMEDOUT, ECANCELED, EBADF, ECONNRESET, ...
//   else if (r.size == 0) ...         // end of stream
//
// How a call waits depends on the task's reactor (see reactor.hpp,
// Backends). epoll, kqueue: the call first tries the system call; only when
// the kernel says EAGAIN does the task park until the fd is ready, then it
// retries. io_uring: the call is handed to the kernel as one operation and
// the task parks until it completes (the buffer belongs to the kernel until
// then); no system call of its own. Outside a task every call is the plain
// system call. EINTR is retried. The fds must be non-blocking
// (set_nonblocking(), or SOCK_NONBLOCK; accept() returns non-blocking fds):
// on epoll a blocking fd would block the whole reactor thread. A call that
// would have to park outside a reactor task throws std::logic_error; one that
// completes at once works anywhere. Errors are std::generic_category codes
// with errno meanings; a canceled task's calls fail with ECANCELED before
// trying anything.
//
// Deadlines and cancels on io_uring: the operation is canceled in the kernel
// and the call returns once the kernel confirms, with ETIMEDOUT or ECANCELED
// as on the other backends; nothing was transferred then. An operation that
// completed before the cancel reached the kernel reports what it did
// (bytes read stay with the caller, an accepted fd is returned): nothing is
// lost either way. A deadline already past still lets an operation that can
// complete at once do so.
//
// Writes to sockets use MSG_NOSIGNAL: a peer that went away gives EPIPE, not
// SIGPIPE. Close fds that tasks may wait on with coop::close().
#ifndef COOP_IO_HPP
#define COOP_IO_HPP

#include <coop/deadline.hpp>
#include <coop/export.h>
#include <coop/reactor.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <system_error>

namespace coop::io {

// Outcome of a transfer: bytes moved, and why it stopped short (if it did).
// For read/write, `error` and `size` exclude each other; read_exact and
// write_all report in `size` how much was moved before the error.
struct result {
    std::size_t size = 0;
    std::error_code error;
    explicit operator bool() const noexcept { return !error; }
};

// Outcome of accept: the new fd (non-blocking, close-on-exec) or an error.
struct accept_result {
    int fd = -1;
    std::error_code error;
    explicit operator bool() const noexcept { return !error; }
};

// One read(2): size 0 without error means end of stream (or n == 0).
COOP_API result read(int fd, void* buf, std::size_t n, deadline d = {});
// One write(2)/send(2); may move fewer than n bytes.
COOP_API result write(int fd, const void* buf, std::size_t n, deadline d = {});
// Exactly n bytes, or an error; EPIPE when the stream ends first.
// The deadline bounds the whole call.
COOP_API result read_exact(int fd, void* buf, std::size_t n, deadline d = {});
// All n bytes, or an error. The deadline bounds the whole call.
COOP_API result write_all(int fd, const void* buf, std::size_t n, deadline d = {});

// Files. One pread(2) / pwrite(2) at `offset` (the file position is
// neither used nor moved); may move fewer than n bytes; size 0 from pread
// means end of file. On io_uring they go through the ring like the calls
// above, so a disk read does not hold up the reactor's thread. epoll and
// kqueue cannot wait for a regular file: inside a task the call runs on the
// offload pool (coop/offload.hpp) while the task parks, through a buffer of
// the worker's own (copied from buf for pwrite, into buf for pread); a
// deadline or a cancel returns at once there, and a pwrite that has reached
// its worker may still be carried out. Outside a task: the plain system
// call, on every backend. EINVAL for an offset beyond what off_t holds.
COOP_API result pread(int fd, void* buf, std::size_t n, std::uint64_t offset, deadline d = {});
COOP_API result pwrite(int fd, const void* buf, std::size_t n, std::uint64_t offset, deadline d = {});

// Accept one connection on a non-blocking listening socket. addr/len as for
// accept(2). Transient per-connection failures (ECONNABORTED, EPROTO) are
// skipped; EMFILE and the like are returned. On io_uring the kernel keeps
// accepting for the reactor once a task has called accept on the socket
// (multishot accept; up to 64 connections wait for the next accept calls,
// then it pauses until they are taken); coop::close(listen_fd) closes those
// nobody took. The peer's address then comes from getpeername(): a
// connection already reset by its peer gives *len == 0.
COOP_API accept_result accept(int listen_fd, deadline d = {}, sockaddr* addr = nullptr, socklen_t* len = nullptr);

// Connect a non-blocking socket: {} once connected, else the connection's
// error (ECONNREFUSED, ...), ETIMEDOUT, ECANCELED. After an error other than
// an immediate one, close the socket rather than retrying on it.
COOP_API std::error_code connect(int fd, const sockaddr* addr, socklen_t len, deadline d = {});

// O_NONBLOCK on.
COOP_API std::error_code set_nonblocking(int fd) noexcept;

} // namespace coop::io

#endif
