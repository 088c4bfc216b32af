// src/poller_kqueue.cpp — the kqueue backend of src/poller.hpp (macOS, the
// BSDs; on Linux it builds against tests/kqueue_emul for `make test-kqueue`).
//
// Mirrors poller_epoll.cpp: an fd is registered once with EVFILT_READ and
// EVFILT_WRITE, both EV_CLEAR (edge-triggered); wake-ups are an EVFILT_USER
// event triggered with NOTE_TRIGGER; the timeout is kevent's timespec, so
// deadlines keep nanosecond resolution without a timer object.
#include "poller.hpp"

#include "clock.hpp"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coop::detail {

namespace {
constexpr std::uintptr_t kWakeIdent = 1;
constexpr int kBatch = 256;    // events per wait

// udata is a pointer on some systems and an integer on others.
template <class U>
U to_udata(std::uint64_t token) noexcept {
    if constexpr (std::is_pointer_v<U>)
        return reinterpret_cast<U>(static_cast<std::uintptr_t>(token));
    else
        return static_cast<U>(token);
}
template <class U>
std::uint64_t from_udata(U u) noexcept {
    if constexpr (std::is_pointer_v<U>)
        return reinterpret_cast<std::uintptr_t>(u);
    else
        return static_cast<std::uint64_t>(u);
}
using udata_t = decltype(std::declval<struct kevent>().udata);
} // namespace

struct poller::impl {
    int kq = -1;
    struct kevent events[kBatch];
};

poller::poller() : p_(new impl) {
    p_->kq = ::kqueue();
    if (p_->kq < 0) throw std::system_error(errno, std::generic_category(), "coop::reactor: kqueue");
    struct kevent ch;
    EV_SET(&ch, kWakeIdent, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, to_udata<udata_t>(0));
    if (::kevent(p_->kq, &ch, 1, nullptr, 0, nullptr) != 0) {
        int e = errno;
        ::close(p_->kq);
        throw std::system_error(e, std::generic_category(), "coop::reactor: kevent(EVFILT_USER)");
    }
}

poller::~poller() { ::close(p_->kq); }

const char* poller::backend() noexcept { return "kqueue"; }

int poller::add(int fd, std::uint64_t token) noexcept {
    struct kevent ch[2];
    EV_SET(&ch[0], fd, EVFILT_READ, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, to_udata<udata_t>(token));
    EV_SET(&ch[1], fd, EVFILT_WRITE, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, to_udata<udata_t>(token));
    // EV_RECEIPT: each change answers with an EV_ERROR entry (data 0 on
    // success) and kevent returns at once instead of waiting for events.
    struct kevent res[2];
    const timespec zero{};
    int n = ::kevent(p_->kq, ch, 2, res, 2, &zero);
    if (n < 0) return errno;
    for (int i = 0; i < n; ++i)
        if ((res[i].flags & EV_ERROR) && res[i].data != 0) {
            int e = static_cast<int>(res[i].data);
            remove(fd);
            return e;
        }
    return 0;
}

void poller::remove(int fd) noexcept {
    struct kevent ch[2];
    EV_SET(&ch[0], fd, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, 0, to_udata<udata_t>(0));
    EV_SET(&ch[1], fd, EVFILT_WRITE, EV_DELETE | EV_RECEIPT, 0, 0, to_udata<udata_t>(0));
    struct kevent res[2];
    const timespec zero{};
    // Receipts carry per-change errors (ENOENT, EBADF for a closed fd): ignored.
    (void)::kevent(p_->kq, ch, 2, res, 2, &zero);
}

void poller::wake() noexcept {
    struct kevent ch;
    EV_SET(&ch, kWakeIdent, EVFILT_USER, 0, NOTE_TRIGGER, 0, to_udata<udata_t>(0));
    (void)::kevent(p_->kq, &ch, 1, nullptr, 0, nullptr);
}

int poller::wait(std::int64_t deadline_ns) noexcept {
    impl& s = *p_;
    for (;;) {
        timespec ts{};
        const timespec* tp = nullptr;
        if (deadline_ns != no_deadline_ns) {
            std::int64_t rel = 0;
            if (deadline_ns != 0) {
                const std::int64_t now = monotonic_ns();
                rel = deadline_ns > now ? deadline_ns - now : 0;
            }
            ts = to_timespec(rel);
            tp = &ts;
        }
        const int n = ::kevent(s.kq, nullptr, 0, s.events, kBatch, tp);
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
        // a signal interrupted the wait: wait again for what remains
    }
}

bool poller::event(int i, poll_event* out) noexcept {
    const struct kevent& e = p_->events[i];
    if (e.filter == EVFILT_USER) return false;     // wake-up (EV_CLEAR resets it)
    const bool err = (e.flags & EV_ERROR) != 0;
    // EOF on the write side means the peer is gone: both directions.
    const bool both = err || (e.filter == EVFILT_WRITE && (e.flags & EV_EOF));
    out->token = from_udata(e.udata);
    out->readable = both || e.filter == EVFILT_READ;
    out->writable = both || e.filter == EVFILT_WRITE;
    return true;
}

} // namespace coop::detail
