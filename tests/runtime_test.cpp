// tests/runtime_test.cpp — many reactors: coop::runtime, shared channels
// between tasks of different reactors, and the offload pool. Real threads,
// real kernel wake-ups; outcomes and ordering only, never speed.
#include <coop/channel.hpp>
#include <coop/io.hpp>
#include <coop/listener.hpp>
#include <coop/offload.hpp>
#include <coop/reactor.hpp>
#include <coop/runtime.hpp>
#include <coop/shared_channel.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>
#include <sched.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

// Fewer rounds under Valgrind and qemu, where everything is 20-50x slower.
int rounds(int n) {
    const char* run = std::getenv("COOP_RUN_PREFIX");
    const bool slow = (run && *run) || std::getenv("COOP_SLOW_TESTS");
    return slow ? n / 10 + 1 : n;
}

// ---------------------------------------------------------------- runtime

TEST(Runtime, RunsTasksOnEveryReactorAndReturnsWhenAllAreDone) {
    coop::runtime rt({.threads = 3});
    ASSERT_EQ(rt.size(), 3u);
    EXPECT_EQ(coop::runtime::current(), nullptr);
    EXPECT_THROW(coop::runtime::current_index(), std::logic_error);
    std::mutex mu;
    std::vector<std::size_t> seen;
    std::set<std::thread::id> threads;
    for (std::size_t i = 0; i < rt.size(); ++i) {
        rt.spawn_on(i, [&, i] {
            coop::sleep_for(1ms);              // parks: the reactor sleeps meanwhile
            std::lock_guard<std::mutex> lk(mu);
            EXPECT_EQ(coop::runtime::current(), &rt);
            EXPECT_EQ(coop::runtime::current_index(), i);
            seen.push_back(coop::runtime::current_index());
            threads.insert(std::this_thread::get_id());
        });
    }
    rt.run();
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(threads.size(), 3u);             // one thread per reactor
    EXPECT_EQ(coop::runtime::current(), nullptr);
}

TEST(Runtime, IdleReactorsWaitForWorkFromOthers) {
    // Reactor 1 has nothing at first; reactor 0 hands it work after a while.
    // run() must not return before that work is done.
    coop::runtime rt({.threads = 2});
    std::atomic<bool> ran{false};
    rt.spawn_on(0, [&] {
        coop::sleep_for(20ms);
        coop::runtime::current()->spawn_on(1, [&] {
            coop::sleep_for(5ms);
            ran = true;
        });
    });
    rt.run();
    EXPECT_TRUE(ran.load());
}

TEST(Runtime, PostAndSpawnOnFromAnotherThreadWhileRunning) {
    coop::runtime rt({.threads = 2});
    coop::shared_channel<int> quit(1);
    std::atomic<int> posted{0};
    rt.spawn_on(0, [&] {                       // keeps the runtime alive until told
        int v;
        (void)quit.recv(v);
    });
    std::thread outsider([&] {
        std::this_thread::sleep_for(10ms);
        for (int i = 0; i < 10; ++i) rt.post(1, [&] { ++posted; });
        rt.spawn_on(1, [&] {
            while (posted.load() < 10) coop::yield();
            (void)quit.try_send(1);
        });
    });
    rt.run();
    outsider.join();
    EXPECT_EQ(posted.load(), 10);
    EXPECT_THROW(rt.post(2, [] {}), std::out_of_range);
}

TEST(Runtime, StopFromAnotherThreadReturnsAndDestructionEndsTheTasks) {
    int ended = 0;
    {
        coop::shared_channel<int> never;       // outlives the runtime
        coop::runtime rt({.threads = 2});
        for (std::size_t i = 0; i < 2; ++i)
            rt.spawn_on(i, [&] {
                struct counter {
                    int* n;
                    ~counter() { ++*n; }
                } c{&ended};
                int v;
                EXPECT_EQ(never.recv(v), std::errc::operation_canceled);   // teardown cancels
            });
        std::thread stopper([&] {
            std::this_thread::sleep_for(20ms);
            rt.stop();
        });
        rt.run();
        stopper.join();
        EXPECT_EQ(ended, 0);
        // ~runtime: teardown cancels the parked receivers
    }
    EXPECT_EQ(ended, 2);
}

