// examples/kv_server.cpp — coop-kv: an in-memory key-value server speaking
// RESP2, the Redis protocol, on coop. One task per connection; redis-cli
// and redis-benchmark work against it.
//
//   $ build/x86_64/bin/coop-kv [--host 127.0.0.1] [--port 6379] [--threads N]
//   listening on 127.0.0.1:6379
//
// --port 0 lets the kernel pick a free port; the first line on stdout (flushed
// at once) says which. SIGINT or SIGTERM: the server stops accepting, closes
// every connection and exits with status 0.
//
// The keyspace is split into --threads shards (keys hashed to shards, see
// kv/store.hpp). This build runs every shard on one reactor thread.
//
// The parts: kv/resp.* (protocol), kv/store.* (shards and their tables),
// kv/commands.* (the commands), kv/server.* (a connection's loop and its
// memory limits).
#include "kv/commands.hpp"
#include "kv/server.hpp"
#include "kv/store.hpp"

#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#if defined(__linux__)
#  include <sys/signalfd.h>
#endif
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int) {
    const int saved = errno;
    const char c = 1;
    ssize_t r = ::write(g_signal_pipe[1], &c, 1);   // async-signal-safe
    (void)r;
    errno = saved;
}

void usage(std::FILE* to, const char* argv0) {
    std::fprintf(to,
                 "usage: %s [--host H] [--port P] [--threads N]\n"
                 "  --host H     IPv4 address to listen on (default 127.0.0.1)\n"
                 "  --port P     TCP port (default 6379); 0 = any free port. The first line\n"
                 "               on stdout is \"listening on H:P\".\n"
                 "  --threads N  shards of the keyspace (default: online CPUs, here %ld).\n"
                 "               This build runs every shard on one reactor thread.\n"
                 "Limits: one argument %zu bytes, one command %zu bytes, one reply %zu bytes.\n",
                 argv0, ::sysconf(_SC_NPROCESSORS_ONLN), kv::resp::limits{}.max_bulk,
                 kv::conn_limits{}.max_request, kv::server_config{}.max_output);
}

bool parse_number(const char* s, long lo, long hi, long& out) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s, &end, 10);
    if (errno || !end || end == s || *end || v < lo || v > hi) return false;
    out = v;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = 6379;
    long threads = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout, argv[0]);
            return 0;
        }
        const bool has_value = i + 1 < argc;
        if (a == "--host" && has_value) {
            host = argv[++i];
        } else if (a == "--port" && has_value) {
            if (!parse_number(argv[++i], 0, 65535, port)) {
                std::fprintf(stderr, "coop-kv: --port takes 0..65535\n");
                return 2;
            }
        } else if (a == "--threads" && has_value) {
            if (!parse_number(argv[++i], 1, 1024, threads)) {
                std::fprintf(stderr, "coop-kv: --threads takes 1..1024\n");
                return 2;
            }
        } else {
            usage(stderr, argv[0]);
            return 2;
        }
    }

    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
        std::fprintf(stderr, "coop-kv: not an IPv4 address: %s\n", host.c_str());
        return 2;
    }
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        std::perror("coop-kv: socket");
        return 1;
    }
    int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4096) != 0) {
        std::perror("coop-kv: bind/listen");
        return 1;
    }
    socklen_t len = sizeof addr;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
    const unsigned bound_port = ntohs(addr.sin_port);

    // SIGINT/SIGTERM arrive as readable data for a task: through a signalfd
    // on Linux (the signals stay blocked, no handler runs at all, which
    // also works under TSan), elsewhere through a handler and a pipe.
#if defined(__linux__)
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    g_signal_pipe[0] = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (g_signal_pipe[0] < 0) {
        std::perror("coop-kv: signalfd");
        return 1;
    }
    constexpr std::size_t signal_record = sizeof(signalfd_siginfo);
#else
    if (::pipe(g_signal_pipe) != 0) {
        std::perror("coop-kv: pipe");
        return 1;
    }
    for (int fd : g_signal_pipe) {
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    constexpr std::size_t signal_record = 1;
#endif
    ::signal(SIGPIPE, SIG_IGN);

    // Declared before the reactor: its destructor unwinds the connection
    // tasks, which still use the engine and the keyspace.
    kv::keyspace keys(static_cast<unsigned>(threads));
    kv::server_config cfg;
    cfg.bind = host;
    cfg.port = bound_port;
    kv::engine engine(keys, cfg);
    const kv::conn_limits limits;
    coop::reactor r;

    std::printf("listening on %s:%u\n", host.c_str(), bound_port);
    std::fflush(stdout);

    r.spawn([&, lfd] {
        std::uint64_t next_id = 1;
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
            coop::this_reactor().spawn(
                [&, fd = a.fd, id = next_id++] {
                    // Out of memory serving one client costs that client
                    // its connection (serve_connection closes it), not the
                    // server. coop::forced_unwind is no std::exception and
                    // passes through.
                    try {
                        kv::serve_connection(fd, engine, limits, id);
                    } catch (const std::exception& e) {
                        std::fprintf(stderr, "coop-kv: connection %llu closed: %s\n",
                                     static_cast<unsigned long long>(id), e.what());
                    }
                },
                {64 * 1024, "kv-conn", false});
        }
    }, {64 * 1024, "kv-accept", false});

    // Active expiry, ten times a second (as Redis's default hz), at most
    // 2 ms of work per shard each time.
    r.spawn([&] {
        for (;;) {
            if (coop::sleep_for(std::chrono::milliseconds(100))) return;
            for (unsigned i = 0; i < keys.shard_count(); ++i) {
                const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
                keys.shard(i).expire_cycle(kv::unix_millis(), until);
            }
        }
    }, {64 * 1024, "kv-expire", false});

    r.spawn([&r, lfd] {
        alignas(8) char record[128];
        static_assert(signal_record <= sizeof record);
        while (coop::io::read(g_signal_pipe[0], record, signal_record).error == std::errc::interrupted) {}
        coop::close(lfd);     // the acceptor wakes with EBADF and ends
        r.stop();
    }, {64 * 1024, "kv-signals", false});

    try {
        r.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coop-kv: %s\n", e.what());
        return 1;
    }
    // Leaving main destroys the reactor first: the connection tasks unwind
    // and close their connections.
    return 0;
}
