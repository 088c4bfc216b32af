// examples/echo_server.cpp — a TCP echo server on coop: one task per
// connection, each echoing what it reads until the client closes.
//
//   $ build/x86_64/bin/coop-echo [--host 127.0.0.1] [--port 7000]
//   listening on 127.0.0.1:7000
//
// --port 0 lets the kernel pick a free port; the first line on stdout (flushed
// at once) says which. SIGINT or SIGTERM: the server stops accepting, closes
// every connection and exits with status 0.
//
// Hostile clients cost only themselves: a client that never reads parks its
// own task in write_all (the others keep running); a reset or half-closed
// connection ends its task; every fd is closed by the task that owns it.
#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include "stop_signals.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// Owns an fd for the lifetime of a task; closes it through coop so that
// nobody is left waiting on it.
struct fd_guard {
    int fd;
    ~fd_guard() {
        if (fd >= 0) coop::close(fd);
    }
};

void serve(int fd) {
    fd_guard g{fd};
    char buf[16 * 1024];
    for (;;) {
        coop::io::result r = coop::io::read(fd, buf, sizeof buf);
        if (r.error || r.size == 0) return;      // reset, EOF (half-close included), cancel
        if (coop::io::write_all(fd, buf, r.size).error) return;
    }
}

int usage(const char* argv0) {
    std::fprintf(stderr, "usage: %s [--host H] [--port P]\n", argv0);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = 7000;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--host" || a == "--port") && i + 1 < argc) {
            if (a == "--host") {
                host = argv[++i];
            } else {
                char* end = nullptr;
                port = std::strtol(argv[++i], &end, 10);
                if (!end || *end || port < 0 || port > 65535) return usage(argv[0]);
            }
        } else {
            return usage(argv[0]);
        }
    }

    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
        std::fprintf(stderr, "coop-echo: not an IPv4 address: %s\n", host.c_str());
        return 2;
    }

    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) { std::perror("coop-echo: socket"); return 1; }
    int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 1024) != 0) {
        std::perror("coop-echo: bind/listen");
        return 1;
    }
    socklen_t len = sizeof addr;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);

    // SIGINT/SIGTERM reach a task as data (examples/stop_signals.hpp).
    coop_examples::stop_signals stop;
    if (!stop.open("coop-echo")) return 1;

    coop::reactor r;

    std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>(ntohs(addr.sin_port)));
    std::fflush(stdout);
    coop::task acceptor = r.spawn([lfd] {
        for (;;) {
            coop::io::accept_result a = coop::io::accept(lfd);
            if (a.error) {
                if (a.error == std::errc::operation_canceled || a.error == std::errc::bad_file_descriptor) return;
                // Out of fds or memory: back off briefly instead of spinning.
                if (coop::sleep_for(std::chrono::milliseconds(10))) return;
                continue;
            }
            const int nodelay = 1;
            ::setsockopt(a.fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
            coop::this_reactor().spawn([fd = a.fd] { serve(fd); }, {64 * 1024, "echo-conn", false});
        }
    }, {64 * 1024, "echo-accept", false});

    r.spawn([&r, &stop, lfd] {
        stop.wait();
        coop::close(lfd);     // the acceptor wakes with EBADF and ends
        r.stop();
    }, {64 * 1024, "echo-signals", false});

    try {
        r.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coop-echo: %s\n", e.what());
        return 1;
    }
    // Leaving main destroys the reactor: the connection tasks unwind and
    // their fd guards close every connection.
    return 0;
}