TEST(Runtime, ADetachedTaskExceptionStopsTheRuntimeAndIsRethrown) {
    coop::runtime rt({.threads = 2});
    coop::shared_channel<int> never;
    rt.spawn_on(0, [&] {
        int v;
        (void)never.recv(v);
    });
    rt.spawn_on(1, [] {
        coop::sleep_for(1ms);
        throw std::runtime_error("from reactor 1");
    });
    try {
        rt.run();
        ADD_FAILURE() << "run() returned normally";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "from reactor 1");
    }
}

TEST(Runtime, PinningPutsEachReactorOnItsCpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    coop::runtime rt({.threads = 2, .pin = true});
    std::atomic<int> right{0};
    for (std::size_t i = 0; i < 2; ++i)
        rt.spawn_on(i, [&, i] {
            cpu_set_t mine;
            CPU_ZERO(&mine);
            ASSERT_EQ(::sched_getaffinity(0, sizeof mine, &mine), 0);
            if (CPU_COUNT(&mine) == 1 && CPU_ISSET(cpus[i % cpus.size()], &mine)) ++right;
        });
    rt.run();
    EXPECT_EQ(right.load(), 2);
    cpu_set_t after;                           // the caller's own affinity is back
    CPU_ZERO(&after);
    ASSERT_EQ(::sched_getaffinity(0, sizeof after, &after), 0);
    EXPECT_TRUE(CPU_EQUAL(&after, &set));
}

// ---------------------------------------------------------------- call_on

TEST(CallOn, RunsOnTheTargetReactorAndBringsBackTheValueOrTheException) {
    coop::runtime rt({.threads = 2});
    std::size_t ran_on = 99;
    int got = 0;
    bool caught = false;
    rt.spawn_on(0, [&] {
        auto r = rt.call_on(1, [&] {
            ran_on = coop::runtime::current_index();
            coop::sleep_for(1ms);                            // it runs as a task there: it may park
            return 42;
        });
        ASSERT_TRUE(r);
        got = *r.value;
        try {
            (void)rt.call_on(1, []() -> int { throw std::runtime_error("there"); });
        } catch (const std::runtime_error& e) {
            caught = std::string(e.what()) == "there";
        }
        auto same = rt.call_on(0, [] { return coop::runtime::current_index(); });   // inline
        EXPECT_EQ(*same.value, 0u);
    });
    rt.run();
    EXPECT_EQ(ran_on, 1u);
    EXPECT_EQ(got, 42);
    EXPECT_TRUE(caught);
}

TEST(CallOn, DeadlineAndCancelReturnAtOnceAndTheCallerIsSafe) {
    // A call still queued when its caller stops waiting is withdrawn unrun;
    // one that has started runs to its end on its own reactor (it owns what
    // it uses). Whether the timed call started within its 5 ms depends on
    // the machine (under Valgrind it may not); the canceled one is canceled
    // only once it runs.
    coop::runtime rt({.threads = 2});
    auto started = std::make_shared<std::atomic<int>>(0);
    auto finished = std::make_shared<std::atomic<int>>(0);
    std::error_code timed, canceled;
    rt.spawn_on(0, [&] {
        timed = rt.call_on(1, [started, finished] {
                     ++*started;
                     coop::sleep_for(50ms);
                     ++*finished;
                 }, 5ms).error;
        const int before = started->load();
        coop::task t = coop::this_reactor().spawn([&] {
            canceled = rt.call_on(1, [started, finished] {
                           ++*started;
                           coop::sleep_for(50ms);
                           ++*finished;
                       }).error;
        });
        while (started->load() == before) coop::sleep_for(1ms);
        t.cancel();
        EXPECT_FALSE(t.join(1s));                            // returned at once
    });
    rt.run();                                                 // the started calls finish on reactor 1
    EXPECT_EQ(timed, std::errc::timed_out);
    EXPECT_EQ(canceled, std::errc::operation_canceled);
    EXPECT_GE(started->load(), 1);
    EXPECT_EQ(finished->load(), started->load());             // none was cut short
}

TEST(CallOn, OutsideATaskIsALogicError) {
    coop::runtime rt({.threads = 1});
    EXPECT_THROW(rt.call_on(0, [] {}), std::logic_error);
}

// ---------------------------------------------------------------- shared channels

