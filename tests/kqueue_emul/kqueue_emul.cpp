// tests/kqueue_emul/kqueue_emul.cpp — kqueue()/kevent() over epoll and
// eventfd, for testing src/poller_kqueue.cpp on Linux. Scope and limits are
// listed in sys/event.h.
//
// Book-keeping per kqueue (keyed by its epoll fd): for each fd, which of the
// read and write filters exist, whether they are enabled, their udata and
// flags, and which file they were added for; for each EVFILT_USER
// identifier, an eventfd whose counter is the "triggered" state. A mutex
// guards it so NOTE_TRIGGER may come from any thread while another one
// waits; the wait itself runs unlocked.
//
// Events as BSD produces them. An epoll event only says that a knote may have
// fired: the knote goes on the queue once (several activations before it is
// retrieved make one event), and when kevent() hands it out the filter runs
// again on the fd's state at that moment (poll(2) with a zero timeout). A
// knote whose condition no longer holds is dropped, and EV_EOF is what holds
// now, as kqueue(2) describes for the BSD kernels. EV_DELETE and EV_DISABLE
// take a queued knote off the queue.
#include <sys/event.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

namespace {

constexpr std::uint64_t kUserBit = std::uint64_t{1} << 63;
// The largest timeout some macOS kernels accept (they validate it like an
// itimer); BSD accepts more. coop's backend must never ask for more.
constexpr time_t kMaxTimeoutSec = 100000000;

struct filter_reg {
    bool exists = false;
    bool enabled = false;
    bool oneshot = false;
    bool queued = false;          // on kq_state::pending, not yet retrieved
    void* udata = nullptr;
};

struct fd_reg {
    filter_reg rd, wr;
    bool clear = false;
    bool in_epoll = false;
    // The file the filters were added for: close() drops a BSD knote, so an
    // EV_ADD on a reused fd number must not find the old filters.
    dev_t dev = 0;
    ino_t ino = 0;
    bool socket = false;
    bool tcp = false;
};

struct user_reg {
    int efd = -1;
    bool enabled = true;
    bool clear = false;
    bool oneshot = false;
    bool queued = false;
    std::uint32_t fflags = 0;
    void* udata = nullptr;
};

struct queued_knote {
    std::uintptr_t ident;
    int filter;
};

struct kq_state {
    std::unordered_map<int, fd_reg> fds;
    std::map<std::uintptr_t, user_reg> users;
    std::deque<queued_knote> pending;    // activated knotes in activation order
};

std::mutex g_mu;
std::unordered_map<int, kq_state> g_kqs;

void drop_users(kq_state& s) {
    for (auto& u : s.users) ::close(u.second.efd);
    s.users.clear();
}

void unqueue(kq_state& s, std::uintptr_t ident, int filter) {
    s.pending.erase(std::remove_if(s.pending.begin(), s.pending.end(),
                                   [&](const queued_knote& q) { return q.ident == ident && q.filter == filter; }),
                    s.pending.end());
}

// Bring the epoll registration of fd in line with its filters.
int sync_fd(int ep, int fd, fd_reg& r) {
    std::uint32_t ev = 0;
    if (r.rd.exists && r.rd.enabled) ev |= EPOLLIN | EPOLLRDHUP;
    if (r.wr.exists && r.wr.enabled) ev |= EPOLLOUT;
    if (ev == 0) {
        if (r.in_epoll) {
            epoll_event e{};
            ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, &e);
            r.in_epoll = false;
        }
        return 0;
    }
    if (r.clear) ev |= EPOLLET;
    epoll_event e{};
    e.events = ev;
    e.data.u64 = static_cast<std::uint32_t>(fd);
    int op = r.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (::epoll_ctl(ep, op, fd, &e) != 0) {
        // The fd was closed and its number reused behind our back, or
        // another kqueue-level registration exists: try the other op.
        if (errno == ENOENT) op = EPOLL_CTL_ADD;
        else if (errno == EEXIST) op = EPOLL_CTL_MOD;
        else return errno;
        if (::epoll_ctl(ep, op, fd, &e) != 0) return errno;
    }
    r.in_epoll = true;
    return 0;
}

void describe_file(int fd, const struct stat& st, fd_reg& r) {
    r.dev = st.st_dev;
    r.ino = st.st_ino;
    r.socket = S_ISSOCK(st.st_mode);
    r.tcp = false;
    if (r.socket) {
        int proto = 0;
        socklen_t len = sizeof proto;
        r.tcp = ::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == IPPROTO_TCP;
    }
}

