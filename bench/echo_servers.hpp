// bench/echo_servers.hpp — the echo servers the echo benchmarks compare,
// and the client that drives them. Shared by bench/echo_bench.cpp (servers
// on a thread, the benchmark thread as the client) and tools/echo_load.cpp
// (server or client as a process of its own).
//
// The servers do the same work the fast way for their model:
//   coop    a task per connection: read up to 16 KiB, write it all back
//           (coop::io: on io_uring through the ring, on epoll trying the
//           system call and parking on EAGAIN);
//   libuv   one 16 KiB read buffer for the whole loop (alloc_cb hands out the
//           same buffer), uv_try_write first, a queued uv_write (with a copy
//           of the rest) only when the socket did not take everything;
//   epoll   level-triggered epoll_wait, one 16 KiB buffer, write() straight
//           back, EPOLLOUT and a per-connection backlog only on a short write.
// The client holds C connections to 127.0.0.1, TCP_NODELAY on both ends.
// One round writes a 64-byte message on every connection, then reads every
// echo back in full and checks it: C message round trips.
#ifndef COOP_BENCH_ECHO_SERVERS_HPP
#define COOP_BENCH_ECHO_SERVERS_HPP

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <coop/io.hpp>
#include <coop/reactor.hpp>

#if defined(COOP_BENCH_HAVE_LIBUV) && __has_include(<uv.h>)
#  include <uv.h>
#  define COOP_BENCH_UV 1
#else
#  define COOP_BENCH_UV 0
#endif

namespace echo {

constexpr std::size_t kMsg = 64;
constexpr std::size_t kBuf = 16 * 1024;

inline void nodelay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A listening socket on 127.0.0.1 (port 0: a kernel-chosen one, written back).
inline int listen_loopback(int& port, bool nonblocking) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 1024) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        return -1;
    }
    port = ntohs(a.sin_port);
    return fd;
}

// The CPUs this thread may run on.
inline std::vector<int> allowed_cpus() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

// Pin the calling thread to one CPU, or (cpus) to a set; false if refused.
inline bool pin_to(const std::vector<int>& cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) CPU_SET(c, &set);
    return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

// ------------------------------------------------------------ client
// Open `conns` blocking connections to 127.0.0.1:port; false on failure.
inline bool client_connect(int port, int conns, std::vector<int>& fds) {
    for (int i = 0; i < conns; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            if (fd >= 0) ::close(fd);
            return false;
        }
        nodelay(fd);
        fds.push_back(fd);
    }
    return true;
}

// One round: message n on every connection, every echo read back and
// checked. False when an echo is wrong or a connection failed.
inline bool client_round(const std::vector<int>& fds, std::uint64_t n) {
    char out[kMsg], in[kMsg];
    std::memset(out, 'x', sizeof out);
    std::memcpy(out, &n, sizeof n);       // a different message every time
    for (int fd : fds)
        if (::write(fd, out, kMsg) != static_cast<ssize_t>(kMsg)) return false;
    for (int fd : fds) {
        std::size_t got = 0;
        while (got < kMsg) {
            ssize_t k = ::read(fd, in + got, kMsg - got);
            if (k <= 0) {
                if (k < 0 && errno == EINTR) continue;
                return false;
            }
            got += static_cast<std::size_t>(k);
        }
        if (std::memcmp(in, out, kMsg) != 0) return false;
    }
    return true;
}

// ------------------------------------------------------------ coop server
// What a coop user writes: one task per connection. Spawns the acceptor on
// r; closing lfd (coop::close, on r's thread) ends it.
inline void coop_serve(coop::reactor& r, int lfd) {
    r.spawn([&r, lfd] {
        for (;;) {
            coop::io::accept_result a = coop::io::accept(lfd);
            if (a.error) break;        // the listener was closed: shut down
            const int c = a.fd;
            nodelay(c);
            r.spawn([c] {
                char buf[kBuf];
                for (;;) {
                    coop::io::result k = coop::io::read(c, buf, sizeof buf);
                    if (k.error || k.size == 0 || coop::io::write_all(c, buf, k.size).error) break;
                }
                coop::close(c);
            });
        }
    });
}

// ------------------------------------------------------------ libuv server
#if COOP_BENCH_UV
struct uv_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    char buf[kBuf];            // the one read buffer of the loop
    int port = 0;
};

struct uv_pending_write {
    uv_write_t req;
    uv_buf_t b;
    char data[1];              // the bytes uv_try_write did not take
};

inline void uv_on_close_free(uv_handle_t* h) { std::free(h); }

inline void uv_on_write(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<uv_pending_write*>(req);
    if (status < 0 && !uv_is_closing(reinterpret_cast<uv_handle_t*>(req->handle)))
        uv_close(reinterpret_cast<uv_handle_t*>(req->handle), uv_on_close_free);
    std::free(w);
}

inline void uv_on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* b) {
    auto* s = static_cast<uv_server*>(h->loop->data);
    *b = uv_buf_init(s->buf, sizeof s->buf);
}

inline void uv_on_read(uv_stream_t* c, ssize_t nread, const uv_buf_t* b) {
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

inline void uv_on_connection(uv_stream_t* l, int status) {
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

inline void uv_close_any(uv_handle_t* h, void*) {
    if (uv_is_closing(h)) return;
    auto* s = static_cast<uv_server*>(h->loop->data);
    if (h == reinterpret_cast<uv_handle_t*>(&s->listener) || h == reinterpret_cast<uv_handle_t*>(&s->stop))
        uv_close(h, nullptr);           // members of uv_server
    else
        uv_close(h, uv_on_close_free);  // connections
}

inline void uv_on_stop(uv_async_t* a) { uv_walk(a->loop, uv_close_any, nullptr); }

// A listening libuv server on 127.0.0.1:port (0: any; s->port says which),
// or null. Run it with uv_run(&s->loop, UV_RUN_DEFAULT) on one thread;
// uv_async_send(&s->stop) from any thread ends that; then uv_destroy().
inline uv_server* uv_create(int port) {
    auto* s = new uv_server;
    uv_loop_init(&s->loop);
    s->loop.data = s;
    uv_tcp_init(&s->loop, &s->listener);
    uv_async_init(&s->loop, &s->stop, uv_on_stop);
    sockaddr_in a{};
    uv_ip4_addr("127.0.0.1", port, &a);
    if (uv_tcp_bind(&s->listener, reinterpret_cast<const sockaddr*>(&a), 0) != 0 ||
        uv_listen(reinterpret_cast<uv_stream_t*>(&s->listener), 1024, uv_on_connection) != 0) {
        s->port = 0;
    } else {
        int len = sizeof a;
        uv_tcp_getsockname(&s->listener, reinterpret_cast<sockaddr*>(&a), &len);
        s->port = ntohs(a.sin_port);
    }
    return s;
}

inline void uv_destroy(uv_server* s) {
    uv_loop_close(&s->loop);
    delete s;
}
#endif

// ------------------------------------------------------------ raw epoll
// Serves lfd until stopfd (an eventfd) turns readable.
inline void epoll_serve(int lfd, int stopfd) {
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

} // namespace echo

#endif
