// tests/reactor_test.cpp — the reactor: spawn/run/join, yield order,
// timers, deadlines, cancellation, fd waits (close-while-waiting, fd-number
// reuse, hang-up, several waiters), EINTR, fairness, post() from threads,
// stop() and teardown. Outcomes and ordering only, never speed.
#include <coop/channel.hpp>
#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include "sockets.hpp"
#include "test_env.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cfenv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

using coop_test::sock_pair;
using coop_test::fill;

const std::error_code kTimedOut = std::make_error_code(std::errc::timed_out);
const std::error_code kCanceled = std::make_error_code(std::errc::operation_canceled);
const std::error_code kBadFd = std::make_error_code(std::errc::bad_file_descriptor);

// A connected pair of non-blocking TCP sockets on 127.0.0.1.
struct tcp_pair {
    int fd[2] = {-1, -1};
    tcp_pair() {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0) return;
        if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(l, 1) == 0 &&
            ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
            fd[0] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd[0] >= 0 && ::connect(fd[0], reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
                fd[1] = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
        }
        ::close(l);
        for (int f : fd)
            if (f >= 0) coop::io::set_nonblocking(f);
    }
    ~tcp_pair() {
        for (int f : fd)
            if (f >= 0) coop::close(f);
    }
    bool ok() const { return fd[0] >= 0 && fd[1] >= 0; }
};

} // namespace

// ---------------------------------------------------------------- basics

TEST(Reactor, RunsTasksToCompletion) {
    coop::reactor r;
    int ran = 0;
    for (int i = 0; i < 10; ++i) r.spawn([&] { ++ran; });
    EXPECT_EQ(r.size(), 10u);
    r.run();
    EXPECT_EQ(ran, 10);
    EXPECT_EQ(r.size(), 0u);
}

TEST(Reactor, YieldIsRoundRobin) {
    coop::reactor r;
    std::string trace;
    for (char c : std::string("abc"))
        r.spawn([&, c] {
            for (int i = 0; i < 3; ++i) {
                trace += c;
                coop::yield();
            }
        });
    r.run();
    EXPECT_EQ(trace, "abcabcabc");
}

TEST(Reactor, TasksSpawnTasksAndJoin) {
    coop::reactor r;
    std::vector<int> order;
    r.spawn([&] {
        coop::task child = coop::this_reactor().spawn([&] {
            coop::sleep_for(2ms);
            order.push_back(1);
        });
        EXPECT_FALSE(child.done());
        EXPECT_FALSE(child.join());
        order.push_back(2);
        EXPECT_FALSE(child);     // joined: the handle is empty
    });
    r.run();
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(Reactor, JoinRethrowsTheTasksException) {
    coop::reactor r;
    bool caught = false;
    r.spawn([&] {
        coop::task t = coop::this_reactor().spawn([] { throw std::runtime_error("boom"); });
        try {
            t.join();
        } catch (const std::runtime_error& e) {
            caught = std::string(e.what()) == "boom";
        }
    });
    r.run();
    EXPECT_TRUE(caught);
}

TEST(Reactor, JoinFinishedTaskFromOutside) {
    coop::reactor r;
    coop::task t = r.spawn([] {});
    EXPECT_THROW(t.join(), std::logic_error);   // not finished, not in a task
    r.run();
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.join());
    EXPECT_THROW(t.join(), std::logic_error);   // empty handle
}

TEST(Reactor, DetachedTaskExceptionLeavesRun) {
    coop::reactor r;
    r.spawn([] { throw std::runtime_error("detached"); });
    bool after = false;
    r.spawn([&] { after = true; });
    EXPECT_THROW(r.run(), std::runtime_error);
    r.run();                                    // the reactor stays usable
    EXPECT_TRUE(after);
}

TEST(Reactor, MisuseOutsideATaskThrowsLogicError) {
    coop::reactor r;
    EXPECT_THROW(coop::yield(), std::logic_error);
    EXPECT_THROW(coop::sleep_for(1ms), std::logic_error);
    sock_pair sp;
    EXPECT_THROW(coop::wait_readable(sp.fd[0]), std::logic_error);
    char c;
    EXPECT_THROW(coop::io::read(sp.fd[0], &c, 1), std::logic_error);   // would have to park
    bool inner = false;
    r.spawn([&] {
        EXPECT_THROW(coop::this_reactor().run(), std::logic_error);
        inner = true;
    });
    r.run();
    EXPECT_TRUE(inner);
}

TEST(Reactor, SpawnOptionsReachTheCoroutine) {
    coop::reactor r;
    std::string name;
    int round_in_task = -1;
    const int outer = std::fegetround();
    coop::task t = r.spawn(
        [&] {
            name = std::string(coop::this_coroutine::name());
            std::fesetround(FE_UPWARD);
            coop::yield();
            round_in_task = std::fegetround();
        },
        {32 * 1024, "worker-7", true});
    r.spawn([&] { EXPECT_EQ(std::fegetround(), outer); });
    EXPECT_EQ(t.name(), "worker-7");
    r.run();
    EXPECT_EQ(name, "worker-7");
    EXPECT_EQ(round_in_task, FE_UPWARD);
    EXPECT_EQ(std::fegetround(), outer);
}

TEST(Reactor, StopReturnsAndTeardownCancelsTheTask) {
    bool ended = false;
    std::error_code last;
    int steps = 0;
    {
        coop::reactor r;
        r.spawn([&] {
            struct guard {
                bool* f;
                ~guard() { *f = true; }
            } g{&ended};
            for (;;) {
                ++steps;
                if (steps == 3) coop::this_reactor().stop();
                if ((last = coop::sleep_for(1ms))) break;   // teardown: ECANCELED
            }
        });
        r.run();
        EXPECT_EQ(steps, 3);
        EXPECT_EQ(r.size(), 1u);
        EXPECT_FALSE(ended);
    }
    EXPECT_TRUE(ended);
    EXPECT_EQ(last, std::errc::operation_canceled);
    EXPECT_EQ(steps, 3);
}

// ---------------------------------------------------------------- timers

