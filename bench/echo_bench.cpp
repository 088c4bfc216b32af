// bench/echo_bench.cpp — echo ping-pong over TCP loopback: a coop server
// (one task per connection), a libuv callback server and a raw epoll loop,
// each on its own thread, all driven by the same blocking client.
//
//   BM_EchoCoop/C, BM_EchoLibuv/C, BM_EchoEpoll/C
//     The client (the benchmark thread) holds C connections to 127.0.0.1,
//     TCP_NODELAY on both ends. One iteration writes a 64-byte message on
//     every connection, then reads every echo back in full: C message round
//     trips (counter "roundtrips"). C = 1 is pure ping-pong latency; C = 16
//     gives the server several ready connections per wake-up, which is
//     where per-event overhead shows.
//
// The three servers do the same work the fast way for their model:
//   coop    a task per connection: read up to 16 KiB, write it all back,
//           parking on the reactor when the socket has nothing / is full;
//   libuv   one 16 KiB read buffer for the whole loop (alloc_cb hands out the
//           same buffer), uv_try_write first, a queued uv_write (with a copy
//           of the rest) only when the socket did not take everything;
//   epoll   level-triggered epoll_wait, one 16 KiB buffer, write() straight
//           back, EPOLLOUT and a per-connection backlog only on a short write.
// Time is wall-clock (UseRealTime): the client and the server are different
// threads. Stopping a server and its thread happens outside the timed loop.
#include "bench_util.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <coop/io.hpp>
#include <coop/reactor.hpp>

#if defined(COOP_BENCH_HAVE_LIBUV) && __has_include(<uv.h>)
#  include <uv.h>
#  define COOP_BENCH_UV 1
#else
#  define COOP_BENCH_UV 0
#endif

namespace {

constexpr std::size_t kMsg = 64;
constexpr std::size_t kBuf = 16 * 1024;

void nodelay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A listening socket on 127.0.0.1 with a kernel-chosen port.
int listen_loopback(int& port, bool nonblocking) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 1024) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        return -1;
    }
    port = ntohs(a.sin_port);
    return fd;
}

// ------------------------------------------------------------ the client
// Runs the timed loop against a server listening on port.
void run_client(benchmark::State& st, int port) {
    const int conns = static_cast<int>(st.range(0));
    std::vector<int> fds;
    for (int i = 0; i < conns; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            if (fd >= 0) ::close(fd);
            for (int f : fds) ::close(f);
            st.SkipWithError("client: connect to the server failed");
            return;
        }
        nodelay(fd);
        fds.push_back(fd);
    }
    char out[kMsg], in[kMsg];
    std::memset(out, 'x', sizeof out);
    bool ok = true;
    std::uint64_t n = 0;
    for (auto _ : st) {
        std::memcpy(out, &n, sizeof n);       // a different message every time
        ++n;
        for (int fd : fds)
            if (::write(fd, out, kMsg) != static_cast<ssize_t>(kMsg)) ok = false;
        for (int fd : fds) {
            std::size_t got = 0;
            while (got < kMsg) {
                ssize_t k = ::read(fd, in + got, kMsg - got);
                if (k <= 0) {
                    if (k < 0 && errno == EINTR) continue;
                    ok = false;
                    break;
                }
                got += static_cast<std::size_t>(k);
            }
            if (std::memcmp(in, out, kMsg) != 0) ok = false;
        }
        if (!ok) break;
    }
    for (int fd : fds) ::close(fd);
    if (!ok) {
        st.SkipWithError("client: echo mismatch or connection lost");
        return;
    }
    st.counters["roundtrips"] = conns;
    st.counters["msg_bytes"] = kMsg;
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * conns);
}

// ------------------------------------------------------------ coop server
// What a coop user writes: coop::io parks the task on EAGAIN.
ssize_t coop_read_some(int fd, char* buf, std::size_t n) {
    coop::io::result r = coop::io::read(fd, buf, n);
    return r ? static_cast<ssize_t>(r.size) : -1;
}
bool coop_write_all(int fd, const char* buf, std::size_t n) {
    return static_cast<bool>(coop::io::write_all(fd, buf, n));
}
int coop_accept(int lfd) {
    coop::io::accept_result r = coop::io::accept(lfd);
    return r ? r.fd : -1;
}

