// bench/reactor_bench.cpp — the reactor: scheduling cost, spawn cost, and
// what overlapping waits buys on one thread.
//
//   BM_SchedulerYield/N        N tasks call coop::yield() round-robin. One
//                              iteration = one turn of every task = N hops;
//                              a hop is task -> reactor -> next task, i.e.
//                              2 switches (counters: hops, switches_per_hop).
//                              Included: the run-queue work and the reactor's
//                              non-blocking poll of the kernel every 64
//                              resumptions (what keeps timers and I/O alive
//                              under busy yielders).
//   BM_SpawnJoin               a task spawns a trivial task and joins it:
//                              pooled stack, frame, 4 switches (driver parks,
//                              child runs, child ends, driver resumes).
//   BM_TimerWait{Sequential,Concurrent}/N
//                              N requests that each wait L = 1 ms on a timer:
//                              one after another in one task, or N tasks at
//                              once (spawned and joined each iteration).
//   BM_SocketWait{Sequential,Concurrent}/N
//                              N requests, each a real socketpair round trip
//                              through a server task that takes L = 1 ms to
//                              answer (it sleeps, as a backend would).
//
// Time is wall-clock (UseRealTime): waiting is the point here.
#include "bench_util.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <vector>

#if defined(COOP_BENCH_HAVE_REACTOR) && __has_include(<coop/reactor.hpp>)
#  include <coop/reactor.hpp>
#  define COOP_BENCH_REACTOR 1
#else
#  define COOP_BENCH_REACTOR 0
#endif
#if COOP_BENCH_REACTOR && __has_include(<coop/io.hpp>)
#  include <coop/io.hpp>
#  define COOP_BENCH_IO 1
#else
#  define COOP_BENCH_IO 0
#endif