TEST(ReactorTimers, FireInDeadlineOrderAndNeverEarly) {
    coop::reactor r;
    std::vector<int> order;
    clk::time_point start;
    coop::channel<int> gate;     // closed once every sleeper is parked on it
    // Far enough apart that even a sanitizer or emulator build registers all
    // eight timers before the earliest is due.
    const int delays_us[] = {240000, 40000, 160000, 20000, 80000, 20000, 120000, 10000};
    bool early = false;
    for (int i = 0; i < 8; ++i) {
        r.spawn([&, i] {
            int dummy;
            gate.recv(dummy);
            const auto until = start + std::chrono::microseconds(delays_us[i]);
            EXPECT_FALSE(coop::sleep_until(until));
            if (clk::now() < until) early = true;
            order.push_back(i);
        });
    }
    r.spawn([&] {
        start = clk::now();
        gate.close();
    });
    r.run();
    EXPECT_FALSE(early);
    // equal deadlines (3 and 5) keep spawn order
    EXPECT_EQ(order, (std::vector<int>{7, 3, 5, 1, 4, 6, 2, 0}));
}

TEST(ReactorTimers, SubMillisecondSleepsAreNotEarly) {
    coop::reactor r;
    r.spawn([] {
        for (int i = 0; i < 20; ++i) {
            const auto t0 = clk::now();
            EXPECT_FALSE(coop::sleep_for(std::chrono::microseconds(200)));
            EXPECT_GE(clk::now() - t0, std::chrono::microseconds(200));
        }
    });
    r.run();
}

// A deadline years away: the poller waits in pieces it can ask the kernel
// for (macOS's kevent refuses timeouts over 10^8 s), and the sleeper still
// wakes for what happens meanwhile.
TEST(ReactorTimers, DeadlineYearsAwayIsAccepted) {
    coop::reactor r;
    std::error_code slept;
    coop::task sleeper = r.spawn([&] { slept = coop::sleep_for(std::chrono::hours(24 * 365 * 10)); });
    std::thread t([&] {
        std::this_thread::sleep_for(50ms);   // let the reactor fall asleep on that deadline
        r.post([&] { sleeper.cancel(); });
    });
    r.run();
    t.join();
    EXPECT_EQ(slept, kCanceled);
}

TEST(ReactorTimers, PastDeadlineReturnsAtOnce) {
    coop::reactor r;
    r.spawn([] {
        EXPECT_FALSE(coop::sleep_until(clk::now() - 1s));
        EXPECT_FALSE(coop::sleep_for(0ms));
        sock_pair sp;
        EXPECT_EQ(coop::wait_readable(sp.fd[0], clk::now() - 1ms), kTimedOut);
    });
    r.run();
}

TEST(ReactorTimers, DeadlinesReturnTimedOut) {
    coop::reactor r;
    r.spawn([] {
        sock_pair sp;
        auto t0 = clk::now();
        EXPECT_EQ(coop::wait_readable(sp.fd[0], 20ms), kTimedOut);
        EXPECT_GE(clk::now() - t0, 20ms);
        char c;
        t0 = clk::now();
        coop::io::result res = coop::io::read(sp.fd[0], &c, 1, t0 + 15ms);
        EXPECT_EQ(res.error, kTimedOut);
        EXPECT_GE(clk::now() - t0, 15ms);
        fill(sp.fd[0]);
        EXPECT_EQ(coop::wait_writable(sp.fd[0], 5ms), kTimedOut);

        coop::task sleeper = coop::this_reactor().spawn([] { coop::sleep_for(1s); });
        EXPECT_EQ(sleeper.join(10ms), kTimedOut);
        sleeper.cancel();
        EXPECT_FALSE(sleeper.join());
    });
    r.run();
}

// ---------------------------------------------------------------- cancellation

TEST(ReactorCancel, WhileSleeping) {
    coop::reactor r;
    std::error_code got, later;
    coop::task t = r.spawn([&] {
        got = coop::sleep_for(10s);
        later = coop::sleep_for(1ms);           // sticky
    });
    r.spawn([&] {
        coop::sleep_for(1ms);
        t.cancel();
    });
    r.run();
    EXPECT_EQ(got, kCanceled);
    EXPECT_EQ(later, kCanceled);
}

TEST(ReactorCancel, WhileWaitingOnAnFd) {
    coop::reactor r;
    sock_pair sp;
    std::error_code rd, io;
    coop::task a = r.spawn([&] { rd = coop::wait_readable(sp.fd[0]); });
    coop::task b = r.spawn([&] {
        char c;
        io = coop::io::read(sp.fd[0], &c, 1).error;
    });
    r.spawn([&] {
        coop::yield();
        a.cancel();
        b.cancel();
    });
    r.run();
    EXPECT_EQ(rd, kCanceled);
    EXPECT_EQ(io, kCanceled);
}

TEST(ReactorCancel, WhileOnAChannel) {
    coop::reactor r;
    coop::channel<int> ch;          // rendezvous: both sides park
    coop::channel<int> full(1);
    std::error_code s, rv;
    coop::task a = r.spawn([&] {
        int v;
        rv = ch.recv(v);
    });
    coop::task b = r.spawn([&] {
        full.send(1);
        s = full.send(2);
    });
    r.spawn([&] {
        coop::yield();
        a.cancel();
        b.cancel();
    });
    r.run();
    EXPECT_EQ(rv, kCanceled);
    EXPECT_EQ(s, kCanceled);
    EXPECT_EQ(full.size(), 1u);
}

TEST(ReactorCancel, WhileJoining) {
    coop::reactor r;
    std::error_code j;
    coop::task sleeper = r.spawn([] { coop::sleep_for(30ms); });
    coop::task joiner = r.spawn([&] { j = sleeper.join(); });
    r.spawn([&] {
        coop::yield();
        joiner.cancel();
    });
    r.run();
    EXPECT_EQ(j, kCanceled);
    EXPECT_TRUE(sleeper.done());    // the joined task was not affected
}

// Teardown with a joiner parked on a task whose handle is gone: teardown
// cancels both, in either order of their slots; the joiner learns of the
// dropped handle and the joined task is freed exactly once (a second free
// used to crash under TSan).
TEST(ReactorJoin, DroppedHandleJoinedDuringTeardown) {
    int unwound = 0;
    struct counter {
        int* n;
        ~counter() { ++*n; }
    };
    for (int order = 0; order < 2; ++order) {
        coop::reactor r;
        auto joined = std::make_unique<coop::task>();
        coop::task joiner;
        auto spawn_joined = [&] {
            *joined = r.spawn([&] {
                counter c{&unwound};
                coop::sleep_for(1h);
            });
        };
        auto spawn_joiner = [&] {
            joiner = r.spawn([&] {
                counter c{&unwound};
                joined->join();
            });
        };
        if (order == 0) { spawn_joined(); spawn_joiner(); }
        else            { spawn_joiner(); spawn_joined(); }   // phase 2 meets the joiner first
        r.spawn([&] {
            coop::yield();
            joined.reset();
            coop::this_reactor().stop();
        });
        r.run();
    }
    EXPECT_EQ(unwound, 4);
}