int apply_fd(int ep, kq_state& s, const struct kevent& ch) {
    const int fd = static_cast<int>(ch.ident);
    struct stat st;
    if (::fstat(fd, &st) != 0) return EBADF;
    auto it = s.fds.find(fd);
    if (it != s.fds.end() && (it->second.dev != st.st_dev || it->second.ino != st.st_ino)) {
        // Registered for a file that has been closed since: BSD dropped
        // those knotes at close(), and the kernel dropped the epoll
        // registration with the file. Forget them.
        unqueue(s, ch.ident, EVFILT_READ);
        unqueue(s, ch.ident, EVFILT_WRITE);
        it->second = fd_reg{};
        describe_file(fd, st, it->second);
    }
    if (ch.flags & EV_ADD) {
        if (it == s.fds.end()) {
            it = s.fds.emplace(fd, fd_reg{}).first;
            describe_file(fd, st, it->second);
        }
        fd_reg& r = it->second;
        filter_reg& f = ch.filter == EVFILT_READ ? r.rd : r.wr;
        const filter_reg& other = ch.filter == EVFILT_READ ? r.wr : r.rd;
        const bool clear = (ch.flags & EV_CLEAR) != 0;
        if (other.exists && r.clear != clear) return EINVAL;   // one epoll mode per fd
        if (!f.exists) f.enabled = true;
        f.exists = true;
        f.udata = ch.udata;
        f.oneshot = (ch.flags & EV_ONESHOT) != 0;
        r.clear = clear;
        if (ch.flags & EV_DISABLE) f.enabled = false;
        if (ch.flags & EV_ENABLE) f.enabled = true;
        if (!f.enabled && f.queued) {
            unqueue(s, ch.ident, ch.filter);
            f.queued = false;
        }
        return sync_fd(ep, fd, r);
    }
    if (it == s.fds.end()) return ENOENT;
    fd_reg& r = it->second;
    filter_reg& f = ch.filter == EVFILT_READ ? r.rd : r.wr;
    if (!f.exists) return ENOENT;
    if (ch.flags & (EV_DELETE | EV_DISABLE)) {
        if (f.queued) unqueue(s, ch.ident, ch.filter);
        f.queued = false;
    }
    if (ch.flags & EV_DELETE) {
        f = filter_reg{};
        int e = sync_fd(ep, fd, r);
        if (!r.rd.exists && !r.wr.exists) s.fds.erase(it);
        return e;
    }
    if (ch.flags & EV_DISABLE) f.enabled = false;
    if (ch.flags & EV_ENABLE) f.enabled = true;
    return sync_fd(ep, fd, r);
}

int apply_user(int ep, kq_state& s, const struct kevent& ch) {
    auto it = s.users.find(ch.ident);
    if (ch.flags & EV_ADD) {
        if (it == s.users.end()) {
            user_reg u;
            u.efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (u.efd < 0) return errno;
            epoll_event e{};
            e.events = EPOLLIN;
            e.data.u64 = kUserBit | ch.ident;
            if (::epoll_ctl(ep, EPOLL_CTL_ADD, u.efd, &e) != 0) {
                int err = errno;
                ::close(u.efd);
                return err;
            }
            it = s.users.emplace(ch.ident, u).first;
        }
        user_reg& u = it->second;
        u.udata = ch.udata;
        u.clear = (ch.flags & EV_CLEAR) != 0;
        u.oneshot = (ch.flags & EV_ONESHOT) != 0;
        u.enabled = !(ch.flags & EV_DISABLE);
    } else if (it == s.users.end()) {
        return ENOENT;
    }
    user_reg& u = it->second;
    if ((ch.flags & (EV_DELETE | EV_DISABLE)) && u.queued) {
        unqueue(s, ch.ident, EVFILT_USER);
        u.queued = false;
    }
    if (ch.flags & EV_DELETE) {
        ::close(u.efd);
        s.users.erase(it);
        return 0;
    }
    if (ch.flags & EV_DISABLE) u.enabled = false;
    if (ch.flags & EV_ENABLE) u.enabled = true;
    u.fflags |= ch.fflags & 0x00ffffffu;
    if (ch.fflags & NOTE_TRIGGER) {
        const std::uint64_t one = 1;
        if (::write(u.efd, &one, sizeof one) < 0 && errno != EAGAIN) return errno;
    }
    return 0;
}

struct kevent make_event(std::uintptr_t ident, int filter, unsigned flags, std::uint32_t fflags,
                         std::intptr_t data, void* udata) {
    struct kevent k;
    EV_SET(&k, ident, static_cast<int16_t>(filter), static_cast<uint16_t>(flags), fflags, data, udata);
    return k;
}