void BM_EchoCoop(benchmark::State& st) {
    int port = 0;
    int lfd = listen_loopback(port, true);
    if (lfd < 0) {
        st.SkipWithError("listen on 127.0.0.1 failed");
        return;
    }
    coop::reactor* rp = nullptr;
    std::atomic<bool> ready{false};
    std::thread server([&] {
        coop::reactor r;
        rp = &r;
        r.spawn([&r, lfd] {
            for (;;) {
                int c = coop_accept(lfd);
                if (c < 0) break;        // the listener was closed: shut down
                nodelay(c);
                r.spawn([c] {
                    char buf[kBuf];
                    for (;;) {
                        ssize_t k = coop_read_some(c, buf, sizeof buf);
                        if (k <= 0 || !coop_write_all(c, buf, static_cast<std::size_t>(k))) break;
                    }
                    coop::close(c);
                });
            }
        });
        ready.store(true, std::memory_order_release);
        r.run();
    });
    while (!ready.load(std::memory_order_acquire)) std::this_thread::yield();
    run_client(st, port);
    // Closing the listener (on the reactor's thread) ends the accept loop;
    // the connection tasks have seen EOF; run() returns when all are done.
    rp->post([lfd] { coop::close(lfd); });
    server.join();
}
BENCHMARK(BM_EchoCoop)->Arg(1)->Arg(16)->UseRealTime();

// ------------------------------------------------------------ libuv server
#if COOP_BENCH_UV
struct uv_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    char buf[kBuf];            // the one read buffer of the loop
};

struct uv_pending_write {
    uv_write_t req;
    uv_buf_t b;
    char data[1];              // the bytes uv_try_write did not take
};

void uv_on_close_free(uv_handle_t* h) { std::free(h); }

void uv_on_write(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<uv_pending_write*>(req);
    if (status < 0 && !uv_is_closing(reinterpret_cast<uv_handle_t*>(req->handle)))
        uv_close(reinterpret_cast<uv_handle_t*>(req->handle), uv_on_close_free);
    std::free(w);
}

void uv_on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* b) {
    auto* s = static_cast<uv_server*>(h->loop->data);
    *b = uv_buf_init(s->buf, sizeof s->buf);
}

void uv_on_read(uv_stream_t* c, ssize_t nread, const uv_buf_t* b) {
    if (nread > 0) {
        uv_buf_t out = uv_buf_init(b->base, static_cast<unsigned>(nread));
        int w = uv_try_write(c, &out, 1);
        if (w == UV_EAGAIN) w = 0;
        if (w < 0) {
            uv_close(reinterpret_cast<uv_handle_t*>(c), uv_on_close_free);
            return;
        }
        if (w < nread) {       // queue the rest, copied out of the shared buffer
            const std::size_t rest = static_cast<std::size_t>(nread - w);
            auto* p = static_cast<uv_pending_write*>(std::malloc(sizeof(uv_pending_write) + rest));
            std::memcpy(p->data, b->base + w, rest);
            p->b = uv_buf_init(p->data, static_cast<unsigned>(rest));
            if (uv_write(&p->req, c, &p->b, 1, uv_on_write) != 0) {
                std::free(p);
                uv_close(reinterpret_cast<uv_handle_t*>(c), uv_on_close_free);
            }
        }
    } else if (nread < 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(c), uv_on_close_free);
    }
}

void uv_on_connection(uv_stream_t* l, int status) {
    if (status < 0) return;
    auto* c = static_cast<uv_tcp_t*>(std::malloc(sizeof(uv_tcp_t)));
    uv_tcp_init(l->loop, c);
    if (uv_accept(l, reinterpret_cast<uv_stream_t*>(c)) != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(c), uv_on_close_free);
        return;
    }
    uv_tcp_nodelay(c, 1);
    uv_read_start(reinterpret_cast<uv_stream_t*>(c), uv_on_alloc, uv_on_read);
}

void uv_close_any(uv_handle_t* h, void*) {
    if (uv_is_closing(h)) return;
    auto* s = static_cast<uv_server*>(h->loop->data);
    if (h == reinterpret_cast<uv_handle_t*>(&s->listener) || h == reinterpret_cast<uv_handle_t*>(&s->stop))
        uv_close(h, nullptr);           // members of uv_server
    else
        uv_close(h, uv_on_close_free);  // connections
}

void uv_on_stop(uv_async_t* a) { uv_walk(a->loop, uv_close_any, nullptr); }