TEST(ReactorCancel, BeforeStart) {
    coop::reactor r;
    std::error_code got;
    bool ran = false;
    coop::task t = r.spawn([&] {
        ran = true;
        got = coop::sleep_for(1ms);
    });
    t.cancel();
    r.run();
    EXPECT_TRUE(ran);
    EXPECT_EQ(got, kCanceled);
}

// ---------------------------------------------------------------- fds

TEST(ReactorFd, CloseWakesEveryWaiterWithEbadf) {
    coop::reactor r;
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    fill(fds[0]);
    std::error_code r1, r2, w1, io;
    r.spawn([&] { r1 = coop::wait_readable(fds[0]); });
    r.spawn([&] { r2 = coop::wait_readable(fds[0]); });
    r.spawn([&] { w1 = coop::wait_writable(fds[0]); });
    r.spawn([&] {
        char c;
        io = coop::io::read(fds[0], &c, 1).error;
    });
    r.spawn([&] {
        coop::yield();
        EXPECT_FALSE(coop::close(fds[0]));
    });
    r.run();
    EXPECT_EQ(r1, kBadFd);
    EXPECT_EQ(r2, kBadFd);
    EXPECT_EQ(w1, kBadFd);
    EXPECT_EQ(io, kBadFd);
    coop::close(fds[1]);
}

// The fd number is closed and reused while a task waited on it: the old
// waiter gets EBADF, not the new file's readiness, and events from the old
// registration never reach a waiter on the new file.
TEST(ReactorFd, ReusedFdNumberGetsNoStaleEvent) {
    coop::reactor r;
    int a[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a), 0);
    const int num = a[0];
    const int dup_of_old = ::dup(a[0]);      // keeps the old open file alive
    std::error_code old_waiter;
    std::error_code new_waiter = kTimedOut;
    int b[2] = {-1, -1};
    bool reused = false;
    r.spawn([&] { old_waiter = coop::wait_readable(num); });
    r.spawn([&] {
        coop::yield();
        coop::close(num);
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b), 0);
        reused = (b[0] == num || b[1] == num);
        const int new_fd = b[0] == num ? b[0] : b[1];
        const int new_peer = b[0] == num ? b[1] : b[0];
        coop::task w = coop::this_reactor().spawn([&, new_fd] {
            new_waiter = coop::wait_readable(new_fd, 50ms);
        });
        // Traffic on the old file: must not wake the waiter on the new one.
        ASSERT_EQ(::write(a[1], "x", 1), 1);
        coop::sleep_for(10ms);
        EXPECT_FALSE(w.done());
        ASSERT_EQ(::write(new_peer, "y", 1), 1);
        w.join();
        char c = 0;
        EXPECT_EQ(::read(new_fd, &c, 1), 1);
        EXPECT_EQ(c, 'y');
    });
    r.run();
    EXPECT_TRUE(reused);
    EXPECT_EQ(old_waiter, kBadFd);
    EXPECT_FALSE(new_waiter);
    ::close(dup_of_old);
    coop::close(a[1]);
    coop::close(b[0]);
    coop::close(b[1]);
}

TEST(ReactorFd, TwoWaitersOnTheSameFdAndDirectionBothWake) {
    coop::reactor r;
    sock_pair sp;
    int woke = 0;
    std::vector<char> got;
    for (int i = 0; i < 2; ++i)
        r.spawn([&] {
            EXPECT_FALSE(coop::wait_readable(sp.fd[0]));
            ++woke;
        });
    for (int i = 0; i < 2; ++i)
        r.spawn([&] {
            char c;
            coop::io::result res = coop::io::read(sp.fd[0], &c, 1);
            EXPECT_FALSE(res.error);
            got.push_back(c);
        });
    r.spawn([&] {
        coop::yield();
        ASSERT_EQ(::write(sp.fd[1], "a", 1), 1);
        coop::sleep_for(5ms);
        ASSERT_EQ(::write(sp.fd[1], "b", 1), 1);
    });
    r.run();
    EXPECT_EQ(woke, 2);
    EXPECT_EQ(got, (std::vector<char>{'a', 'b'}));
}

// A hang-up wakes a reader and a writer of the same fd, once: with the fd
// still registered and nobody waiting, the reactor does not spin on it.
TEST(ReactorFd, HangupWakesBothDirectionsWithoutSpinning) {
    coop::reactor r;
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    fill(fds[0]);
    coop::io::result rd, wr;
    r.spawn([&] {
        char c;
        rd = coop::io::read(fds[0], &c, 1);
    });
    r.spawn([&] {
        char buf[65536] = {};
        wr = coop::io::write_all(fds[0], buf, sizeof buf);
    });
    std::uint64_t polls_after_hup = 0, polls_later = 0;
    r.spawn([&] {
        coop::sleep_for(2ms);
        ::close(fds[1]);                    // peer goes away: HUP on fds[0]
        coop::sleep_for(2ms);
        polls_after_hup = coop::this_reactor().polls();
        coop::sleep_for(100ms);
        polls_later = coop::this_reactor().polls();
    });
    r.run();
    // EOF, or a reset since the peer closed with our data unread
    EXPECT_TRUE((!rd.error && rd.size == 0) || rd.error == std::errc::connection_reset) << rd.error.message();
    EXPECT_TRUE(wr.error == std::errc::broken_pipe || wr.error == std::errc::connection_reset) << wr.error.message();
    EXPECT_LE(polls_later - polls_after_hup, 3u);
    coop::close(fds[0]);
}

