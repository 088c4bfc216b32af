// bench/echo_bench.cpp — echo ping-pong over TCP loopback: coop servers on
// each backend, a libuv callback server and a raw epoll loop, each on its
// own thread, all driven by the same blocking client (bench/echo_servers.hpp
// has the servers, the client and what each does).
//
//   BM_EchoCoop/io_uring/C, BM_EchoCoop/epoll/C, BM_EchoLibuv/C, BM_EchoEpoll/C
//     One iteration writes a 64-byte message on every one of C connections,
//     then reads every echo back in full: C message round trips (counter
//     "roundtrips"). C = 1 is pure ping-pong latency; C = 16 and 64 give the
//     server several ready connections per wake-up, which is where
//     per-event and per-system-call overhead shows. The coop server's
//     backend is forced with COOP_POLLER for its reactor; where io_uring is
//     not granted, BM_EchoCoop/io_uring reports that instead of a time.
//
// Pinning: with two CPUs or more, the server thread runs on the first the
// process may use and the client (the benchmark thread) on the second, so
// the two never share a core and the scheduler does not move them about
// (COOP_BENCH_PIN=0 leaves them to the scheduler). The client's affinity
// is put back after each run.
// Time is wall-clock (UseRealTime): the client and the server are different
// threads. Starting and stopping a server and its thread happens outside
// the timed loop.
#include "bench_util.hpp"

#include "echo_servers.hpp"

#include <sys/eventfd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// Where the server and the client run (see the file comment).
class pinning {
public:
    pinning() : all_(echo::allowed_cpus()) {
        const char* v = std::getenv("COOP_BENCH_PIN");
        on_ = all_.size() >= 2 && !(v && std::strcmp(v, "0") == 0);
    }
    ~pinning() {
        if (on_) echo::pin_to(all_);          // the benchmark thread's own affinity back
    }
    void server() const {
        if (on_) echo::pin_to({all_[0]});
    }
    void client() const {
        if (on_) echo::pin_to({all_[1]});
    }

private:
    std::vector<int> all_;
    bool on_ = false;
};

// Runs the timed loop against a server listening on port.
void run_client(benchmark::State& st, int port, const pinning& pin) {
    const int conns = static_cast<int>(st.range(0));
    pin.client();
    std::vector<int> fds;
    if (!echo::client_connect(port, conns, fds)) {
        for (int f : fds) ::close(f);
        st.SkipWithError("client: connect to the server failed");
        return;
    }
    bool ok = true;
    std::uint64_t n = 0;
    for (auto _ : st) {
        if (!echo::client_round(fds, n++)) {
            ok = false;
            break;
        }
    }
    for (int fd : fds) ::close(fd);
    if (!ok) {
        st.SkipWithError("client: echo mismatch or connection lost");
        return;
    }
    st.counters["roundtrips"] = conns;
    st.counters["msg_bytes"] = echo::kMsg;
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * conns);
}

// ------------------------------------------------------------ coop server
// backend: what COOP_POLLER says while the server's reactor is constructed.
void BM_EchoCoop(benchmark::State& st, const char* backend) {
    int port = 0;
    int lfd = echo::listen_loopback(port, true);
    if (lfd < 0) {
        st.SkipWithError("listen on 127.0.0.1 failed");
        return;
    }
    const pinning pin;
    std::string old_env;
    const char* had = std::getenv("COOP_POLLER");
    if (had) old_env = had;
    ::setenv("COOP_POLLER", backend, 1);
    coop::reactor* rp = nullptr;
    std::string failed;
    std::atomic<bool> ready{false};
    std::thread server([&] {
        pin.server();
        try {
            coop::reactor r;
            rp = &r;
            echo::coop_serve(r, lfd);
            ready.store(true, std::memory_order_release);
            r.run();
        } catch (const std::exception& e) {
            failed = e.what();
            ready.store(true, std::memory_order_release);
        }
    });
    while (!ready.load(std::memory_order_acquire)) std::this_thread::yield();
    if (had) ::setenv("COOP_POLLER", old_env.c_str(), 1); else ::unsetenv("COOP_POLLER");
    if (!failed.empty()) {
        server.join();
        ::close(lfd);
        st.SkipWithError(("coop on " + std::string(backend) + ": " + failed).c_str());
        return;
    }
    run_client(st, port, pin);
    // Closing the listener (on the reactor's thread) ends the accept loop;
    // the connection tasks have seen EOF; run() returns when all are done.
    rp->post([lfd] { coop::close(lfd); });
    server.join();
}
BENCHMARK_CAPTURE(BM_EchoCoop, io_uring, "io_uring")->Arg(1)->Arg(16)->Arg(64)->UseRealTime();
BENCHMARK_CAPTURE(BM_EchoCoop, epoll, "epoll")->Arg(1)->Arg(16)->Arg(64)->UseRealTime();

// ------------------------------------------------------------ libuv server
#if COOP_BENCH_UV
void BM_EchoLibuv(benchmark::State& st) {
    const pinning pin;
    echo::uv_server* s = echo::uv_create(0);
    if (!s->port) st.SkipWithError("libuv: listen on 127.0.0.1 failed");
    std::thread server([s, &pin] {
        pin.server();
        uv_run(&s->loop, UV_RUN_DEFAULT);
    });
    if (s->port) run_client(st, s->port, pin);
    uv_async_send(&s->stop);            // closes every handle; uv_run returns
    server.join();
    echo::uv_destroy(s);
}
#else
void BM_EchoLibuv(benchmark::State& st) { st.SkipWithError("libuv not found: apt-get install libuv1-dev"); }
#endif
BENCHMARK(BM_EchoLibuv)->Arg(1)->Arg(16)->Arg(64)->UseRealTime();

// ------------------------------------------------------------ raw epoll
void BM_EchoEpoll(benchmark::State& st) {
    int port = 0;
    int lfd = echo::listen_loopback(port, true);
    int stopfd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lfd < 0 || stopfd < 0) {
        st.SkipWithError("listen on 127.0.0.1 / eventfd failed");
        if (lfd >= 0) ::close(lfd);
        if (stopfd >= 0) ::close(stopfd);
        return;
    }
    const pinning pin;
    std::thread server([&] {
        pin.server();
        echo::epoll_serve(lfd, stopfd);
    });
    run_client(st, port, pin);
    std::uint64_t one = 1;
    ssize_t w = ::write(stopfd, &one, sizeof one);
    (void)w;
    server.join();
    ::close(lfd);
    ::close(stopfd);
}
BENCHMARK(BM_EchoEpoll)->Arg(1)->Arg(16)->Arg(64)->UseRealTime();

} // namespace

COOP_BENCH_MAIN()