void BM_EchoLibuv(benchmark::State& st) {
    auto* s = new uv_server;
    uv_loop_init(&s->loop);
    s->loop.data = s;
    uv_tcp_init(&s->loop, &s->listener);
    uv_async_init(&s->loop, &s->stop, uv_on_stop);
    sockaddr_in a{};
    uv_ip4_addr("127.0.0.1", 0, &a);
    int port = 0;
    if (uv_tcp_bind(&s->listener, reinterpret_cast<const sockaddr*>(&a), 0) != 0 ||
        uv_listen(reinterpret_cast<uv_stream_t*>(&s->listener), 1024, uv_on_connection) != 0) {
        st.SkipWithError("libuv: listen on 127.0.0.1 failed");
    } else {
        int len = sizeof a;
        uv_tcp_getsockname(&s->listener, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    std::thread server([s] { uv_run(&s->loop, UV_RUN_DEFAULT); });
    if (port) run_client(st, port);
    uv_async_send(&s->stop);            // closes every handle; uv_run returns
    server.join();
    uv_loop_close(&s->loop);
    delete s;
}
#else
void BM_EchoLibuv(benchmark::State& st) { st.SkipWithError("libuv not found: apt-get install libuv1-dev"); }
#endif
BENCHMARK(BM_EchoLibuv)->Arg(1)->Arg(16)->UseRealTime();

// ------------------------------------------------------------ raw epoll
void epoll_server(int lfd, int stopfd) {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = stopfd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, stopfd, &ev);
    std::vector<std::string> backlog;        // per fd: bytes a short write left over
    static thread_local char buf[kBuf];
    epoll_event evs[64];
    bool running = true;
    auto drop = [&](int fd) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        if (static_cast<std::size_t>(fd) < backlog.size()) backlog[static_cast<std::size_t>(fd)].clear();
    };
    while (running) {
        int n = ::epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno == EINTR) continue;
        for (int i = 0; i < n; ++i) {
            const int fd = evs[i].data.fd;
            if (fd == stopfd) {
                running = false;
            } else if (fd == lfd) {
                for (;;) {
                    int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    nodelay(c);
                    if (backlog.size() <= static_cast<std::size_t>(c)) backlog.resize(static_cast<std::size_t>(c) + 1);
                    epoll_event ce{};
                    ce.events = EPOLLIN;
                    ce.data.fd = c;
                    ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
            } else if (evs[i].events & EPOLLOUT) {
                std::string& pend = backlog[static_cast<std::size_t>(fd)];
                ssize_t w = ::write(fd, pend.data(), pend.size());
                if (w < 0 && errno != EAGAIN) {
                    drop(fd);
                    continue;
                }
                if (w > 0) pend.erase(0, static_cast<std::size_t>(w));
                if (pend.empty()) {
                    epoll_event ce{};
                    ce.events = EPOLLIN;
                    ce.data.fd = fd;
                    ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ce);
                }
            } else {
                ssize_t k = ::read(fd, buf, sizeof buf);
                if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                    drop(fd);
                    continue;
                }
                if (k < 0) continue;
                ssize_t w = ::write(fd, buf, static_cast<std::size_t>(k));
                if (w < 0 && errno != EAGAIN) {
                    drop(fd);
                    continue;
                }
                if (w < 0) w = 0;
                if (w < k) {               // short write: keep the rest, wait for EPOLLOUT
                    backlog[static_cast<std::size_t>(fd)].assign(buf + w, static_cast<std::size_t>(k - w));
                    epoll_event ce{};
                    ce.events = EPOLLOUT;
                    ce.data.fd = fd;
                    ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ce);
                }
            }
        }
    }
    for (std::size_t fd = 0; fd < backlog.size(); ++fd) {
        // connections still open at shutdown (the client closed its ends)
        epoll_event dummy{};
        if (::epoll_ctl(ep, EPOLL_CTL_DEL, static_cast<int>(fd), &dummy) == 0 && static_cast<int>(fd) != lfd &&
            static_cast<int>(fd) != stopfd)
            ::close(static_cast<int>(fd));
    }
    ::close(ep);
}

void BM_EchoEpoll(benchmark::State& st) {
    int port = 0;
    int lfd = listen_loopback(port, true);
    int stopfd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lfd < 0 || stopfd < 0) {
        st.SkipWithError("listen on 127.0.0.1 / eventfd failed");
        if (lfd >= 0) ::close(lfd);
        if (stopfd >= 0) ::close(stopfd);
        return;
    }
    std::thread server(epoll_server, lfd, stopfd);
    run_client(st, port);
    std::uint64_t one = 1;
    ssize_t w = ::write(stopfd, &one, sizeof one);
    (void)w;
    server.join();
    ::close(lfd);
    ::close(stopfd);
}
BENCHMARK(BM_EchoEpoll)->Arg(1)->Arg(16)->UseRealTime();

} // namespace

COOP_BENCH_MAIN()