// Shutting down our own sending side leaves the receiving side open: the fd
// is not readable until the peer sends or closes. (kqueue reports EV_EOF on
// the write filter here; that must not count as a hang-up for readers.)
TEST(ReactorFd, OwnShutdownDoesNotMakeTheFdReadable) {
    coop::reactor r;
    tcp_pair tp;
    ASSERT_TRUE(tp.ok());
    std::error_code before_peer, after_peer, writable;
    std::string got;
    r.spawn([&] {
        ASSERT_EQ(::shutdown(tp.fd[0], SHUT_WR), 0);
        writable = coop::wait_writable(tp.fd[0], 5s);    // a write would fail at once
        before_peer = coop::wait_readable(tp.fd[0], 50ms);
        ASSERT_EQ(::write(tp.fd[1], "late", 4), 4);
        after_peer = coop::wait_readable(tp.fd[0], 5s);
        char buf[16];
        coop::io::result res = coop::io::read(tp.fd[0], buf, sizeof buf, 5s);
        ASSERT_FALSE(res.error) << res.error.message();
        got.assign(buf, res.size);
    });
    r.run();
    EXPECT_FALSE(writable) << writable.message();
    EXPECT_EQ(before_peer, kTimedOut);
    EXPECT_FALSE(after_peer) << after_peer.message();
    EXPECT_EQ(got, "late");
}

// More fds turn ready at once than one wait of the poller returns: the rest
// stay queued in the kernel for the next wait, and every reader wakes.
TEST(ReactorFd, MoreReadyFdsThanOneWaitReturnsAllWake) {
    constexpr int kPairs = 200;              // both filters of each: more events than a batch
    coop::reactor r;
    std::vector<sock_pair> pairs(kPairs);
    for (const sock_pair& p : pairs) ASSERT_GE(p.fd[0], 0);
    int got = 0;
    for (int i = 0; i < kPairs; ++i)
        r.spawn([&, i] {
            char c = 0;
            coop::io::result res = coop::io::read(pairs[i].fd[0], &c, 1, 10s);
            EXPECT_FALSE(res.error) << "reader " << i << ": " << res.error.message();
            if (res.size == 1 && c == static_cast<char>('a' + i % 26)) ++got;
        });
    r.spawn([&] {
        coop::yield();                       // every reader has parked
        for (int i = 0; i < kPairs; ++i) {
            const char c = static_cast<char>('a' + i % 26);
            ASSERT_EQ(::write(pairs[i].fd[1], &c, 1), 1);
        }
    });
    r.run();
    EXPECT_EQ(got, kPairs);
}

TEST(ReactorFd, InvalidFds) {
    coop::reactor r;
    r.spawn([] {
        EXPECT_EQ(coop::wait_readable(-1), kBadFd);
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        ::close(fds[0]);
        ::close(fds[1]);
        EXPECT_EQ(coop::wait_readable(fds[0], 10ms), kBadFd);
    });
    r.run();
}

TEST(ReactorFd, RegularFilesAreAlwaysReady) {
    coop::reactor r;
    r.spawn([] {
        int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        EXPECT_FALSE(coop::wait_readable(fd, 1s));
        coop::close(fd);
    });
    r.run();
}

// ---------------------------------------------------------------- signals, fairness, threads

namespace {
std::atomic<int> g_signals{0};
extern "C" void count_signal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }
} // namespace

// A signal handler installed without SA_RESTART interrupts the kernel wait
// with EINTR: sleeps still last their full time, I/O still completes.
TEST(Reactor, EintrDuringWaitsIsRetried) {
    struct sigaction sa{}, old{};
    sa.sa_handler = count_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;                       // no SA_RESTART
    ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
    g_signals = 0;

    coop::reactor r;
    sock_pair sp;
    const pthread_t self = ::pthread_self();
    std::atomic<bool> done{false};
    std::thread killer([&] {
        for (int i = 0; i < 400 && !done.load(); ++i) {
            ::pthread_kill(self, SIGUSR1);
            std::this_thread::sleep_for(2ms);
            if (i == 20) {
                ssize_t w = ::write(sp.fd[1], "z", 1);
                (void)w;
            }
        }
    });
    std::error_code slept;
    bool not_early = false;
    char got = 0;
    r.spawn([&] {
        const auto until = clk::now() + 80ms;
        slept = coop::sleep_until(until);
        not_early = clk::now() >= until;
    });
    r.spawn([&] {
        coop::io::result res = coop::io::read(sp.fd[0], &got, 1);
        EXPECT_FALSE(res.error);
    });
    r.run();
    done = true;
    killer.join();
    ::sigaction(SIGUSR1, &old, nullptr);
    EXPECT_FALSE(slept);
    EXPECT_TRUE(not_early);
    EXPECT_EQ(got, 'z');
    EXPECT_GT(g_signals.load(), 0);
}

// Busy yielders must not starve timers or I/O.
TEST(Reactor, YieldersDoNotStarveTimersOrIo) {
    coop::reactor r;
    bool timer_fired = false, io_done = false;
    long spins = 0;
    sock_pair sp;
    r.spawn([&] {
        while (!(timer_fired && io_done) && spins < 200000000) {
            ++spins;
            coop::yield();
        }
    });
    r.spawn([&] {
        while (!(timer_fired && io_done) && spins < 200000000) coop::yield();
    });
    r.spawn([&] {
        coop::sleep_for(5ms);
        timer_fired = true;
    });
    r.spawn([&] {
        char c;
        io_done = !coop::io::read(sp.fd[0], &c, 1).error;
    });
    std::thread writer([&] {
        std::this_thread::sleep_for(5ms);
        ssize_t w = ::write(sp.fd[1], "!", 1);
        (void)w;
    });
    r.run();
    writer.join();
    EXPECT_TRUE(timer_fired);
    EXPECT_TRUE(io_done);
    EXPECT_LT(spins, 200000000);
}

TEST(Reactor, PostFromOtherThreads) {
    coop::reactor r;
    constexpr int kThreads = 3, kPer = 300;
    coop::channel<int> ch(16);
    std::set<int> seen;
    r.spawn([&] {
        for (int i = 0; i < kThreads * kPer; ++i) {
            int v;
            ASSERT_FALSE(ch.recv(v));
            seen.insert(v);
        }
    });
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < kPer; ++i) {
                r.post([&ch, v = t * kPer + i] { ch.send(v); });
                if (i % 50 == 0) std::this_thread::sleep_for(1ms);   // let the reactor fall asleep
            }
        });
    r.run();
    for (auto& t : ts) t.join();
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kPer));
}

TEST(Reactor, StopFromAnotherThread) {
    coop::reactor r;
    coop::channel<int> never;
    r.spawn([&] {
        int v;
        never.recv(v);      // parks for good; only stop() ends run()
    });
    std::thread t([&] {
        std::this_thread::sleep_for(10ms);
        r.stop();
    });
    r.run();
    t.join();
    EXPECT_EQ(r.size(), 1u);
}