namespace {

using namespace std::chrono_literals;
constexpr auto kWait = 1ms;   // L of the I/O-bound benchmarks

#if COOP_BENCH_REACTOR

// ------------------------------------------------------------ scheduler
void BM_SchedulerYield(benchmark::State& st) {
    const int n = static_cast<int>(st.range(0));
    coop::reactor r;
    bool stop = false;
    for (int i = 1; i < n; ++i)
        r.spawn([&stop] {
            while (!stop) coop::yield();
        });
    r.spawn([&] {
        coop_bench::cycle_meter m(st);
        for (auto _ : st) coop::yield();       // one turn of all n tasks
        m.finish(2.0 * n);
        stop = true;
    });
    r.run();
    st.counters["hops"] = n;
    st.counters["switches_per_hop"] = 2;
    st.counters["tasks"] = n;
}
BENCHMARK(BM_SchedulerYield)->Arg(2)->Arg(16)->Arg(1024);

void BM_SpawnJoin(benchmark::State& st) {
    coop::reactor r;
    r.spawn([&] {
        int x = 0;
        coop_bench::cycle_meter m(st);
        for (auto _ : st) {
            coop::task t = r.spawn([&x] { benchmark::DoNotOptimize(++x); });
            t.join();
        }
        m.finish(4);
    });
    r.run();
}
BENCHMARK(BM_SpawnJoin);

// ------------------------------------------------------------ I/O-bound
void timer_wait(benchmark::State& st, bool concurrent) {
    const int n = static_cast<int>(st.range(0));
    coop::reactor r;
    r.spawn([&] {
        std::vector<coop::task> ts;
        ts.reserve(static_cast<std::size_t>(n));
        for (auto _ : st) {
            if (concurrent) {
                for (int i = 0; i < n; ++i) ts.push_back(r.spawn([] { coop::sleep_for(kWait); }));
                for (coop::task& t : ts) t.join();
                ts.clear();
            } else {
                for (int i = 0; i < n; ++i) coop::sleep_for(kWait);
            }
        }
    });
    r.run();
    st.counters["requests"] = n;
    st.counters["wait_us"] = std::chrono::duration<double, std::micro>(kWait).count();
    st.counters["pool_capacity"] = static_cast<double>(coop::pool_capacity);
}
void BM_TimerWaitSequential(benchmark::State& st) { timer_wait(st, false); }
void BM_TimerWaitConcurrent(benchmark::State& st) { timer_wait(st, true); }
BENCHMARK(BM_TimerWaitSequential)->Arg(1)->Arg(4)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
// Concurrency up to where one thread clearly saturates on the development
// machine (see the summary); 512 sits just past the stack pool's capacity.
BENCHMARK(BM_TimerWaitConcurrent)
    ->Arg(1)->Arg(4)->Arg(16)->Arg(64)->Arg(256)->Arg(512)->Arg(1024)->Arg(4096)
    ->UseRealTime()->Unit(benchmark::kMillisecond);

// Read exactly n bytes / write exactly n bytes on a non-blocking fd, parking
// on the reactor when the kernel has nothing.
bool read_full(int fd, void* buf, std::size_t n) {
#if COOP_BENCH_IO
    return static_cast<bool>(coop::io::read_exact(fd, buf, n));
#else
    char* p = static_cast<char*>(buf);
    while (n > 0) {
        ssize_t k = ::read(fd, p, n);
        if (k > 0) {
            p += k;
            n -= static_cast<std::size_t>(k);
        } else if (k == 0) {
            return false;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (coop::wait_readable(fd)) return false;
        } else if (errno != EINTR) {
            return false;
        }
    }
    return true;
#endif
}
bool write_full(int fd, const void* buf, std::size_t n) {
#if COOP_BENCH_IO
    return static_cast<bool>(coop::io::write_all(fd, buf, n));
#else
    const char* p = static_cast<const char*>(buf);
    while (n > 0) {
        ssize_t k = ::write(fd, p, n);
        if (k > 0) {
            p += k;
            n -= static_cast<std::size_t>(k);
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (coop::wait_writable(fd)) return false;
        } else if (k < 0 && errno != EINTR) {
            return false;
        }
    }
    return true;
#endif
}

// The server side of one socketpair: answer each 8-byte request after L.
void serve(int fd) {
    std::uint64_t req;
    while (read_full(fd, &req, sizeof req)) {
        coop::sleep_for(kWait);
        if (!write_full(fd, &req, sizeof req)) break;
    }
}

void request(int fd, std::uint64_t v) {
    write_full(fd, &v, sizeof v);
    std::uint64_t back = 0;
    read_full(fd, &back, sizeof back);
    benchmark::DoNotOptimize(back);
}

void socket_wait(benchmark::State& st, bool concurrent) {
    const int n = static_cast<int>(st.range(0));
    const int pairs = concurrent ? n : 1;
    std::vector<int> client(static_cast<std::size_t>(pairs)), server(static_cast<std::size_t>(pairs));
    for (int i = 0; i < pairs; ++i) {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
            st.SkipWithError("socketpair failed (fd limit? ulimit -n)");
            for (int j = 0; j < i; ++j) {
                ::close(client[j]);
                ::close(server[j]);
            }
            return;
        }
        client[i] = sv[0];
        server[i] = sv[1];
    }
    coop::reactor r;
    for (int i = 0; i < pairs; ++i) r.spawn([fd = server[i]] { serve(fd); });
    r.spawn([&] {
        std::vector<coop::task> ts;
        ts.reserve(static_cast<std::size_t>(n));
        std::uint64_t seq = 0;
        for (auto _ : st) {
            if (concurrent) {
                for (int i = 0; i < n; ++i)
                    ts.push_back(r.spawn([fd = client[i], v = seq++] { request(fd, v); }));
                for (coop::task& t : ts) t.join();
                ts.clear();
            } else {
                for (int i = 0; i < n; ++i) request(client[0], seq++);
            }
        }
        for (int fd : client) coop::close(fd);   // the servers see EOF and end
    });
    r.run();
    for (int fd : server) coop::close(fd);
    st.counters["requests"] = n;
    st.counters["wait_us"] = std::chrono::duration<double, std::micro>(kWait).count();
    st.counters["pool_capacity"] = static_cast<double>(coop::pool_capacity);
}
void BM_SocketWaitSequential(benchmark::State& st) { socket_wait(st, false); }
void BM_SocketWaitConcurrent(benchmark::State& st) { socket_wait(st, true); }
BENCHMARK(BM_SocketWaitSequential)->Arg(1)->Arg(4)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SocketWaitConcurrent)
    ->Arg(1)->Arg(4)->Arg(16)->Arg(64)->Arg(128)->Arg(256)->Arg(512)->Arg(1024)
    ->UseRealTime()->Unit(benchmark::kMillisecond);

#else  // no reactor yet

constexpr const char* kNoReactor = "coop::reactor (include/coop/reactor.hpp) is not in this tree";
void BM_SchedulerYield(benchmark::State& st) { st.SkipWithError(kNoReactor); }
void BM_SpawnJoin(benchmark::State& st) { st.SkipWithError(kNoReactor); }
BENCHMARK(BM_SchedulerYield)->Arg(2);
BENCHMARK(BM_SpawnJoin);

#endif

} // namespace

COOP_BENCH_MAIN()