TEST(SharedChannel, ManyProducersAndConsumersOnDifferentReactors) {
    coop::runtime rt({.threads = 3});
    coop::shared_channel<long> ch(8);
    const int producers = 4, per = rounds(2000);
    std::atomic<int> left{producers};
    std::atomic<long> sum{0}, count{0};
    for (int p = 0; p < producers; ++p)
        rt.spawn_on(static_cast<std::size_t>(p) % rt.size(), [&, p] {
            for (int i = 1; i <= per; ++i) ASSERT_FALSE(ch.send(long(p) * per + i));
            if (--left == 0) ch.close();
        });
    for (int c = 0; c < 3; ++c)
        rt.spawn_on(static_cast<std::size_t>(c), [&] {
            long v, s = 0, n = 0;
            std::error_code ec;
            while (!(ec = ch.recv(v))) {
                s += v;
                ++n;
            }
            EXPECT_EQ(ec, std::errc::broken_pipe);
            sum += s;
            count += n;
        });
    rt.run();
    const long total = long(producers) * per;
    EXPECT_EQ(count.load(), total);
    EXPECT_EQ(sum.load(), total * (total + 1) / 2);
}

TEST(SharedChannel, RendezvousOrderCloseAndErrorsMatchChannel) {
    coop::runtime rt({.threads = 2});
    coop::shared_channel<std::unique_ptr<int>> rv;        // capacity 0
    coop::shared_channel<int> buffered(2);
    std::vector<int> got;
    rt.spawn_on(0, [&] {
        for (int i = 0; i < 3; ++i) ASSERT_FALSE(rv.send(std::make_unique<int>(i)));
        auto p = std::make_unique<int>(9);                 // nobody receives it in time
        EXPECT_EQ(rv.send(std::move(p), 5ms), std::errc::timed_out);
        ASSERT_TRUE(p);                                     // a failed send keeps the value
        EXPECT_EQ(*p, 9);
        ASSERT_FALSE(buffered.send(1));
        ASSERT_FALSE(buffered.send(2));
        EXPECT_EQ(buffered.try_send(3), std::errc::resource_unavailable_try_again);
        buffered.close();
        EXPECT_EQ(buffered.send(4), std::errc::broken_pipe);
    });
    rt.spawn_on(1, [&] {
        for (int i = 0; i < 3; ++i) {
            std::unique_ptr<int> p;
            ASSERT_FALSE(rv.recv(p));
            got.push_back(*p);
        }
        coop::sleep_for(30ms);                              // let the buffered side close
        int v;
        ASSERT_FALSE(buffered.recv(v));                     // values still buffered are delivered
        EXPECT_EQ(v, 1);
        ASSERT_FALSE(buffered.recv(v));
        EXPECT_EQ(v, 2);
        EXPECT_EQ(buffered.recv(v), std::errc::broken_pipe);
        EXPECT_EQ(buffered.recv(v, 1ms), std::errc::broken_pipe);
    });
    rt.run();
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
}

TEST(SharedChannel, CancelingAParkedReceiverGivesEcanceledAndLosesNothing) {
    coop::reactor r;
    coop::shared_channel<int> ch(1);
    coop::task rx = r.spawn([&] {
        int v;
        EXPECT_EQ(ch.recv(v), std::errc::operation_canceled);
    });
    r.spawn([&] {
        coop::sleep_for(2ms);
        rx.cancel();
        coop::sleep_for(1ms);
        EXPECT_FALSE(ch.try_send(5));                       // the canceled receiver took nothing
        int v = 0;
        EXPECT_FALSE(ch.try_recv(v));
        EXPECT_EQ(v, 5);
    });
    r.run();
}

TEST(SharedChannel, AValueHandedToASleepingReactorWakesItOncePerBurst) {
    // The receiver's reactor sleeps in the kernel; a burst of values sent
    // from another reactor must not cost one wake-up per value.
    // Under qemu-user the receiver drains each value before the emulated
    // sender produces the next, so each value does find it asleep and the
    // count says nothing about batching there; the native runs check it.
    if (const char* p = std::getenv("COOP_RUN_PREFIX"); p && *p)
        GTEST_SKIP() << "timing-dependent under an emulator: the receiver outruns the sender";
    coop::runtime rt({.threads = 2});
    coop::shared_channel<int> ch(256);
    coop::shared_channel<int> ready(1);
    std::uint64_t polls = 0;
    rt.spawn_on(0, [&] {
        coop::reactor& me = coop::this_reactor();
        ASSERT_FALSE(ready.send(1));
        int v;
        ASSERT_FALSE(ch.recv(v));                           // parks; the reactor sleeps
        const std::uint64_t before = me.polls();
        int n = 1;
        while (!ch.recv(v)) ++n;
        polls = me.polls() - before;
        EXPECT_EQ(n, 200);
    });
    rt.spawn_on(1, [&] {
        int v;
        ASSERT_FALSE(ready.recv(v));
        coop::sleep_for(10ms);                              // the receiver is parked by now
        for (int i = 0; i < 200; ++i) ASSERT_FALSE(ch.send(i));
        ch.close();
    });
    rt.run();
    // With a wake-up per value, nearly every value costs a poll (a wake for
    // a value already drained returns a poll with nothing to do). Batched,
    // a poll is a genuine sleep: the receiver emptied the channel before
    // the sender's next value, which a loaded machine makes happen now and
    // then (up to 30 of 200 seen under load), so the bound is half.
    EXPECT_LT(polls, 100u) << "the receiving reactor polled the kernel " << polls << " times for 200 values";
}