TEST(Reactor, TwoReactorsOnTwoThreadsPostToEachOther) {
    coop::reactor a;
    std::atomic<coop::reactor*> bp{nullptr};
    std::atomic<int> pings{0};
    coop::channel<int> a_done;
    std::thread tb([&] {
        coop::reactor b;
        coop::channel<int> quit;
        b.spawn([&] {
            int v;
            quit.recv(v);
        });
        b.post([&] { bp = &b; });
        b.spawn([&] {
            while (pings.load() < 100) coop::sleep_for(1ms);
            quit.close();
        });
        b.run();
    });
    a.spawn([&] {
        while (!bp.load()) coop::sleep_for(1ms);
        for (int i = 0; i < 100; ++i) {
            bp.load()->post([&] {
                pings.fetch_add(1);
                a.post([&] { a_done.send(1); });
            });
        }
        for (int i = 0; i < 100; ++i) {
            int v;
            ASSERT_FALSE(a_done.recv(v, 10s));
        }
    });
    a.run();
    tb.join();
    EXPECT_EQ(pings.load(), 100);
}

// Destroying a reactor unwinds tasks parked in every kind of wait, and a
// handle may outlive the reactor once that has happened.
TEST(Reactor, TeardownUnwindsParkedTasksAndOrphansHandles) {
    int unwound = 0;
    struct counter {
        int* n;
        ~counter() { ++*n; }
    };
    coop::task survivor;
    sock_pair sp;
    {
        coop::reactor r;
        coop::channel<int> ch;
        coop::task sleeper = r.spawn([&] {
            counter c{&unwound};
            coop::sleep_for(1h);
        });
        r.spawn([&] {
            counter c{&unwound};
            coop::wait_readable(sp.fd[0], 1h);
        });
        r.spawn([&] {
            counter c{&unwound};
            int v;
            ch.recv(v);
        });
        r.spawn([&] {
            counter c{&unwound};
            sleeper.join();
        });
        r.spawn([&] {
            counter c{&unwound};
            for (;;) coop::yield();
        });
        survivor = r.spawn([&] {
            counter c{&unwound};
            coop::sleep_for(1h);
        });
        bool late_ran = false;
        r.spawn([&] {
            coop::sleep_for(2ms);
            // queued, but run() returns before it gets to it
            coop::this_reactor().spawn([&] { late_ran = true; }, {16 * 1024, "never-started", false});
            coop::this_reactor().stop();
        });
        r.run();
        EXPECT_EQ(r.size(), 7u);
        EXPECT_FALSE(late_ran);
    }
    EXPECT_EQ(unwound, 6);
    EXPECT_TRUE(survivor.done());
    EXPECT_FALSE(survivor.join());
}

// ---------------------------------------------------------------- backends

#ifndef COOP_BIN_DIR
#  define COOP_BIN_DIR "build/x86_64/bin"
#endif

namespace {

// COOP_POLLER set to v (unset for null) for a scope; the old value comes back.
class poller_env {
public:
    explicit poller_env(const char* v) {
        if (const char* o = std::getenv("COOP_POLLER")) {
            had_ = true;
            old_ = o;
        }
        if (v) ::setenv("COOP_POLLER", v, 1); else ::unsetenv("COOP_POLLER");
    }
    ~poller_env() {
        if (had_) ::setenv("COOP_POLLER", old_.c_str(), 1); else ::unsetenv("COOP_POLLER");
    }

private:
    bool had_ = false;
    std::string old_;
};

// Output and status of tests/progs/backend_probe (under $COOP_RUN_PREFIX).
std::string run_backend_probe(const char* arg, int* status) {
    std::string cmd;
    if (const char* pre = std::getenv("COOP_RUN_PREFIX")) cmd = std::string(pre) + " ";
    cmd += std::string(COOP_BIN_DIR) + "/progs/backend_probe " + arg + " 2>&1";
    std::string out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) return out;
    char buf[512];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    *status = ::pclose(f);
    return out;
}

} // namespace

// Each reactor has its own backend: the build's first choice the kernel
// accepts, or the one COOP_POLLER names; the answer is per reactor.
TEST(ReactorBackend, EachReactorNamesItsBackendAndCoopPollerForcesOne) {
    std::string def;
    {
        poller_env none(nullptr);
        def = coop::reactor::default_backend();
        coop::reactor r;
        EXPECT_EQ(def, r.backend());
    }
    if (def == "kqueue") {
        poller_env e("epoll");
        EXPECT_THROW(coop::reactor r, std::invalid_argument);
        return;
    }
    ASSERT_TRUE(def == "io_uring" || def == "epoll") << def;
    bool uring = false;
    {
        poller_env e("io_uring");
        try {
            coop::reactor r;
            EXPECT_STREQ(r.backend(), "io_uring");
            uring = true;
        } catch (const std::system_error& x) {
            SCOPED_TRACE(x.what());
        }
    }
    EXPECT_EQ(uring, def == "io_uring") << "the default is io_uring exactly when the kernel grants it";
    {
        poller_env e("epoll");
        coop::reactor r;
        EXPECT_STREQ(r.backend(), "epoll");
        EXPECT_STREQ(coop::reactor::default_backend(), "epoll");
    }
    {
        poller_env e("kqueue");
        EXPECT_THROW(coop::reactor r, std::invalid_argument);
        poller_env f("io-uring");
        EXPECT_THROW(coop::reactor r, std::invalid_argument);
    }
}

// Two reactors of one thread on different backends: each does its I/O, and
// coop::close reaches both.
TEST(ReactorBackend, ReactorsOfOneThreadMayUseDifferentBackends) {
    std::string first;
    {
        poller_env none(nullptr);
        first = coop::reactor::default_backend();
    }
    if (first == "kqueue") GTEST_SKIP() << "a kqueue build has one backend";
    std::unique_ptr<coop::reactor> a, b;
    {
        poller_env e("epoll");
        a = std::make_unique<coop::reactor>();
    }
    {
        poller_env none(nullptr);
        b = std::make_unique<coop::reactor>();
    }
    EXPECT_STREQ(a->backend(), "epoll");
    EXPECT_EQ(first, b->backend());
    sock_pair sp;
    std::string got;
    std::error_code closed;
    a->spawn([&] { EXPECT_FALSE(coop::io::write_all(sp.fd[0], "across", 6).error); });
    a->run();
    b->spawn([&] {
        char buf[6];
        coop::io::result res = coop::io::read_exact(sp.fd[1], buf, 6, 5s);
        EXPECT_FALSE(res.error) << res.error.message();
        got.assign(buf, res.size);
        closed = coop::io::read(sp.fd[1], buf, 1, 20ms).error;
    });
    b->run();
    EXPECT_EQ(got, "across");
    EXPECT_EQ(closed, kTimedOut);
}

