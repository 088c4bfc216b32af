// tests/sockets.hpp — socket helpers the reactor and teardown suites share:
// a non-blocking AF_UNIX stream pair closed through coop::close, and a way to
// fill a socket's send buffer so that the next write has to wait.
#ifndef COOP_TESTS_SOCKETS_HPP
#define COOP_TESTS_SOCKETS_HPP

#include <coop/io.hpp>

#include <sys/socket.h>

namespace coop_test {

// Both ends non-blocking and close-on-exec; fd[0] == fd[1] == -1 when
// socketpair failed (tests ASSERT on it). Closed with coop::close, so a
// reactor's registration of either end goes too.
struct sock_pair {
    int fd[2] = {-1, -1};
    sock_pair() {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd) != 0) fd[0] = fd[1] = -1;
    }
    ~sock_pair() {
        for (int f : fd)
            if (f >= 0) coop::close(f);
    }
    sock_pair(const sock_pair&) = delete;
    sock_pair& operator=(const sock_pair&) = delete;
};

// Write to a non-blocking socket until a write would block.
inline void fill(int fd) {
    char buf[4096] = {};
    while (::send(fd, buf, sizeof buf, MSG_NOSIGNAL) > 0) {}
}

} // namespace coop_test

#endif