TEST(SharedChannel, OutsideATaskOnlyWhatNeedNotPark) {
    coop::shared_channel<int> ch(1);
    EXPECT_FALSE(ch.send(1));                               // room: completes anywhere
    EXPECT_THROW(ch.send(2), std::logic_error);             // would park
    int v;
    EXPECT_FALSE(ch.recv(v));
    EXPECT_EQ(v, 1);
    EXPECT_THROW(ch.recv(v), std::logic_error);
}

// ---------------------------------------------------------------- listener

// A blocking client: connect to 127.0.0.1:port, send `msg`, read it back.
std::string echo_once(std::uint16_t port, const std::string& msg) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string got;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::send(fd, msg.data(), msg.size(), 0) == static_cast<ssize_t>(msg.size())) {
        char buf[256];
        while (got.size() < msg.size()) {
            const ssize_t k = ::recv(fd, buf, sizeof buf, 0);
            if (k <= 0) break;
            got.append(buf, static_cast<std::size_t>(k));
        }
    }
    ::close(fd);
    return got;
}

void serve_echo(int fd) {
    char buf[256];
    for (;;) {
        coop::io::result r = coop::io::read(fd, buf, sizeof buf, 5s);
        if (!r || r.size == 0) break;
        if (!coop::io::write_all(fd, buf, r.size, 5s)) break;
    }
    coop::close(fd);
}

TEST(Listener, BothModesServeEveryReactorAndCloseEndsTheRuntime) {
    for (coop::accept_mode mode : {coop::accept_mode::round_robin, coop::accept_mode::reuseport}) {
        coop::runtime rt({.threads = 2});
        coop::listener l(rt, {.host = "127.0.0.1", .port = 0, .mode = mode}, [](int fd) {
            serve_echo(fd);
        });
        ASSERT_NE(l.port(), 0);
        EXPECT_EQ(l.mode(), mode);
        std::atomic<int> right{0};
        const int clients = 40;
        std::thread driver([&] {
            for (int i = 0; i < clients; ++i)
                if (echo_once(l.port(), "hello " + std::to_string(i)) == "hello " + std::to_string(i)) ++right;
            l.close();                                       // the accepting tasks end, then run()
        });
        rt.run();
        driver.join();
        EXPECT_EQ(right.load(), clients);
        EXPECT_EQ(l.accepted(0) + l.accepted(1), static_cast<std::uint64_t>(clients));
        if (mode == coop::accept_mode::round_robin) {       // an even spread, by construction
            EXPECT_EQ(l.accepted(0), static_cast<std::uint64_t>(clients / 2));
            EXPECT_EQ(l.accepted(1), static_cast<std::uint64_t>(clients / 2));
        }
    }
}

TEST(Listener, AutomaticIsRoundRobinAndBadHostsAreRefused) {
    coop::runtime rt({.threads = 1});
    EXPECT_THROW(coop::listener(rt, {.host = "not an address"}, [](int) {}), std::system_error);
    coop::listener l(rt, {}, [](int fd) { coop::close(fd); });
    EXPECT_EQ(l.mode(), coop::accept_mode::round_robin);
    EXPECT_THROW(coop::listener(rt, {.port = l.port(), .mode = coop::accept_mode::round_robin},
                                [](int) {}),
                 std::system_error);                        // address in use
    l.close();
    rt.run();
}

// ---------------------------------------------------------------- offload