// A process that may not use io_uring (a seccomp policy such as container
// runtimes install) gets epoll without a word; forcing io_uring is refused.
TEST(ReactorBackend, AProcessThatMayNotUseIoUringFallsBackSilently) {
    std::string def;
    {
        poller_env none(nullptr);
        def = coop::reactor::default_backend();
    }
    int status = -1;
    const std::string out = run_backend_probe("--deny-io-uring", &status);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        GTEST_SKIP() << "no seccomp filters here, so io_uring cannot be denied: " << out;
    ASSERT_EQ(status, 0) << out;
    if (def == "kqueue") {
        EXPECT_NE(out.find("backend kqueue\n"), std::string::npos) << out;
    } else {
        EXPECT_NE(out.find("backend epoll\n"), std::string::npos) << out;
        EXPECT_NE(out.find("forced io_uring: refused\n"), std::string::npos) << out;
    }
    EXPECT_NE(out.find("io ok\n"), std::string::npos) << out;
    // The same program without the policy gets the default.
    const std::string free_out = run_backend_probe("", &status);
    ASSERT_EQ(status, 0) << free_out;
    EXPECT_NE(free_out.find("backend " + def + "\n"), std::string::npos) << free_out;
    EXPECT_NE(free_out.find("io ok\n"), std::string::npos) << free_out;
}

// ---------------------------------------------------------------- exception state

// Retry with backoff in two tasks: each sleeps inside its catch block while
// the other throws and catches, then rethrows with `throw;`. Each must see
// and rethrow its own exception.
TEST(ReactorExceptions, TasksRetryingWithBackoffRethrowTheirOwnException) {
    using coop_test::what_of;
    coop::reactor r;
    std::vector<std::string> wrong;
    int caught = 0;
    for (int id = 0; id < 2; ++id)
        r.spawn([&, id] {
            for (int attempt = 0; attempt < 3; ++attempt) {
                const std::string mine = "task " + std::to_string(id) + " attempt " + std::to_string(attempt);
                try {
                    try {
                        throw std::runtime_error(mine);
                    } catch (...) {
                        EXPECT_FALSE(coop::sleep_for(1ms));   // the other task throws and catches meanwhile
                        if (what_of(std::current_exception()) != mine)
                            wrong.push_back(mine + ": current_exception() is " + what_of(std::current_exception()));
                        if (std::uncaught_exceptions() != 0) wrong.push_back(mine + ": uncaught_exceptions() != 0");
                        throw;
                    }
                } catch (const std::runtime_error& e) {
                    ++caught;
                    if (e.what() != mine) wrong.push_back(mine + ": throw; rethrew " + e.what());
                }
                EXPECT_FALSE(coop::sleep_for(1ms));   // the other task may still sit in its handler
                if (std::current_exception() != nullptr)
                    wrong.push_back(mine + ": after the handler, current_exception() is " +
                                    what_of(std::current_exception()));
            }
        });
    r.run();
    EXPECT_EQ(caught, 6);
    EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
    EXPECT_EQ(std::current_exception(), nullptr);
}

// ---------------------------------------------------------------- post/stop vs teardown

// post() and stop() from another thread race run()'s return and the
// reactor's deletion: whatever the call does to the reactor (its wake-up
// of the poller included) must be over before run() can return, or it
// would touch a freed reactor. Per round, one thread calls into a fresh
// reactor while the reactor's thread runs it until the call has had its
// effect and deletes it at once. TSan sees an access not ordered before
// the deletion, ASan one that comes after it. Returns the rounds for which
// `after_run` (called between run() and the deletion) was true.
namespace {
int race_run_and_deletion(int rounds, const std::function<void(coop::reactor&)>& call,
                          const std::function<void(coop::reactor&)>& setup,
                          const std::function<bool(coop::reactor&)>& after_run) {
    std::mutex m;
    std::condition_variable cv;
    coop::reactor* target = nullptr;   // the reactor to call next
    int calls_done = 0;
    std::thread caller([&] {
        for (int i = 0; i < rounds; ++i) {
            coop::reactor* r;
            {
                std::unique_lock<std::mutex> lk(m);
                cv.wait(lk, [&] { return target != nullptr; });
                r = std::exchange(target, nullptr);
            }
            call(*r);
            std::lock_guard<std::mutex> lk(m);
            calls_done = i + 1;
            cv.notify_all();
        }
    });
    int ok = 0;
    for (int i = 0; i < rounds; ++i) {
        auto* r = new coop::reactor;
        setup(*r);
        {
            std::lock_guard<std::mutex> lk(m);
            target = r;
            cv.notify_all();
        }
        r->run();
        if (after_run(*r)) ++ok;
        delete r;                 // while the caller may still be inside call(*r)
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return calls_done == i + 1; });
    }
    caller.join();
    return ok;
}
} // namespace

TEST(ReactorThreads, PostRacingRunAndDeletionTouchesNoFreedReactor) {
    const int rounds = coop_test::scaled(500, 50);
    bool ran = false;             // touched on the reactor's thread only
    const int ok = race_run_and_deletion(
        rounds, [&](coop::reactor& r) { r.post([&] { ran = true; }); },
        [&](coop::reactor& r) {
            ran = false;
            // Busy until the posted callable has run: run() returns right after it.
            r.spawn([&] {
                while (!ran) coop::yield();
            });
        },
        [&](coop::reactor& r) { return ran && r.size() == 0; });
    EXPECT_EQ(ok, rounds);
}

