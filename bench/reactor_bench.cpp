// bench/reactor_bench.cpp — the reactor: scheduling cost, spawn cost, and
// what overlapping waits buys on one thread.
//
//   BM_SchedulerYield/N        N tasks call coop::yield() round-robin. One
//                              iteration = one turn of every task = N hops
//                              (counters: hops, tasks); a hop is from one
//                              task's coop::yield() until the next task runs:
//                              one switch when the yielding task hands over
//                              directly, two when it goes through the run
//                              loop. Included: the run-queue work and the
//                              reactor's non-blocking look at timers and I/O
//                              every 64 resumes (what keeps them alive under
//                              busy yielders).
//   BM_SpawnJoin               a task spawns a trivial task and joins it:
//                              pooled stack, control block, and the switches
//                              of the joiner parking, the child running and
//                              ending, and the joiner resuming.
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
#include "kernels.hpp"

#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace {

using namespace std::chrono_literals;
constexpr auto kWait = 1ms;   // L of the I/O-bound benchmarks

// ------------------------------------------------------------ scheduler
void BM_SchedulerYield(benchmark::State& st) {
    const int n = static_cast<int>(st.range(0));
    coop_bench::with_yielders(n, [&] {
        coop_bench::cycle_meter m(st);
        for (auto _ : st) coop::yield();    // one turn of all n tasks
        m.finish();
    });
    st.counters["hops"] = n;
    st.counters["tasks"] = n;
}
BENCHMARK(BM_SchedulerYield)->Arg(2)->Arg(16)->Arg(1024);

void BM_SpawnJoin(benchmark::State& st) {
    coop_bench::in_task([&](coop::reactor& r) {
        int x = 0;
        coop_bench::cycle_meter m(st);
        for (auto _ : st) coop_bench::spawn_join(r, x);
        m.finish();
    });
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
    return static_cast<bool>(coop::io::read_exact(fd, buf, n));
}
bool write_full(int fd, const void* buf, std::size_t n) {
    return static_cast<bool>(coop::io::write_all(fd, buf, n));
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

} // namespace

COOP_BENCH_MAIN()
