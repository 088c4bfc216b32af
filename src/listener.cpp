// src/listener.cpp — coop::listener: listening sockets, one accepting task
// per accepting reactor, and the hand-off of round-robin connections.
#include "coop/listener.hpp"

#include "coop/io.hpp"
#include "coop/reactor.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <system_error>
#include <vector>

namespace coop {

struct listener::state {
    runtime* rt = nullptr;
    std::function<void(int)> handler;
    accept_mode mode = accept_mode::round_robin;
    std::string host;
    std::uint16_t port = 0;
    std::vector<std::atomic<std::uint64_t>> counts;   // connections per reactor (statistics: relaxed)
    std::atomic<bool> closed{false};                   // acquire/release: the sockets are under mu anyway
    std::atomic<std::uint64_t> next{0};                // round robin: the next reactor (relaxed)
    std::mutex mu;
    std::vector<int> fds;          // guarded by mu: listening socket per reactor, -1 where none

    explicit state(std::size_t n) : counts(n), fds(n, -1) {}
    ~state() {                     // sockets whose accepting task never ran or ended early
        for (int fd : fds)
            if (fd >= 0) ::close(fd);
    }
    // On reactor i's thread, when its accepting task ends.
    void release(std::size_t i) noexcept {
        int fd;
        {
            std::lock_guard<std::mutex> lk(mu);
            fd = fds[i];
            fds[i] = -1;
        }
        if (fd >= 0) coop::close(fd);
    }
};

namespace {

// A socket bound to (host, port) and listening. Throws std::system_error.
int open_listener(const std::string& host, std::uint16_t port, int backlog, bool reuseport) {
    sockaddr_storage ss{};
    socklen_t len;
    int family;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        family = v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof *v4;
    } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        family = v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof *v6;
    } else {
        throw std::system_error(EINVAL, std::generic_category(),
                                "coop::listener: not a numeric IPv4 or IPv6 address: " + host);
    }
    const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "coop::listener: socket");
    const int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#if defined(SO_REUSEPORT)
    if (reuseport && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "coop::listener: SO_REUSEPORT");
    }
#else
    (void)reuseport;
#endif
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, backlog) != 0) {
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "coop::listener: bind/listen " + host);
    }
    return fd;
}

std::uint16_t bound_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

// The accepting task of reactor i, listening on fd.
void accept_loop(std::shared_ptr<listener::state> s, std::size_t i, int fd) {
    const std::size_t n = s->counts.size();
    while (!s->closed.load(std::memory_order_acquire)) {
        io::accept_result a = io::accept(fd);
        if (a.error) {
            if (s->closed.load(std::memory_order_acquire) || a.error == std::errc::bad_file_descriptor ||
                a.error == std::errc::operation_canceled)
                break;
            // EMFILE, ENFILE, ENOBUFS...: the connection waits in the backlog;
            // try again after a pause rather than spinning on the error.
            coop::sleep_for(std::chrono::milliseconds(10));
            continue;
        }
        const int one = 1;
        (void)::setsockopt(a.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::size_t to = i;
        if (s->mode == accept_mode::round_robin) to = s->next.fetch_add(1, std::memory_order_relaxed) % n;
        s->counts[to].fetch_add(1, std::memory_order_relaxed);
        const int c = a.fd;
        if (to == i)
            this_reactor().spawn([s, c] { s->handler(c); });
        else
            s->rt->post(to, [s, c] { s->handler(c); });
    }
    s->release(i);
}

} // namespace

listener::listener(runtime& rt, listen_options o, std::function<void(int fd)> handler)
    : s_(std::make_shared<state>(rt.size())) {
    s_->rt = &rt;
    s_->handler = std::move(handler);
    s_->host = o.host;
    s_->mode = o.mode == accept_mode::automatic ? accept_mode::round_robin : o.mode;
#if !defined(SO_REUSEPORT)
    if (s_->mode == accept_mode::reuseport) s_->mode = accept_mode::round_robin;
#endif
    const bool each = s_->mode == accept_mode::reuseport;
    const std::size_t n = each ? rt.size() : 1;
    std::uint16_t port = o.port;
    for (std::size_t i = 0; i < n; ++i) {
        const int fd = open_listener(o.host, port, o.backlog, each);   // may throw: the state closes the rest
        {
            std::lock_guard<std::mutex> lk(s_->mu);
            s_->fds[i] = fd;
        }
        if (i == 0) port = bound_port(fd);                             // the others bind the same port
    }
    s_->port = port;
    for (std::size_t i = 0; i < n; ++i) {
        const int fd = s_->fds[i];
        rt.spawn_on(i, [s = s_, i, fd] { accept_loop(s, i, fd); });
    }
}

listener::~listener() { close(); }

std::uint16_t listener::port() const noexcept { return s_->port; }
const std::string& listener::host() const noexcept { return s_->host; }
accept_mode listener::mode() const noexcept { return s_->mode; }

std::uint64_t listener::accepted(std::size_t i) const noexcept {
    return i < s_->counts.size() ? s_->counts[i].load(std::memory_order_relaxed) : 0;
}

void listener::close() noexcept {
    if (s_->closed.exchange(true, std::memory_order_acq_rel)) return;
    // Wake each accepting task: shutdown() makes a listening socket report
    // hang-up and accept() fail (Linux); where it does not, close it on its
    // reactor, which wakes the accept with EBADF.
    std::lock_guard<std::mutex> lk(s_->mu);
    for (std::size_t i = 0; i < s_->fds.size(); ++i) {
        const int fd = s_->fds[i];
        if (fd < 0) continue;
        if (::shutdown(fd, SHUT_RDWR) != 0) {
            try {
                s_->rt->post(i, [s = s_, i] { s->release(i); });
            } catch (...) {
                // no memory for the post: the socket closes with the state
            }
        }
    }
}

} // namespace coop