TEST(ReactorThreads, StopRacingRunAndDeletionTouchesNoFreedReactor) {
    const int rounds = coop_test::scaled(500, 50);
    const int ok = race_run_and_deletion(
        rounds, [](coop::reactor& r) { r.stop(); },
        [](coop::reactor& r) {
            // Busy until teardown cancels it (sleep_for(0) returns at once
            // until then): run() returns only because of the stop.
            r.spawn([] {
                while (!coop::sleep_for(0ns)) coop::yield();
            });
        },
        [](coop::reactor& r) { return r.size() == 1; });
    EXPECT_EQ(ok, rounds);
}

// a.stop() from a task of reactor b, on another thread, while a sleeps in
// the kernel: a.run() returns.
TEST(ReactorThreads, StopFromATaskOfAnotherReactorWakesIt) {
    int quiet[2];
    ASSERT_EQ(::pipe2(quiet, O_NONBLOCK | O_CLOEXEC), 0);
    std::atomic<coop::reactor*> a_ptr{nullptr};
    std::atomic<bool> a_parked{false}, a_returned{false}, b_done{false};
    std::thread ta([&] {
        coop::reactor a;
        a.spawn([&] {
            a_parked = true;
            (void)coop::wait_readable(quiet[0]);   // nothing arrives (unless the test has to rescue it)
        });
        a_ptr = &a;
        a.run();
        a_returned = true;
        while (!b_done.load()) std::this_thread::sleep_for(1ms);   // b holds &a until then
    });
    std::thread tb([&] {
        coop::reactor b;
        b.spawn([&] {
            while (!a_parked.load()) coop::sleep_for(1ms);
            coop::sleep_for(20ms);   // a's loop is asleep in the kernel by now
            a_ptr.load()->stop();
        });
        b.run();
        b_done = true;
    });
    const auto give_up = clk::now() + 15s;
    while (!a_returned.load() && clk::now() < give_up) std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(a_returned.load()) << "a.run() did not return within 15 s of a.stop() from b's task";
    if (!a_returned.load()) (void)::write(quiet[1], "x", 1);   // wake a's task: its run() can end
    tb.join();
    ta.join();
    ::close(quiet[0]);
    ::close(quiet[1]);
}

// ---------------------------------------------------------------- join misuse

TEST(ReactorJoin, SecondTaskJoiningTheSameHandleGetsLogicError) {
    coop::reactor r;
    coop::channel<int> go;
    coop::task target = r.spawn([&] {
        int v;
        EXPECT_FALSE(go.recv(v));
    });
    bool first_joined = false;
    std::string second_error;
    r.spawn([&] {
        EXPECT_FALSE(target.join());
        first_joined = true;
    });
    r.spawn([&] {
        EXPECT_FALSE(go.send(1));    // target is runnable now, not finished
        try {
            target.join();
            ADD_FAILURE() << "a second join on the same handle returned";
        } catch (const std::logic_error& e) {
            second_error = e.what();
        }
    });
    r.run();
    EXPECT_TRUE(first_joined);
    EXPECT_NE(second_error.find("already joining"), std::string::npos) << second_error;
    EXPECT_FALSE(target);            // the first join took the result
    EXPECT_EQ(r.size(), 0u);
}

TEST(ReactorJoin, HandleMovedWhileATaskJoinsItKeepsTheResultReachable) {
    coop::reactor r;
    coop::channel<int> go;
    coop::task target = r.spawn([&] {
        int v;
        EXPECT_FALSE(go.recv(v));
        throw std::runtime_error("target's result");
    });
    coop::task moved_to;
    std::string joiner_error, result;
    coop::task joiner = r.spawn([&] {
        try {
            target.join();
            ADD_FAILURE() << "join on a moved-from handle returned";
        } catch (const std::logic_error& e) {
            joiner_error = e.what();
        }
    });
    r.spawn([&] {
        moved_to = std::move(target);   // while the joiner is parked on the handle
        EXPECT_FALSE(go.send(1));
        EXPECT_FALSE(joiner.join());    // the joiner has found out and ended
        try {
            moved_to.join();
            ADD_FAILURE() << "the target's exception was lost";
        } catch (const std::runtime_error& e) {
            result = e.what();
        }
    });
    r.run();
    EXPECT_NE(joiner_error.find("moved or dropped"), std::string::npos) << joiner_error;
    EXPECT_EQ(result, "target's result");
    EXPECT_FALSE(moved_to);
    EXPECT_EQ(r.size(), 0u);
}

TEST(ReactorJoin, HandleDroppedWhileATaskJoinsItFreesTheTask) {
    coop::reactor r;
    coop::channel<int> go;
    auto token = std::make_shared<int>(1);   // held by the target's callable
    coop::task target = r.spawn([&go, token] {
        int v;
        EXPECT_FALSE(go.recv(v));
    });
    std::string joiner_error;
    r.spawn([&] {
        try {
            target.join();
            ADD_FAILURE() << "join on a dropped handle returned";
        } catch (const std::logic_error& e) {
            joiner_error = e.what();
        }
    });
    r.spawn([&] {
        target = coop::task{};          // dropped while the joiner is parked on it
        EXPECT_FALSE(go.send(1));
    });
    r.run();
    EXPECT_NE(joiner_error.find("moved or dropped"), std::string::npos) << joiner_error;
    EXPECT_EQ(token.use_count(), 1);    // the target's callable (and stack) are gone
    EXPECT_EQ(r.size(), 0u);
}

// ---------------------------------------------------------------- coroutines inside tasks

TEST(ReactorMisuse, ThisCoroutineYieldInATaskThrowsLogicErrorNamingCoopYield) {
    coop::reactor r;
    std::string msg;
    bool continued = false;
    r.spawn([&] {
        try {
            coop::this_coroutine::yield();
            ADD_FAILURE() << "this_coroutine::yield() returned in a task";
        } catch (const std::logic_error& e) {
            msg = e.what();
        }
        coop::yield();                  // the task is still scheduled normally
        continued = true;
    });
    r.run();                            // returns: the task was not stranded
    EXPECT_NE(msg.find("coop::yield()"), std::string::npos) << msg;
    EXPECT_TRUE(continued);
    EXPECT_EQ(r.size(), 0u);
}

