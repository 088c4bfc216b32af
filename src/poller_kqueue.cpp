// src/poller_kqueue.cpp — the kqueue backend of src/poller.hpp (macOS, the
// BSDs; on Linux it builds against tests/kqueue_emul, or against another
// kqueue implementation with `make test-kqueue KQUEUE=prefix`).
//
// Mirrors poller_epoll.cpp: an fd is registered once with EVFILT_READ and
// EVFILT_WRITE, both EV_CLEAR (edge-triggered); wake-ups are an EVFILT_USER
// event triggered with NOTE_TRIGGER; the timeout is kevent's timespec, so
// deadlines keep nanosecond resolution without a timer object.
//
// What it takes from kqueue(2), as the BSD kernels define it:
//  - A filter reports activity: with EV_CLEAR, each new arrival of data,
//    buffer space, EOF or error queues the knote again, and the filter runs
//    once more when the event is retrieved, so its flags are current then.
//    EV_EOF is reported with an activation like any other, not again and
//    again: enough, since every woken waiter retries its syscall.
//  - EV_EOF on EVFILT_READ: the read side is shut (peer's FIN, reset,
//    shutdown(SHUT_RD), a pipe without writers); reads will not block.
//    EV_EOF on EVFILT_WRITE: the write side is shut (a reset, a pipe
//    without readers, but also this fd's own shutdown(SHUT_WR)); writes
//    will not block, while reads may still wait for data. Each is mapped
//    to its own direction only: a reset or error shuts both sides, and then
//    both filters fire.
//  - A socket error is reported in fflags next to EV_EOF; coop does not
//    read it there. The kernels leave it pending, and the operation that
//    retries (the next read, write, or io::connect's getsockopt(SO_ERROR))
//    gets it.
//  - Events that do not fit in the event list stay queued for the next
//    kevent() call.
//  - EV_ERROR comes only as the answer to a change in the changelist;
//    EV_RECEIPT makes every change answer, and a call whose changes are
//    answered returns without waiting for events.
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
// The longest single wait. macOS's kevent fails with EINVAL for timeouts
// beyond what it accepts as an itimer (10^8 s); a longer deadline just
// takes several waits, as wait() may return 0 before the deadline.
constexpr std::int64_t kMaxWaitNs = std::int64_t{1000000} * 1000000000;

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
static_assert(sizeof(udata_t) >= sizeof(std::uint64_t), "kevent's udata must carry a 64-bit fd token");
} // namespace

class kqueue_poller final : public poller {
public:
    kqueue_poller();
    ~kqueue_poller() override;
    const char* name() const noexcept override { return "kqueue"; }
    int add(int fd, std::uint64_t token) noexcept override;
    void remove(int fd) noexcept override;
    int wait(std::int64_t deadline_ns) noexcept override;
    bool event(int i, poll_event* out) noexcept override;
    void wake() noexcept override;

private:
    int kq = -1;
    struct kevent events[kBatch];
};

kqueue_poller::kqueue_poller() {
    kq = ::kqueue();
    if (kq < 0) throw std::system_error(errno, std::generic_category(), "coop::reactor: kqueue");
    struct kevent ch;
    EV_SET(&ch, kWakeIdent, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, to_udata<udata_t>(0));
    if (::kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) {
        int e = errno;
        ::close(kq);
        throw std::system_error(e, std::generic_category(), "coop::reactor: kevent(EVFILT_USER)");
    }
}

kqueue_poller::~kqueue_poller() { ::close(kq); }

int kqueue_poller::add(int fd, std::uint64_t token) noexcept {
    struct kevent ch[2];
    EV_SET(&ch[0], fd, EVFILT_READ, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, to_udata<udata_t>(token));
    EV_SET(&ch[1], fd, EVFILT_WRITE, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, to_udata<udata_t>(token));
    // EV_RECEIPT: each change answers with an EV_ERROR entry (data 0 on
    // success) and kevent returns at once instead of waiting for events.
    struct kevent res[2];
    const timespec zero{};
    int n = ::kevent(kq, ch, 2, res, 2, &zero);
    if (n < 0) return errno;
    for (int i = 0; i < n; ++i)
        if ((res[i].flags & EV_ERROR) && res[i].data != 0) {
            int e = static_cast<int>(res[i].data);
            remove(fd);
            return e;
        }
    return 0;
}

void kqueue_poller::remove(int fd) noexcept {
    struct kevent ch[2];
    EV_SET(&ch[0], fd, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, 0, to_udata<udata_t>(0));
    EV_SET(&ch[1], fd, EVFILT_WRITE, EV_DELETE | EV_RECEIPT, 0, 0, to_udata<udata_t>(0));
    struct kevent res[2];
    const timespec zero{};
    // Receipts carry per-change errors (ENOENT, EBADF for a closed fd): ignored.
    (void)::kevent(kq, ch, 2, res, 2, &zero);
}

void kqueue_poller::wake() noexcept {
    struct kevent ch;
    EV_SET(&ch, kWakeIdent, EVFILT_USER, 0, NOTE_TRIGGER, 0, to_udata<udata_t>(0));
    (void)::kevent(kq, &ch, 1, nullptr, 0, nullptr);
}

int kqueue_poller::wait(std::int64_t deadline_ns) noexcept {
    kqueue_poller& s = *this;
    for (;;) {
        timespec ts{};
        const timespec* tp = nullptr;
        if (deadline_ns != no_deadline_ns) {
            std::int64_t rel = 0;
            if (deadline_ns != 0) {
                const std::int64_t now = monotonic_ns();
                rel = deadline_ns > now ? deadline_ns - now : 0;
                if (rel > kMaxWaitNs) rel = kMaxWaitNs;
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

bool kqueue_poller::event(int i, poll_event* out) noexcept {
    const struct kevent& e = events[i];
    if (e.filter == EVFILT_USER) return false;     // wake-up (EV_CLEAR resets it)
    out->what = poll_event::kind::ready;
    out->token = from_udata(e.udata);
    if (e.flags & EV_ERROR) {
        // Not an answer to a change (wait() passes none); should an
        // implementation report one anyway, every waiter retries its
        // syscall and meets the error itself.
        out->readable = out->writable = true;
    } else {
        // Each filter wakes its own direction: EV_EOF on the write filter
        // also follows this fd's own shutdown(SHUT_WR), which says nothing
        // about reads; a reset or an error fires both filters.
        out->readable = e.filter == EVFILT_READ;
        out->writable = e.filter == EVFILT_WRITE;
    }
    return true;
}

std::unique_ptr<poller> make_kqueue_poller() { return std::make_unique<kqueue_poller>(); }

} // namespace coop::detail
