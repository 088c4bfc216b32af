// tests/channel_test.cpp — coop::channel<T>: buffering, rendezvous,
// FIFO service, close, deadlines, try_*, move-only values.
#include <coop/channel.hpp>
#include <coop/reactor.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {
const std::error_code kPipe = std::make_error_code(std::errc::broken_pipe);
const std::error_code kAgain = std::make_error_code(std::errc::resource_unavailable_try_again);
const std::error_code kTimedOut = std::make_error_code(std::errc::timed_out);
} // namespace

TEST(Channel, BufferedKeepsOrderAndBlocksWhenFull) {
    coop::reactor r;
    coop::channel<int> ch(3);
    std::vector<std::string> trace;
    r.spawn([&] {
        for (int i = 0; i < 5; ++i) {
            EXPECT_FALSE(ch.send(i));
            trace.push_back("s" + std::to_string(i));
        }
    });
    r.spawn([&] {
        EXPECT_EQ(ch.size(), 3u);       // the sender filled the buffer and parked
        for (int i = 0; i < 5; ++i) {
            int v = -1;
            EXPECT_FALSE(ch.recv(v));
            EXPECT_EQ(v, i);
            trace.push_back("r" + std::to_string(v));
        }
    });
    r.run();
    // The sender parks on the 4th value; the receiver takes 0 and admits 3
    // into the buffer, so the sender's 4th send completes before it runs.
    EXPECT_EQ(trace.front(), "s0");
    EXPECT_EQ(trace[3], "r0");
    EXPECT_EQ(trace.size(), 10u);
}

TEST(Channel, RendezvousHandsOverDirectly) {
    coop::reactor r;
    coop::channel<std::string> ch;     // capacity 0
    std::vector<std::string> trace;
    r.spawn([&] {
        trace.push_back("send");
        EXPECT_FALSE(ch.send("hello"));
        trace.push_back("sent");
    });
    r.spawn([&] {
        coop::sleep_for(2ms);
        EXPECT_EQ(ch.size(), 0u);
        std::string v;
        trace.push_back("recv");
        EXPECT_FALSE(ch.recv(v));
        trace.push_back(v);
    });
    r.run();
    EXPECT_EQ(trace, (std::vector<std::string>{"send", "recv", "hello", "sent"}));
}

TEST(Channel, WaitersAreServedFirstComeFirstServed) {
    coop::reactor r;
    coop::channel<int> ch;
    std::vector<int> got;
    for (int i = 0; i < 4; ++i)
        r.spawn([&, i] {
            int v;
            EXPECT_FALSE(ch.recv(v));
            got.push_back(i * 100 + v);
        });
    r.spawn([&] {
        for (int v = 0; v < 4; ++v) EXPECT_FALSE(ch.send(v));
    });
    r.run();
    EXPECT_EQ(got, (std::vector<int>{0, 101, 202, 303}));
}

TEST(Channel, CloseWakesEveryoneAndDrainsBuffer) {
    coop::reactor r;
    coop::channel<int> ch(2);
    std::error_code late_send;
    std::vector<int> drained;
    std::error_code after_drain;
    r.spawn([&] {
        ch.send(1);
        ch.send(2);
        ch.close();
        late_send = ch.send(3);
        int v;
        while (!ch.recv(v)) drained.push_back(v);
        after_drain = ch.recv(v);
    });
    r.run();
    EXPECT_EQ(late_send, kPipe);
    EXPECT_EQ(drained, (std::vector<int>{1, 2}));
    EXPECT_EQ(after_drain, kPipe);

    coop::reactor r2;
    coop::channel<int> empty, full(1);
    std::error_code e1, e2;
    full.try_send(0);
    r2.spawn([&] {
        int v;
        e1 = empty.recv(v);
    });
    r2.spawn([&] { e2 = full.send(1); });
    r2.spawn([&] {
        coop::yield();
        empty.close();
        full.close();
    });
    r2.run();
    EXPECT_EQ(e1, kPipe);
    EXPECT_EQ(e2, kPipe);
}

TEST(Channel, DeadlinesAndTry) {
    coop::reactor r;
    coop::channel<int> ch(1);
    r.spawn([&] {
        int v;
        EXPECT_EQ(ch.try_recv(v), kAgain);
        auto t0 = clk::now();
        EXPECT_EQ(ch.recv(v, 10ms), kTimedOut);
        EXPECT_GE(clk::now() - t0, 10ms);
        EXPECT_FALSE(ch.try_send(1));
        EXPECT_EQ(ch.try_send(2), kAgain);
        t0 = clk::now();
        EXPECT_EQ(ch.send(2, t0 + 5ms), kTimedOut);
        EXPECT_GE(clk::now() - t0, 5ms);
        EXPECT_FALSE(ch.try_recv(v));
        EXPECT_EQ(v, 1);
    });
    r.run();
}

TEST(Channel, MoveOnlyValues) {
    coop::reactor r;
    coop::channel<std::unique_ptr<int>> ch(1);
    int sum = 0;
    r.spawn([&] {
        for (int i = 1; i <= 10; ++i) EXPECT_FALSE(ch.send(std::make_unique<int>(i)));
        ch.close();
    });
    r.spawn([&] {
        std::unique_ptr<int> p;
        while (!ch.recv(p)) sum += *p;
    });
    r.run();
    EXPECT_EQ(sum, 55);
}