TEST(Reactor, CoroutineNestedInATaskYieldsToTheTask) {
    coop::reactor r;
    std::vector<std::string> log;
    r.spawn([&] {
        coop::coroutine inner([&](coop::yielder& y) {
            log.push_back("inner-1");
            coop::this_coroutine::yield(reinterpret_cast<void*>(std::uintptr_t{1}));
            log.push_back("inner-2");
            y.yield(reinterpret_cast<void*>(std::uintptr_t{2}));
            log.push_back("inner-3");
        });
        EXPECT_EQ(inner.resume(), reinterpret_cast<void*>(std::uintptr_t{1}));
        log.push_back("task-1");
        coop::yield();                  // the task itself yields to the other task
        EXPECT_EQ(inner.resume(), reinterpret_cast<void*>(std::uintptr_t{2}));
        log.push_back("task-2");
        inner.resume();
        EXPECT_TRUE(inner.done());
    });
    r.spawn([&] { log.push_back("other"); });
    r.run();
    EXPECT_EQ(log, (std::vector<std::string>{"inner-1", "task-1", "other", "inner-2", "task-2", "inner-3"}));
}

// ---------------------------------------------------------------- reactors of one thread

TEST(ReactorThreadBinding, DestroyingASecondReactorLeavesTheFirstAsThisReactor) {
    coop::reactor first;
    EXPECT_EQ(&coop::this_reactor(), &first);
    {
        coop::reactor second;
        EXPECT_EQ(&coop::this_reactor(), &second);   // the newest one
    }
    ASSERT_NO_THROW(coop::this_reactor());
    EXPECT_EQ(&coop::this_reactor(), &first);
    bool ran = false;
    coop::this_reactor().spawn([&] {
        ran = true;
        EXPECT_EQ(&coop::this_reactor(), &first);
    });
    first.run();
    EXPECT_TRUE(ran);

    // The other order: the older one goes first.
    auto older = std::make_unique<coop::reactor>();
    {
        coop::reactor newer;
        older.reset();
        EXPECT_EQ(&coop::this_reactor(), &newer);
    }
    EXPECT_EQ(&coop::this_reactor(), &first);
}

// coop::close() outside run() drops the fd's registration in every reactor
// of the thread: a task of either reactor waiting later on a new file that
// got the same fd number is woken by its data.
TEST(ReactorFd, CloseOutsideRunDropsTheRegistrationInEveryReactorOfTheThread) {
    coop::reactor older, newer;
    int sp[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
    const int fd = sp[0];
    for (coop::reactor* r : {&older, &newer}) {     // each registers fd with its poller
        r->spawn([fd] { EXPECT_EQ(coop::wait_readable(fd, 1ms), kTimedOut); });
        r->run();
    }
    ASSERT_FALSE(coop::close(fd));                  // outside run(), for both reactors
    ::close(sp[1]);

    // A new socket pair whose first end has fd's number.
    int np[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, np), 0);
    if (np[1] == fd) std::swap(np[0], np[1]);
    if (np[0] != fd) {
        ASSERT_EQ(::dup3(np[0], fd, O_CLOEXEC), fd);
        ::close(np[0]);
        np[0] = fd;
    }
    for (coop::reactor* r : {&older, &newer}) {
        std::error_code later, present;
        // Data that arrives while the task waits...
        r->spawn([&] { later = coop::wait_readable(fd, 5s); });
        r->spawn([&] {
            coop::sleep_for(5ms);
            EXPECT_EQ(::send(np[1], "x", 1, MSG_NOSIGNAL), 1);
        });
        r->run();
        EXPECT_FALSE(later) << later.message() << (r == &older ? " (older reactor)" : " (newer reactor)");
        // ... and data already there when it starts waiting.
        r->spawn([&] { present = coop::wait_readable(fd, 2s); });
        r->run();
        EXPECT_FALSE(present) << present.message() << (r == &older ? " (older reactor)" : " (newer reactor)");
        char buf[8];
        EXPECT_EQ(::read(fd, buf, sizeof buf), 1);
    }
    coop::close(np[0]);
    coop::close(np[1]);
}

// ---------------------------------------------------------------- lost exceptions

TEST(ReactorErrors, ExceptionOfAFinishedTaskDroppedUnjoinedLeavesTheNextRun) {
    coop::reactor r;
    {
        coop::task t = r.spawn([] { throw std::runtime_error("nobody joined me"); });
        r.run();                        // the handle holds the exception for join()
        EXPECT_TRUE(t.done());
    }                                   // dropped unjoined
    try {
        r.run();
        ADD_FAILURE() << "run() did not rethrow the dropped task's exception";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "nobody joined me");
    }
    EXPECT_NO_THROW(r.run());           // reported once; the reactor stays usable
    EXPECT_EQ(r.size(), 0u);
}

TEST(ReactorErrors, ExceptionOfAFinishedTaskDroppedByAnotherTaskLeavesThisRun) {
    coop::reactor r;
    coop::task t = r.spawn([] { throw std::runtime_error("dropped while running"); });
    bool dropper_done = false;
    r.spawn([&] {
        while (!t.done()) coop::yield();
        t = coop::task{};               // dropped unjoined, during run()
        dropper_done = true;
    });
    try {
        r.run();
        ADD_FAILURE() << "run() did not rethrow the dropped task's exception";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "dropped while running");
    }
    r.run();
    EXPECT_TRUE(dropper_done);
}

// ---------------------------------------------------------------- stack sizes

TEST(ReactorStacks, TinySpawnStackSizesAreRaisedToTheMinimum) {
    coop::reactor r;
    int ended = 0;
    for (std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{4095}, std::size_t{4096},
                             std::size_t{8192}, std::size_t{16384}})
        r.spawn([&] {
            volatile char scratch[4096];
            scratch[0] = 1;
            coop::yield();
            EXPECT_FALSE(coop::sleep_for(1ms));
            scratch[sizeof scratch - 1] = 2;
            if (scratch[0] + scratch[sizeof scratch - 1] == 3) ++ended;
        }, {.stack_size = size, .name = "tiny"});
    r.run();
    EXPECT_EQ(ended, 6);
}

TEST(ReactorStacks, CallableTooLargeForItsStackIsRefusedWithTheSizes) {
    coop::reactor r;
    struct big {
        std::array<char, 64 * 1024> bytes{};
        void operator()() const {}
    };
    try {
        r.spawn(big{}, {.stack_size = 16 * 1024});
        ADD_FAILURE() << "a 64 KiB callable was accepted on a 16 KiB stack";
    } catch (const std::invalid_argument& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(std::to_string(16 * 1024)), std::string::npos) << msg;
        EXPECT_NE(msg.find("bytes"), std::string::npos) << msg;
    }
    EXPECT_EQ(r.size(), 0u);
    r.run();
}
