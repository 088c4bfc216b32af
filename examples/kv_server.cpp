// examples/kv_server.cpp — coop-kv: an in-memory key-value server speaking
// RESP2, the Redis protocol, on coop. redis-cli and redis-benchmark work
// against it.
//
//   $ build/x86_64/bin/coop-kv [--host 127.0.0.1] [--port 6379] [--threads N]
//   listening on 127.0.0.1:6379
//
// --port 0 lets the kernel pick a free port; the first line on stdout (flushed
// at once) says which. SIGINT or SIGTERM: the server stops accepting, closes
// every connection and exits with status 0.
//
// --threads N runs N reactors on N threads (a coop::runtime). A coop::listener
// spreads the connections over them, and the keyspace is split into N
// shards, shard i owned by reactor i (kv/store.hpp): a command for a key of
// another reactor's shard travels there and the connection's task parks
// until the owner answers (kv/server.hpp). Each reactor runs the active
// expiry of its own shard.
//
// The parts: kv/resp.* (protocol), kv/store.* (shards and their tables),
// kv/commands.* (the commands), kv/server.* (a connection's loop, its
// memory limits, each reactor's connections and shutdown).
#include "kv/commands.hpp"
#include "kv/server.hpp"
#include "kv/store.hpp"

#include <coop/io.hpp>
#include <coop/listener.hpp>
#include <coop/reactor.hpp>

#include "stop_signals.hpp"
#include <coop/runtime.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <system_error>

namespace {

void usage(std::FILE* to, const char* argv0) {
    std::fprintf(to,
                 "usage: %s [--host H] [--port P] [--threads N] [--accept MODE] [--shutdown-grace S]\n"
                 "  --host H       IPv4 address to listen on (default 127.0.0.1)\n"
                 "  --port P       TCP port (default 6379); 0 = any free port. The first line\n"
                 "                 on stdout is \"listening on H:P\".\n"
                 "  --threads N    reactor threads, each owning one shard of the keyspace\n"
                 "                 (default: online CPUs, here %ld).\n"
                 "  --accept MODE  how connections are spread over the reactors: round-robin\n"
                 "                 (default: one acceptor deals them out in turn) or reuseport\n"
                 "                 (a listening socket per reactor; the kernel picks by hash).\n"
                 "  --shutdown-grace S  after SIGINT/SIGTERM, seconds the connections get to\n"
                 "                 finish their command and close (default 30); then the\n"
                 "                 reactors stop and the remaining tasks are canceled.\n"
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
    coop::accept_mode accept = coop::accept_mode::round_robin;
    // How long connections get to close after SIGINT/SIGTERM before the
    // runtime is stopped and its teardown cancels what is left. Each
    // connection ends within about a second of its socket being shut down
    // (the command in progress, then its failed read or write), so the
    // default is a bound for slow machines (Valgrind, qemu), not a wait
    // anyone sees; 0 stops at once (the tests use it to exercise teardown).
    long grace_s = 30;
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
        } else if (a == "--shutdown-grace" && has_value) {
            if (!parse_number(argv[++i], 0, 3600, grace_s)) {
                std::fprintf(stderr, "coop-kv: --shutdown-grace takes 0..3600\n");
                return 2;
            }
        } else if (a == "--accept" && has_value) {
            const std::string m = argv[++i];
            if (m == "round-robin") {
                accept = coop::accept_mode::round_robin;
            } else if (m == "reuseport") {
                accept = coop::accept_mode::reuseport;
            } else {
                std::fprintf(stderr, "coop-kv: --accept takes round-robin or reuseport\n");
                return 2;
            }
        } else {
            usage(stderr, argv[0]);
            return 2;
        }
    }
    {
        in_addr probe{};
        if (::inet_pton(AF_INET, host.c_str(), &probe) != 1) {
            std::fprintf(stderr, "coop-kv: not an IPv4 address: %s\n", host.c_str());
            return 2;
        }
    }

    // SIGINT/SIGTERM reach a task as data (examples/stop_signals.hpp).
    coop_examples::stop_signals stop;
    if (!stop.open("coop-kv")) return 1;

    // Declared before the runtime: its teardown unwinds whatever tasks are
    // left, which still use the keyspace, the engine and the server.
    const auto n = static_cast<unsigned>(threads);
    kv::keyspace keys(n);
    kv::server_config cfg;
    cfg.bind = host;
    kv::engine engine(keys, cfg);
    kv::server srv(engine, kv::conn_limits{}, n);
    coop::runtime_options ro;
    ro.threads = n;
    // A lone reactor has nobody to hand it work: it sleeps at once.
    if (n == 1) ro.idle_spin = std::chrono::nanoseconds(0);
    coop::runtime rt(ro);
    keys.attach(rt);

    // Round robin by default: connections are dealt out evenly, which
    // SO_REUSEPORT's hash of the addresses does not do for a few dozen
    // connections from one client (see README, coop-kv). A client keeps its
    // connection, so the hand-off per connection costs nothing that shows.
    std::optional<coop::listener> listener;
    try {
        coop::listen_options lo;
        lo.host = host;
        lo.port = static_cast<std::uint16_t>(port);
        lo.backlog = 4096;
        lo.mode = accept;
        listener.emplace(rt, lo, [&srv](int fd) { srv.serve(fd); });
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "coop-kv: %s\n", e.what());
        return 1;
    }
    engine.set_port(listener->port());

    std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>(listener->port()));
    std::fflush(stdout);

    for (unsigned i = 0; i < n; ++i) rt.spawn_on(i, [&srv, i] { srv.expire_loop(i); });

    // Shutdown: stop accepting, let every reactor shut its connections
    // down, and wait for them to end. run() then returns by itself, each
    // reactor having no task left.
    rt.spawn_on(0, [&] {
        stop.wait();
        listener->close();
        for (unsigned i = 0; i < n; ++i) rt.post(i, [&srv] { srv.shut_down_here(); });
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(grace_s);
        while (srv.live() > 0 && std::chrono::steady_clock::now() < until) {
            if (coop::sleep_for(std::chrono::milliseconds(5))) break;
        }
        if (srv.live() > 0) {
            if (grace_s > 0)
                std::fprintf(stderr, "coop-kv: %ld connections still open after %lds; stopping\n", srv.live(), grace_s);
            rt.stop();
        }
    });

    try {
        rt.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coop-kv: %s\n", e.what());
        return 1;
    }
    // Leaving main closes the listener and destroys the runtime: reactors
    // that were stopped cancel and unwind their remaining tasks, which
    // close their connections.
    return 0;
}