TEST(Channel, OutsideATask) {
    coop::channel<int> ch(1);
    EXPECT_FALSE(ch.send(7));          // completes without parking: fine
    EXPECT_THROW(ch.send(8), std::logic_error);
    int v;
    EXPECT_FALSE(ch.recv(v));
    EXPECT_EQ(v, 7);
    EXPECT_THROW(ch.recv(v), std::logic_error);
}

TEST(Channel, ManyProducersManyConsumers) {
    coop::reactor r;
    coop::channel<int> ch(8);
    long total = 0;
    int received = 0;
    constexpr int kProducers = 20, kPer = 500;
    std::vector<coop::task> producers;
    for (int p = 0; p < kProducers; ++p)
        producers.push_back(r.spawn([&, p] {
            for (int i = 0; i < kPer; ++i) {
                EXPECT_FALSE(ch.send(p * kPer + i));
                if (i % 7 == 0) coop::yield();
            }
        }));
    for (int c = 0; c < 5; ++c)
        r.spawn([&] {
            int v;
            while (!ch.recv(v)) {
                total += v;
                ++received;
            }
        });
    r.spawn([&] {
        for (auto& t : producers) t.join();
        ch.close();
    });
    r.run();
    const long n = kProducers * kPer;
    EXPECT_EQ(received, n);
    EXPECT_EQ(total, n * (n - 1) / 2);
}

// ---------------------------------------------------------------- failed sends keep the value

TEST(ChannelFailedSend, TrySendOnAFullChannelLeavesTheUniquePtrWithTheCaller) {
    coop::channel<std::unique_ptr<int>> ch(1);
    EXPECT_FALSE(ch.try_send(std::make_unique<int>(1)));
    auto p = std::make_unique<int>(7);
    EXPECT_EQ(ch.try_send(std::move(p)), kAgain);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 7);
    ch.close();
    EXPECT_EQ(ch.try_send(std::move(p)), kPipe);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 7);
}

TEST(ChannelFailedSend, TimedOutClosedAndClosedWhileParkedSendsLeaveTheValue) {
    coop::reactor r;
    coop::channel<std::unique_ptr<int>> full(1), closing(0);
    std::unique_ptr<int> timed = std::make_unique<int>(1), closed = std::make_unique<int>(2),
                         parked = std::make_unique<int>(3), delivered = std::make_unique<int>(4);
    std::error_code e_timed, e_closed, e_parked, e_delivered;
    r.spawn([&] {
        EXPECT_FALSE(full.send(std::make_unique<int>(0)));
        e_timed = full.send(std::move(timed), 2ms);                // parks, times out
        e_parked = closing.send(std::move(parked));                // parks, the channel closes
        e_closed = closing.send(std::move(closed));                // closed already
        std::unique_ptr<int> got;
        EXPECT_FALSE(full.recv(got));
        e_delivered = full.send(std::move(delivered));             // room again: delivered
    });
    r.spawn([&] {
        EXPECT_FALSE(coop::sleep_for(10ms));
        closing.close();
    });
    r.run();
    EXPECT_EQ(e_timed, kTimedOut);
    EXPECT_EQ(e_parked, kPipe);
    EXPECT_EQ(e_closed, kPipe);
    EXPECT_FALSE(e_delivered);
    ASSERT_NE(timed, nullptr);
    EXPECT_EQ(*timed, 1);
    ASSERT_NE(parked, nullptr);
    EXPECT_EQ(*parked, 3);
    ASSERT_NE(closed, nullptr);
    EXPECT_EQ(*closed, 2);
    EXPECT_EQ(delivered, nullptr);   // moved from only on success
    std::unique_ptr<int> v;
    EXPECT_FALSE(full.try_recv(v));
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(*v, 4);
}

namespace {
// Counts its copies; moves are free.
struct copy_counter {
    int* copies = nullptr;
    int value = 0;
    copy_counter() = default;
    copy_counter(int* c, int v) : copies(c), value(v) {}
    copy_counter(const copy_counter& o) : copies(o.copies), value(o.value) { ++*copies; }
    copy_counter& operator=(const copy_counter& o) {
        copies = o.copies;
        value = o.value;
        ++*copies;
        return *this;
    }
    copy_counter(copy_counter&&) noexcept = default;
    copy_counter& operator=(copy_counter&&) noexcept = default;
};
} // namespace

TEST(ChannelFailedSend, SendOfAnLvalueCopiesOnlyOnSuccess) {
    coop::reactor r;
    int copies = 0;
    coop::channel<copy_counter> ch(1);
    const copy_counter value(&copies, 42);
    r.spawn([&] {
        EXPECT_FALSE(ch.try_send(value));                  // delivered: one copy
        EXPECT_EQ(copies, 1);
        EXPECT_EQ(ch.try_send(value), kAgain);             // full
        EXPECT_EQ(ch.send(value, 1ms), kTimedOut);         // parks, times out
        EXPECT_EQ(copies, 1);
        copy_counter got;
        EXPECT_FALSE(ch.recv(got));
        EXPECT_EQ(got.value, 42);
        ch.close();
        EXPECT_EQ(ch.send(value), kPipe);
        EXPECT_EQ(ch.try_send(value), kPipe);
        EXPECT_EQ(copies, 1);
    });
    r.run();
    EXPECT_EQ(copies, 1);
    EXPECT_EQ(value.value, 42);
}
