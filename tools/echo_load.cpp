// tools/echo_load.cpp — coop-echo-load: either side of the echo benchmark as
// a process of its own, so that a server can be timed, pinned and traced
// (strace) apart from its client. tools/echo_external.py drives it against
// coop-echo and the peers.
//
//   coop-echo-load client --port P [--conns C] [--seconds S | --rounds N] [--warmup W]
//       C connections to 127.0.0.1:P (default 1); W untimed rounds (default
//       200), then rounds for S seconds (default 2) or exactly N rounds (N may
//       be 0: connect and leave). A round is bench/echo_servers.hpp's: a
//       64-byte message on every connection, every echo read back and
//       checked. Prints one line:
//         conns C rounds N messages M seconds T msgs_per_sec R
//       Exit status 1 when an echo is wrong or a connection fails.
//   coop-echo-load serve libuv|epoll [--port P]
//       The benchmark's libuv or raw epoll echo server on 127.0.0.1:P
//       (0: any free port). Prints "listening on 127.0.0.1:P" (flushed), serves
//       until SIGINT or SIGTERM, exits 0.
// The coop server is coop-echo itself (examples/echo_server.cpp).
#include "echo_servers.hpp"

#include <signal.h>
#include <sys/eventfd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int usage() {
    std::fprintf(stderr,
                 "usage: coop-echo-load client --port P [--conns C] [--seconds S | --rounds N] [--warmup W]\n"
                 "       coop-echo-load serve libuv|epoll [--port P]\n");
    return 2;
}

bool number(const char* s, double& out) {
    char* end = nullptr;
    out = std::strtod(s, &end);
    return end && end != s && *end == '\0' && out >= 0;
}

int client(int port, int conns, double seconds, long rounds, long warmup) {
    std::vector<int> fds;
    if (!echo::client_connect(port, conns, fds)) {
        std::fprintf(stderr, "coop-echo-load: connect to 127.0.0.1:%d failed: %s\n", port, std::strerror(errno));
        return 1;
    }
    std::uint64_t n = 0;
    bool ok = true;
    if (rounds != 0)   // a run of 0 rounds is only connecting (a baseline)
        for (long i = 0; i < warmup && ok; ++i) ok = echo::client_round(fds, n++);
    using clk = std::chrono::steady_clock;
    const auto t0 = clk::now();
    long done = 0;
    if (rounds >= 0) {
        for (; done < rounds && ok; ++done) ok = echo::client_round(fds, n++);
    } else {
        const auto until = t0 + std::chrono::duration<double>(seconds);
        // Check the clock every 16 rounds: a round is a few µs at one connection.
        while (ok && clk::now() < until)
            for (int k = 0; k < 16 && ok; ++k, ++done) ok = echo::client_round(fds, n++);
    }
    const double t = std::chrono::duration<double>(clk::now() - t0).count();
    for (int fd : fds) ::close(fd);
    if (!ok) {
        std::fprintf(stderr, "coop-echo-load: echo mismatch or connection lost after %ld rounds\n", done);
        return 1;
    }
    const double msgs = static_cast<double>(done) * conns;
    std::printf("conns %d rounds %ld messages %.0f seconds %.6f msgs_per_sec %.1f\n", conns, done, msgs, t,
                t > 0 ? msgs / t : 0.0);
    return 0;
}

// Blocks SIGINT and SIGTERM in every thread started after it, then waits for one.
struct stop_signals {
    sigset_t set;
    stop_signals() {
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    }
    void wait() const {
        int sig = 0;
        while (::sigwait(&set, &sig) != 0) {}
    }
};

int serve(const std::string& kind, int port) {
    const stop_signals stop;
    if (kind == "epoll") {
        int lfd = echo::listen_loopback(port, true);
        int stopfd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (lfd < 0 || stopfd < 0) {
            std::perror("coop-echo-load: listen");
            return 1;
        }
        std::printf("listening on 127.0.0.1:%d\n", port);
        std::fflush(stdout);
        std::thread t(echo::epoll_serve, lfd, stopfd);
        stop.wait();
        std::uint64_t one = 1;
        ssize_t w = ::write(stopfd, &one, sizeof one);
        (void)w;
        t.join();
        return 0;
    }
    if (kind == "libuv") {
#if COOP_BENCH_UV
        echo::uv_server* s = echo::uv_create(port);
        if (!s->port) {
            std::fprintf(stderr, "coop-echo-load: libuv: listen on 127.0.0.1:%d failed\n", port);
            return 1;
        }
        std::printf("listening on 127.0.0.1:%d\n", s->port);
        std::fflush(stdout);
        std::thread t([s] { uv_run(&s->loop, UV_RUN_DEFAULT); });
        stop.wait();
        uv_async_send(&s->stop);
        t.join();
        echo::uv_destroy(s);
        return 0;
#else
        std::fprintf(stderr, "coop-echo-load: built without libuv (apt-get install libuv1-dev)\n");
        return 1;
#endif
    }
    return usage();
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    const std::string mode = argv[1];
    std::string kind;
    int first = 2;
    if (mode == "serve") {
        if (argc < 3) return usage();
        kind = argv[2];
        first = 3;
    } else if (mode != "client") {
        return usage();
    }
    double port = 0, conns = 1, seconds = 2, rounds = -1, warmup = 200;
    for (int i = first; i < argc; ++i) {
        const std::string a = argv[i];
        double* into = a == "--port" ? &port : a == "--conns" ? &conns : a == "--seconds" ? &seconds
                     : a == "--rounds" ? &rounds : a == "--warmup" ? &warmup : nullptr;
        if (!into || i + 1 >= argc || !number(argv[++i], *into)) return usage();
    }
    if (port > 65535 || conns < 1 || conns > 10000) return usage();
    if (mode == "serve") return serve(kind, static_cast<int>(port));
    if (port == 0) return usage();
    return client(static_cast<int>(port), static_cast<int>(conns), seconds, static_cast<long>(rounds),
                  static_cast<long>(warmup));
}