TEST(Offload, ResultAndExceptionReachTheTaskWhileOthersRun) {
    coop::reactor r;
    int ticks = 0;
    bool done = false;
    r.spawn([&] {
        auto res = coop::offload([] {
            std::this_thread::sleep_for(30ms);              // a blocking call
            return std::string("from a worker");
        });
        ASSERT_TRUE(res);
        EXPECT_EQ(*res.value, "from a worker");
        EXPECT_THROW(coop::offload([]() -> int { throw std::runtime_error("worker threw"); }),
                     std::runtime_error);
        auto v = coop::offload([] {});
        EXPECT_TRUE(v);
        done = true;
    });
    r.spawn([&] {                                           // the reactor keeps running
        while (!done) {
            ++ticks;
            coop::sleep_for(1ms);
        }
    });
    r.run();
    EXPECT_TRUE(done);
    EXPECT_GT(ticks, 3);
}

// A gate a worker blocks on until the test opens it.
struct gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    void wait() {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return open; });
    }
    void release() {
        std::lock_guard<std::mutex> lk(mu);
        open = true;
        cv.notify_all();
    }
};

TEST(Offload, CancelAndDeadlineReturnAtOnceAndTheLateResultIsDropped) {
    auto g = std::make_shared<gate>();
    auto dropped = std::make_shared<std::atomic<int>>(0);
    struct noisy {
        std::shared_ptr<std::atomic<int>> n;
        ~noisy() {
            if (n) ++*n;
        }
    };
    coop::reactor r;
    coop::task blocked = r.spawn([&] {
        auto res = coop::offload([g, dropped] {
            g->wait();
            return noisy{dropped};
        });
        EXPECT_EQ(res.error, std::errc::operation_canceled);
        EXPECT_FALSE(res.value);
    });
    r.spawn([&] {
        coop::sleep_for(5ms);
        blocked.cancel();
        EXPECT_FALSE(blocked.join(1s));                     // it returned at once
        auto res = coop::offload([g] { g->wait(); return 1; }, 5ms);
        EXPECT_EQ(res.error, std::errc::timed_out);
    });
    r.run();
    g->release();                                           // the workers finish now
    for (int i = 0; i < 500 && dropped->load() < 1; ++i) std::this_thread::sleep_for(2ms);
    EXPECT_GE(dropped->load(), 1);                          // the late result was destroyed
}

TEST(Offload, ThePoolBoundsHowManyCallsRunAtOnce) {
    const std::size_t was = coop::offload_threads();
    coop::set_offload_threads(2);
    EXPECT_EQ(coop::offload_threads(), 2u);
    std::atomic<int> now{0}, most{0};
    coop::reactor r;
    for (int i = 0; i < 6; ++i)
        r.spawn([&] {
            (void)coop::offload([&] {
                const int n = ++now;
                int m = most.load();
                while (n > m && !most.compare_exchange_weak(m, n)) {}
                std::this_thread::sleep_for(5ms);
                --now;
            });
        });
    r.run();
    EXPECT_LE(most.load(), 2);
    EXPECT_GE(most.load(), 1);
    coop::set_offload_threads(was);
}

TEST(Offload, ResolvesAHostNameWithGetaddrinfo) {
    coop::reactor r;
    std::string first;
    r.spawn([&] {
        auto res = coop::offload([] {
            addrinfo hints{};
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            addrinfo* ai = nullptr;
            const int rc = ::getaddrinfo("localhost", "80", &hints, &ai);
            std::string s = rc == 0 && ai ? std::to_string(ai->ai_family) : "";
            if (ai) ::freeaddrinfo(ai);
            return s;
        }, 10s);
        ASSERT_TRUE(res);
        first = *res.value;
    });
    r.run();
    EXPECT_TRUE(first == std::to_string(AF_INET) || first == std::to_string(AF_INET6)) << first;
}

#ifndef COOP_BIN_DIR
#  define COOP_BIN_DIR "build/x86_64/bin"
#endif

TEST(Offload, TheResolveExampleResolvesLocalhost) {
    // Under qemu the example runs under the same emulator as this binary.
    const char* prefix = std::getenv("COOP_RUN_PREFIX");
    const std::string cmd = std::string(prefix ? prefix : "") + " " + COOP_BIN_DIR +
                            "/coop-resolve localhost 80 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    const int status = ::pclose(p);
    EXPECT_EQ(status, 0) << out;
    EXPECT_TRUE(out.find("localhost 127.0.0.1") != std::string::npos ||
                out.find("localhost ::1") != std::string::npos)
        << out;
}

TEST(Offload, OutsideATaskIsALogicError) {
    EXPECT_THROW(coop::offload([] { return 1; }), std::logic_error);
}

} // namespace