// Queue the knotes one epoll event may have activated (once each).
void activate(kq_state& s, const epoll_event& e) {
    if (e.data.u64 & kUserBit) {
        const std::uintptr_t ident = static_cast<std::uintptr_t>(e.data.u64 & ~kUserBit);
        auto it = s.users.find(ident);
        if (it == s.users.end() || !it->second.enabled || it->second.queued) return;
        it->second.queued = true;
        s.pending.push_back({ident, EVFILT_USER});
        return;
    }
    const int fd = static_cast<int>(e.data.u64);
    auto it = s.fds.find(fd);
    if (it == s.fds.end()) return;
    fd_reg& r = it->second;
    // One epoll registration carries both directions, so an edge in one
    // also activates the other filter when it is ready (a spurious event
    // for that filter, which BSD would not produce).
    if (r.rd.exists && r.rd.enabled && !r.rd.queued &&
        (e.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        r.rd.queued = true;
        s.pending.push_back({static_cast<std::uintptr_t>(fd), EVFILT_READ});
    }
    if (r.wr.exists && r.wr.enabled && !r.wr.queued && (e.events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
        r.wr.queued = true;
        s.pending.push_back({static_cast<std::uintptr_t>(fd), EVFILT_WRITE});
    }
}

// This TCP socket has sent its FIN (shutdown(SHUT_WR) or close of the
// write side): BSD marks it "can't send more" and reports EV_EOF on the
// write filter, while reads go on. Linux poll(2) only reports POLLHUP once
// both directions are shut, so the state machine tells.
bool tcp_sent_fin(int fd) {
    tcp_info ti{};
    socklen_t len = sizeof ti;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
    switch (ti.tcpi_state) {
    case TCP_FIN_WAIT1: case TCP_FIN_WAIT2: case TCP_TIME_WAIT: case TCP_CLOSING: case TCP_LAST_ACK:
        return true;
    default:
        return false;
    }
}

// Run the filter of a queued fd knote on the fd's present state; true and
// the event if it fires. Follows the BSD socket and pipe filters:
//   read   fires on data, on EOF (the read side shut: peer's FIN, reset,
//          shutdown(SHUT_RD); a pipe without writers) with EV_EOF, and on a
//          pending socket error without EV_EOF; data = bytes readable
//   write  fires on buffer space, on EV_EOF (the write side shut: own FIN,
//          reset; a pipe without readers), and on a pending socket error
// A pending socket error is left pending for getsockopt(SO_ERROR), as the
// BSD kernels do; fflags stays 0 because Linux cannot read the error
// without clearing it (BSD copies it into fflags).
bool run_fd_filter(int fd, int filter, fd_reg& r, struct kevent& out) {
    filter_reg& f = filter == EVFILT_READ ? r.rd : r.wr;
    struct stat st;
    if (::fstat(fd, &st) != 0 || st.st_dev != r.dev || st.st_ino != r.ino) return false;   // closed
    pollfd p{fd, static_cast<short>(filter == EVFILT_READ ? (POLLIN | POLLRDHUP) : POLLOUT), 0};
    if (::poll(&p, 1, 0) <= 0 || (p.revents & POLLNVAL)) return false;
    unsigned flags = (r.clear ? EV_CLEAR : 0) | (f.oneshot ? EV_ONESHOT : 0);
    std::intptr_t data = 0;
    if (filter == EVFILT_READ) {
        if (!(p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))) return false;
        if (p.revents & (POLLRDHUP | POLLHUP)) flags |= EV_EOF;
        int avail = 0;
        if (::ioctl(fd, FIONREAD, &avail) == 0) data = avail;
    } else {
        if (!(p.revents & (POLLOUT | POLLHUP | POLLERR))) return false;
        if ((p.revents & POLLHUP) || (!r.socket && (p.revents & POLLERR)) || (r.tcp && tcp_sent_fin(fd)))
            flags |= EV_EOF;
    }
    out = make_event(static_cast<std::uintptr_t>(fd), filter, flags, 0, data, f.udata);
    return true;
}

// Hand out queued knotes whose filters still fire, up to nevents.
int retrieve(int ep, kq_state& s, struct kevent* eventlist, int out, int nevents) {
    while (out < nevents && !s.pending.empty()) {
        const queued_knote q = s.pending.front();
        s.pending.pop_front();
        if (q.filter == EVFILT_USER) {
            auto it = s.users.find(q.ident);
            if (it == s.users.end()) continue;
            user_reg& u = it->second;
            u.queued = false;
            if (!u.enabled) continue;
            std::uint64_t v = 0;
            if (u.clear || u.oneshot) {
                // Retrieval resets a cleared event: the counter goes to 0.
                if (::read(u.efd, &v, sizeof v) != sizeof v) continue;   // not triggered (any more)
            } else {
                pollfd p{u.efd, POLLIN, 0};
                if (::poll(&p, 1, 0) <= 0) continue;
            }
            unsigned flags = (u.clear ? EV_CLEAR : 0) | (u.oneshot ? EV_ONESHOT : 0);
            eventlist[out++] = make_event(q.ident, EVFILT_USER, flags, u.fflags, 0, u.udata);
            if (u.clear || u.oneshot) u.fflags = 0;
            if (u.oneshot) {
                ::close(u.efd);
                s.users.erase(it);
            }
            continue;
        }
        const int fd = static_cast<int>(q.ident);
        auto it = s.fds.find(fd);
        if (it == s.fds.end()) continue;
        fd_reg& r = it->second;
        filter_reg& f = q.filter == EVFILT_READ ? r.rd : r.wr;
        f.queued = false;
        if (!f.exists || !f.enabled) continue;
        if (!run_fd_filter(fd, q.filter, r, eventlist[out])) continue;
        ++out;
        if (f.oneshot) {
            f = filter_reg{};
            sync_fd(ep, fd, r);
            if (!r.rd.exists && !r.wr.exists) s.fds.erase(it);
        }
    }
    return out;
}

std::int64_t now_ns() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

} // namespace

