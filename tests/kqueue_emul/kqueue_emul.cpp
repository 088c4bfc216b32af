// tests/kqueue_emul/kqueue_emul.cpp — kqueue()/kevent() over epoll and
// eventfd, for testing src/poller_kqueue.cpp on Linux. Scope and limits are
// listed in sys/event.h.
//
// Book-keeping per kqueue (keyed by its epoll fd): for each fd, which of the
// read and write filters exist, whether they are enabled, their udata and
// flags; for each EVFILT_USER identifier, an eventfd whose counter is the
// "triggered" state. A mutex guards it so NOTE_TRIGGER may come from any
// thread while another one waits; the wait itself runs unlocked.
#include <sys/event.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

namespace {

constexpr std::uint64_t kUserBit = std::uint64_t{1} << 63;

struct filter_reg {
    bool exists = false;
    bool enabled = false;
    bool oneshot = false;
    void* udata = nullptr;
};

struct fd_reg {
    filter_reg rd, wr;
    bool clear = false;
    bool in_epoll = false;
};

struct user_reg {
    int efd = -1;
    bool enabled = true;
    bool clear = false;
    bool oneshot = false;
    std::uint32_t fflags = 0;
    void* udata = nullptr;
};

struct kq_state {
    std::unordered_map<int, fd_reg> fds;
    std::map<std::uintptr_t, user_reg> users;
    std::deque<struct kevent> pending;   // produced but not yet returned
};

std::mutex g_mu;
std::unordered_map<int, kq_state> g_kqs;

void drop_users(kq_state& s) {
    for (auto& u : s.users) ::close(u.second.efd);
    s.users.clear();
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

int apply_fd(int ep, kq_state& s, const struct kevent& ch) {
    const int fd = static_cast<int>(ch.ident);
    if (::fcntl(fd, F_GETFD) < 0) return EBADF;
    auto it = s.fds.find(fd);
    if (ch.flags & EV_ADD) {
        fd_reg& r = s.fds[fd];
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
        return sync_fd(ep, fd, r);
    }
    if (it == s.fds.end()) return ENOENT;
    fd_reg& r = it->second;
    filter_reg& f = ch.filter == EVFILT_READ ? r.rd : r.wr;
    if (!f.exists) return ENOENT;
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
                         void* udata) {
    struct kevent k;
    EV_SET(&k, ident, static_cast<int16_t>(filter), static_cast<uint16_t>(flags), fflags, 0, udata);
    return k;
}

// Turn one epoll event into kevents appended to s.pending.
void translate(int ep, kq_state& s, const epoll_event& e) {
    if (e.data.u64 & kUserBit) {
        const std::uintptr_t ident = static_cast<std::uintptr_t>(e.data.u64 & ~kUserBit);
        auto it = s.users.find(ident);
        if (it == s.users.end() || !it->second.enabled) return;
        user_reg& u = it->second;
        unsigned flags = (u.clear ? EV_CLEAR : 0) | (u.oneshot ? EV_ONESHOT : 0);
        s.pending.push_back(make_event(ident, EVFILT_USER, flags, u.fflags, u.udata));
        if (u.clear || u.oneshot) {
            std::uint64_t v;
            ssize_t r = ::read(u.efd, &v, sizeof v);
            (void)r;
            u.fflags = 0;
        }
        if (u.oneshot) {
            ::close(u.efd);
            s.users.erase(it);
        }
        return;
    }
    const int fd = static_cast<int>(e.data.u64);
    auto it = s.fds.find(fd);
    if (it == s.fds.end()) return;
    fd_reg& r = it->second;
    const bool hup = (e.events & EPOLLHUP) != 0;
    const bool err = (e.events & EPOLLERR) != 0;
    bool changed = false;
    if (r.rd.exists && r.rd.enabled && (e.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        unsigned flags = (r.clear ? EV_CLEAR : 0);
        if (e.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) flags |= EV_EOF;
        s.pending.push_back(make_event(fd, EVFILT_READ, flags, 0, r.rd.udata));
        if (r.rd.oneshot) r.rd = filter_reg{}, changed = true;
    }
    if (r.wr.exists && r.wr.enabled && (e.events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
        unsigned flags = (r.clear ? EV_CLEAR : 0);
        if (hup || err) flags |= EV_EOF;
        s.pending.push_back(make_event(fd, EVFILT_WRITE, flags, 0, r.wr.udata));
        if (r.wr.oneshot) r.wr = filter_reg{}, changed = true;
    }
    if (changed) {
        sync_fd(ep, fd, r);
        if (!r.rd.exists && !r.wr.exists) s.fds.erase(it);
    }
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
            // Report in the event list when there is room, else fail the call.
            if (out < nevents) {
                struct kevent r = ch;
                r.flags = static_cast<uint16_t>(r.flags | EV_ERROR);
                r.data = err;
                eventlist[out++] = r;
            } else {
                errno = err;
                return -1;
            }
        }
        if (out > 0 || nevents == 0) return out;
        if (!s.pending.empty()) {
            while (out < nevents && !s.pending.empty()) {
                eventlist[out++] = s.pending.front();
                s.pending.pop_front();
            }
            return out;
        }
    }

    const std::int64_t deadline =
        timeout ? now_ns() + std::int64_t{timeout->tv_sec} * 1000000000 + timeout->tv_nsec : -1;
    epoll_event evs[64];
    const int max = nevents < 64 ? nevents : 64;
    for (;;) {
        int n;
        if (!timeout) {
            n = ::epoll_wait(kq, evs, max, -1);
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
            n = ::epoll_wait(kq, evs, max, 0);
        }
        if (n < 0) return -1;
        std::lock_guard<std::mutex> lk(g_mu);
        auto it = g_kqs.find(kq);
        if (it == g_kqs.end()) {
            errno = EBADF;
            return -1;
        }
        kq_state& s = it->second;
        for (int i = 0; i < n; ++i) translate(kq, s, evs[i]);
        while (out < nevents && !s.pending.empty()) {
            eventlist[out++] = s.pending.front();
            s.pending.pop_front();
        }
        if (out > 0) return out;
        if (timeout && deadline - now_ns() <= 0) return 0;
        // only filtered-out events (disabled, stale): keep waiting
    }
}
