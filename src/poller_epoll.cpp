// src/poller_epoll.cpp — the epoll backend of src/poller.hpp (readiness model;
// Linux, where io_uring is refused or COOP_POLLER=epoll).
//
// Wake-ups: an eventfd registered edge-triggered. Timeouts: epoll_pwait2's
// timespec (Linux 5.11+); where the kernel (or an emulator such as
// qemu-user) answers ENOSYS, a timerfd armed at the absolute deadline and
// registered like any fd, with epoll_wait blocking without a timeout.
#include "poller.hpp"

#include "clock.hpp"
#include "coop/detail/sanitizers.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace coop::detail {

namespace {
constexpr std::uint64_t kWakeToken = ~std::uint64_t{0};
constexpr std::uint64_t kTimerToken = ~std::uint64_t{0} - 1;
constexpr int kBatch = 256;    // events per wait
#if defined(COOP_TSAN)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
} // namespace

class epoll_poller final : public poller {
public:
    epoll_poller();
    ~epoll_poller() override;
    const char* name() const noexcept override { return "epoll"; }
    int add(int fd, std::uint64_t token) noexcept override;
    void remove(int fd) noexcept override;
    int wait(std::int64_t deadline_ns) noexcept override;
    bool event(int i, poll_event* out) noexcept override;
    void wake() noexcept override;

private:
    int ep = -1;
    int wake_fd = -1;
    int timer_fd = -1;                 // created on first use without epoll_pwait2
    std::int64_t timer_armed = -1;     // absolute deadline the timerfd is set to
    // ThreadSanitizer defers a signal that arrives during a system call it
    // does not intercept (epoll_pwait2 is made through syscall()) until the
    // call returns, so a signal handler's wake-up could wait for the next
    // timer. TSan builds therefore use the intercepted epoll_wait + timerfd.
    bool have_pwait2 = !kTsan;
    epoll_event events[kBatch];
};

epoll_poller::epoll_poller() {
    ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) throw std::system_error(errno, std::generic_category(), "coop::reactor: epoll_create1");
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) {
        int e = errno;
        ::close(ep);
        throw std::system_error(e, std::generic_category(), "coop::reactor: eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = kWakeToken;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
        int e = errno;
        ::close(wake_fd);
        ::close(ep);
        throw std::system_error(e, std::generic_category(), "coop::reactor: epoll_ctl");
    }
}

epoll_poller::~epoll_poller() {
    if (timer_fd >= 0) ::close(timer_fd);
    ::close(wake_fd);
    ::close(ep);
}

int epoll_poller::add(int fd, std::uint64_t token) noexcept {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = token;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
    if (errno == EEXIST && ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    return errno;
}

void epoll_poller::remove(int fd) noexcept {
    epoll_event ev{};
    (void)::epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev);
}

void epoll_poller::wake() noexcept {
    const std::uint64_t one = 1;
    // EAGAIN only if the counter is about to overflow: a wake-up is pending anyway.
    ssize_t r = ::write(wake_fd, &one, sizeof one);
    (void)r;
}

namespace {

// One epoll_pwait2 call: -1 with errno, or the count.
int call_pwait2(int ep, epoll_event* evs, int n, std::int64_t rel_ns) noexcept {
#if defined(SYS_epoll_pwait2)
    timespec ts = to_timespec(rel_ns);
    return static_cast<int>(::syscall(SYS_epoll_pwait2, ep, evs, n, &ts, nullptr, 0));
#else
    (void)ep; (void)evs; (void)n; (void)rel_ns;
    errno = ENOSYS;
    return -1;
#endif
}

} // namespace

int epoll_poller::wait(std::int64_t deadline_ns) noexcept {
    epoll_poller& s = *this;
    constexpr int max = kBatch;
    int n;
    for (;;) {
        if (deadline_ns == 0) {
            n = ::epoll_wait(s.ep, s.events, max, 0);
        } else if (deadline_ns == no_deadline_ns) {
            n = ::epoll_wait(s.ep, s.events, max, -1);
        } else {
            const std::int64_t now = monotonic_ns();
            const std::int64_t rel = deadline_ns > now ? deadline_ns - now : 0;
            n = -1;
            if (s.have_pwait2) {
                n = call_pwait2(s.ep, s.events, max, rel);
                if (n < 0 && errno == ENOSYS) s.have_pwait2 = false;
            }
            if (!s.have_pwait2) {
                if (rel == 0) {
                    n = ::epoll_wait(s.ep, s.events, max, 0);
                } else {
                    if (s.timer_fd < 0) {
                        s.timer_fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
                        if (s.timer_fd < 0) return -errno;
                        epoll_event ev{};
                        ev.events = EPOLLIN | EPOLLET;
                        ev.data.u64 = kTimerToken;
                        if (::epoll_ctl(s.ep, EPOLL_CTL_ADD, s.timer_fd, &ev) != 0) return -errno;
                    }
                    if (s.timer_armed != deadline_ns) {
                        itimerspec its{};
                        its.it_value = to_timespec(deadline_ns);
                        if (::timerfd_settime(s.timer_fd, TFD_TIMER_ABSTIME, &its, nullptr) != 0)
                            return -errno;
                        s.timer_armed = deadline_ns;
                    }
                    n = ::epoll_wait(s.ep, s.events, max, -1);
                }
            }
        }
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
        // a signal interrupted the wait: wait again for what remains
    }
}

bool epoll_poller::event(int i, poll_event* out) noexcept {
    epoll_poller& s = *this;
    const epoll_event& e = s.events[i];
    if (e.data.u64 == kWakeToken) {
        std::uint64_t v;
        ssize_t r = ::read(s.wake_fd, &v, sizeof v);   // consume: the eventfd is edge-registered
        (void)r;
        return false;
    }
    if (e.data.u64 == kTimerToken) {
        std::uint64_t v;
        ssize_t r = ::read(s.timer_fd, &v, sizeof v);
        (void)r;
        s.timer_armed = -1;    // expired: re-arm next time
        return false;
    }
    // An error or hang-up stops both directions: wake readers and writers.
    const bool both = (e.events & (EPOLLERR | EPOLLHUP)) != 0;
    out->what = poll_event::kind::ready;
    out->token = e.data.u64;
    out->readable = both || (e.events & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) != 0;
    out->writable = both || (e.events & EPOLLOUT) != 0;
    return true;
}

std::unique_ptr<poller> make_epoll_poller() { return std::make_unique<epoll_poller>(); }

} // namespace coop::detail
