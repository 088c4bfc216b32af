// bench/runtime_bench.cpp — many reactors: does a second core help, what a
// value handed to another reactor costs, and how connections spread.
//
//   BM_RuntimeScaling/R       an echo-style TCP service on a coop::runtime of R
//                             reactors (listener, round robin) whose every
//                             request costs about 20 us of CPU; a load client
//                             (its own thread, one coop reactor, 32 connections,
//                             one request in flight each) on the same machine.
//                             items_per_second = requests per second. The
//                             client shares the cores with the server.
//   BM_CrossReactorHandoff    a task of reactor 0 and a task of reactor 1 pass a
//                             value back and forth through two shared channels:
//                             one iteration = 2 hand-offs, each one waking a
//                             task parked on the other reactor (whose thread
//                             may be asleep in the kernel). Reported per
//                             hand-off: time per iteration / handoffs.
//   BM_AcceptSpread/M         M = 0 round robin, 1 SO_REUSEPORT: 64 connections
//                             opened by a client thread to a 2-reactor
//                             listener; counters: connections per second and
//                             spread = fewest connections on a reactor ÷ most.
//
// Time is wall-clock (UseRealTime): threads and waiting are the point here.
#include "bench_util.hpp"

#include <coop/io.hpp>
#include <coop/listener.hpp>
#include <coop/reactor.hpp>
#include <coop/runtime.hpp>
#include <coop/shared_channel.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kRequest = 64;       // bytes per request and per reply

// About 20 us of dependent integer work on the development machine; the
// exact figure does not matter, only that it is the same for R = 1 and 2.
COOP_BENCH_OPAQUE std::uint64_t cpu_work(std::uint64_t x) {
    for (int i = 0; i < 12000; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

void serve(int fd) {
    char buf[kRequest];
    for (;;) {
        coop::io::result r = coop::io::read_exact(fd, buf, sizeof buf);
        if (!r) break;
        std::uint64_t x;
        std::memcpy(&x, buf, sizeof x);
        x = cpu_work(x);
        std::memcpy(buf, &x, sizeof x);
        if (!coop::io::write_all(fd, buf, sizeof buf)) break;
    }
    coop::close(fd);
}

// A blocking connect to 127.0.0.1:port, then non-blocking with TCP_NODELAY.
int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)coop::io::set_nonblocking(fd);
    return fd;
}

void BM_RuntimeScaling(benchmark::State& st) {
    const auto reactors = static_cast<std::size_t>(st.range(0));
    coop::runtime rt({.threads = reactors});
    coop::listener l(rt, {.host = "127.0.0.1", .port = 0}, serve);
    std::thread server([&] { rt.run(); });

    constexpr int kConnections = 32;
    constexpr long kPerIteration = 256;    // requests per benchmark iteration
    std::vector<int> fds;
    for (int i = 0; i < kConnections; ++i)
        if (int fd = connect_loopback(l.port()); fd >= 0) fds.push_back(fd);
    long budget = 0;
    coop::reactor client;                  // the load client: this thread
    for (auto _ : st) {
        budget = kPerIteration;
        for (int fd : fds)
            client.spawn([&budget, fd] {
                char buf[kRequest] = {1};
                while (budget-- > 0)
                    if (!coop::io::write_all(fd, buf, sizeof buf) || !coop::io::read_exact(fd, buf, sizeof buf))
                        break;
            });
        client.run();                      // until the iteration's requests are answered
    }
    for (int fd : fds) coop::close(fd);
    l.close();
    server.join();
    if (fds.size() != kConnections) st.SkipWithError("could not open every connection");
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * kPerIteration);
    st.counters["reactors"] = static_cast<double>(reactors);
    st.counters["connections"] = kConnections;
}
BENCHMARK(BM_RuntimeScaling)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_CrossReactorHandoff(benchmark::State& st) {
    coop::runtime rt({.threads = 2, .idle_spin = std::chrono::microseconds(st.range(0))});
    coop::shared_channel<long> ping(1), pong(1);
    rt.spawn_on(1, [&] {                   // the echo side
        long v;
        while (!ping.recv(v)) (void)pong.send(v + 1);
        pong.close();
    });
    rt.spawn_on(0, [&] {                   // the driver: the benchmark loop runs here
        long v = 0;
        for (auto _ : st) {
            (void)ping.send(v);
            (void)pong.recv(v);
        }
        benchmark::DoNotOptimize(v);
        ping.close();
    });
    rt.run();
    st.counters["handoffs"] = 2;           // per iteration
}
BENCHMARK(BM_CrossReactorHandoff)->Arg(0)->Arg(3)->Arg(50)->UseRealTime();

void BM_AcceptSpread(benchmark::State& st) {
    const coop::accept_mode mode = st.range(0) == 0 ? coop::accept_mode::round_robin : coop::accept_mode::reuseport;
    constexpr int kConnections = 64;
    double spread_sum = 0;
    long rounds = 0;
    for (auto _ : st) {
        coop::runtime rt({.threads = 2});
        coop::listener l(rt, {.host = "127.0.0.1", .port = 0, .mode = mode}, [](int fd) {
            char c;
            (void)coop::io::read(fd, &c, 1, 1s);   // until the client closes
            coop::close(fd);
        });
        std::thread server([&] { rt.run(); });
        std::vector<int> fds;
        for (int i = 0; i < kConnections; ++i) {
            const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(l.port());
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) fds.push_back(fd);
            else ::close(fd);
        }
        while (l.accepted(0) + l.accepted(1) < fds.size()) std::this_thread::yield();
        const auto a0 = static_cast<double>(l.accepted(0)), a1 = static_cast<double>(l.accepted(1));
        spread_sum += std::min(a0, a1) / std::max(1.0, std::max(a0, a1));
        ++rounds;
        for (int fd : fds) ::close(fd);
        l.close();
        server.join();
    }
    st.counters["spread"] = spread_sum / static_cast<double>(rounds);
    st.counters["conns_per_s"] = benchmark::Counter(static_cast<double>(st.iterations()) * kConnections,
                                                    benchmark::Counter::kIsRate);
    st.SetLabel(mode == coop::accept_mode::round_robin ? "round_robin" : "reuseport");
}
BENCHMARK(BM_AcceptSpread)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