extern "C" int kqueue(void) {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return -1;
    std::lock_guard<std::mutex> lk(g_mu);
    kq_state& s = g_kqs[ep];      // a number reused after close(kq): start afresh
    drop_users(s);
    s = kq_state{};
    return ep;
}

extern "C" int kevent(int kq, const struct kevent* changelist, int nchanges,
                      struct kevent* eventlist, int nevents, const struct timespec* timeout) {
    if (nchanges < 0 || nevents < 0) {
        errno = EINVAL;
        return -1;
    }
    int out = 0;
    {
        std::lock_guard<std::mutex> lk(g_mu);
        auto it = g_kqs.find(kq);
        if (it == g_kqs.end()) {
            errno = EBADF;
            return -1;
        }
        kq_state& s = it->second;
        for (int i = 0; i < nchanges; ++i) {
            const struct kevent& ch = changelist[i];
            int err;
            if (ch.filter == EVFILT_READ || ch.filter == EVFILT_WRITE)
                err = apply_fd(kq, s, ch);
            else if (ch.filter == EVFILT_USER)
                err = apply_user(kq, s, ch);
            else
                err = EINVAL;
            if (err == 0 && !(ch.flags & EV_RECEIPT)) continue;
            // A failed change, or any change with EV_RECEIPT, is answered in
            // the event list. Without room for the answer the call ends
            // here, as on BSD: with the change's error, or 0 for a receipt
            // of success; the remaining changes are not applied.
            if (out == nevents) {
                if (err == 0) return out;
                errno = err;
                return -1;
            }
            struct kevent r = ch;
            r.flags = EV_ERROR;
            r.data = err;
            eventlist[out++] = r;
        }
        // Answers to changes end the call at once, without waiting.
        if (out > 0 || nevents == 0) return out;
        if (timeout && (timeout->tv_sec < 0 || timeout->tv_sec > kMaxTimeoutSec || timeout->tv_nsec < 0 ||
                        timeout->tv_nsec >= 1000000000)) {
            errno = EINVAL;
            return -1;
        }
        out = retrieve(kq, s, eventlist, out, nevents);
        if (out > 0) return out;
    }

    const std::int64_t deadline =
        timeout ? now_ns() + std::int64_t{timeout->tv_sec} * 1000000000 + timeout->tv_nsec : -1;
    epoll_event evs[64];
    for (;;) {
        int n;
        if (!timeout) {
            n = ::epoll_wait(kq, evs, 64, -1);
        } else {
            const std::int64_t left = deadline - now_ns();
            if (left > 0) {
                // ppoll's timespec keeps sub-millisecond precision; epoll_wait's
                // int milliseconds would not.
                pollfd p{kq, POLLIN, 0};
                timespec ts{static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
                n = ::ppoll(&p, 1, &ts, nullptr);
                if (n < 0) return -1;                 // EINTR included, as kevent does
                if (n == 0) return 0;                 // timed out
            }
            n = ::epoll_wait(kq, evs, 64, 0);
        }
        if (n < 0) return -1;
        std::lock_guard<std::mutex> lk(g_mu);
        auto it = g_kqs.find(kq);
        if (it == g_kqs.end()) {
            errno = EBADF;
            return -1;
        }
        kq_state& s = it->second;
        for (int i = 0; i < n; ++i) activate(s, evs[i]);
        out = retrieve(kq, s, eventlist, 0, nevents);
        if (out > 0) return out;
        if (timeout && deadline - now_ns() <= 0) return 0;
        // nothing fired after all (stale, disabled, or no longer true): keep waiting
    }
}
