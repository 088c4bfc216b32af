// tests/teardown_test.cpp — destroying a reactor or a coroutine that still
// has work parked on it: never std::terminate, never a spin. Parked calls
// return ECANCELED (also inside destructors), yields inside destructors run
// by the unwinding return at once, and what cannot be unwound at all (a
// noexcept body, forced_unwind reaching a noexcept function, a body that
// keeps swallowing forced_unwind) is abandoned with one line on stderr while
// the process goes on.
//
// The cases that abandon a stack run in a child process (gtest death tests):
// the child prints its diagnosis on stderr, which the test matches as a
// whole, and exits 0 only if teardown returned. An alarm bounds the child's
// time, so a teardown that spins fails the test instead of hanging it.
#include <coop/coroutine.hpp>
#include <coop/io.hpp>
#include <coop/reactor.hpp>

#include "sockets.hpp"
#include "test_env.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;

namespace {

const std::error_code kCanceled = std::make_error_code(std::errc::operation_canceled);

using coop_test::sock_pair;
using coop_test::fill;

// The seconds a child may take before SIGALRM ends it (and fails the test).
constexpr unsigned kChildSeconds = 60;

// The child's last words: teardown returned and the process went on.
[[noreturn]] void child_done() {
    std::fputs("teardown: done\n", stderr);
    std::fflush(stderr);
    std::_Exit(0);
}

// What the child's stderr must be, whole: the diagnosis lines given, then
// child_done's line.
std::string child_stderr(const std::vector<std::string>& diagnoses) {
    std::string re = "^";
    for (const std::string& d : diagnoses) re += d;
    return re + "teardown: done\n$";
}

class TeardownDeathTest : public ::testing::Test {
protected:
    void SetUp() override { GTEST_FLAG_SET(death_test_style, coop_test::kDeathTestStyle); }
};

void* as_ptr(std::uintptr_t v) { return reinterpret_cast<void*>(v); }

} // namespace

// ---------------------------------------------------------------- (a) parked in a destructor

// A task that ends while its connection object flushes in a destructor, and
// one that sleeps in a destructor: when the reactor goes away, those calls
// return ECANCELED and the tasks end normally.
TEST(Teardown, TaskParkedInADestructorGetsEcanceledAndEnds) {
    sock_pair sp;
    ASSERT_GE(sp.fd[0], 0);
    fill(sp.fd[0]);
    std::error_code flushed = std::make_error_code(std::errc::invalid_argument);
    std::error_code slept = std::make_error_code(std::errc::invalid_argument);
    int in_dtor = 0, ended = 0;
    struct connection {
        int fd;
        std::error_code& result;
        int& in_dtor;
        ~connection() {
            ++in_dtor;
            static char buf[64 * 1024];
            result = coop::io::write_all(fd, buf, sizeof buf).error;   // the buffer is full: parks
        }
    };
    struct backoff {
        std::error_code& result;
        int& in_dtor;
        ~backoff() {
            ++in_dtor;
            result = coop::sleep_for(1h);
        }
    };
    coop::task flusher;
    {
        coop::reactor r;
        flusher = r.spawn([&] {
            {
                connection c{sp.fd[0], flushed, in_dtor};
            }
            ++ended;
        });
        r.spawn([&] {
            {
                backoff b{slept, in_dtor};
            }
            ++ended;
        });
        r.spawn([&] {
            coop::yield();                      // both others are parked in their destructors now
            coop::this_reactor().stop();
        });
        r.run();
        EXPECT_EQ(in_dtor, 2);
        EXPECT_EQ(ended, 0);
        EXPECT_EQ(r.size(), 2u);
    }
    EXPECT_EQ(flushed, kCanceled);
    EXPECT_EQ(slept, kCanceled);
    EXPECT_EQ(ended, 2);                        // the bodies went on after their destructors
    EXPECT_TRUE(flusher.done());
    EXPECT_FALSE(flusher.join());               // ended normally, nothing to rethrow
}

// The same while the destructor runs because the task body threw: the
// parked call returns ECANCELED and the exception goes on to join().
TEST(Teardown, TaskParkedInADestructorDuringItsOwnExceptionGetsEcanceled) {
    std::error_code slept = std::make_error_code(std::errc::invalid_argument);
    struct backoff {
        std::error_code& result;
        ~backoff() { result = coop::sleep_for(1h); }
    };
    coop::task t;
    {
        coop::reactor r;
        t = r.spawn([&] {
            backoff b{slept};
            throw std::runtime_error("failed while flushing");
        });
        r.spawn([&] {
            coop::yield();
            coop::this_reactor().stop();
        });
        r.run();
    }
    EXPECT_EQ(slept, kCanceled);
    try {
        t.join();
        ADD_FAILURE() << "the task's exception was lost";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "failed while flushing");
    }
}

// ---------------------------------------------------------------- (b) noexcept task bodies

TEST(Teardown, NoexceptTaskParkedAtTeardownGetsEcanceledAndEnds) {
    std::error_code slept = std::make_error_code(std::errc::invalid_argument);
    bool ended = false;
    {
        coop::reactor r;
        r.spawn([&]() noexcept {
            coop::this_reactor().stop();
            slept = coop::sleep_for(1h);
            ended = true;
        });
        r.run();
        EXPECT_FALSE(ended);
    }
    EXPECT_EQ(slept, kCanceled);
    EXPECT_TRUE(ended);
}

namespace {
[[noreturn]] void noexcept_task_ignoring_ecanceled() {
    ::alarm(kChildSeconds);
    {
        coop::reactor r;
        r.spawn([]() noexcept {
            coop::this_reactor().stop();
            for (;;) (void)coop::sleep_for(1h);   // ignores ECANCELED
        }, {.name = "stubborn"});
        r.run();
    }
    child_done();
}
} // namespace

TEST_F(TeardownDeathTest, NoexceptTaskIgnoringEcanceledIsAbandonedWithOneLine) {
    EXPECT_EXIT(noexcept_task_ignoring_ecanceled(), ::testing::ExitedWithCode(0),
                child_stderr({coop_test::abandoned_line("stubborn")}));
}

// ---------------------------------------------------------------- (c) coroutines that cannot unwind

namespace {
[[gnu::noinline]] void park_in_noexcept(coop::yielder& y) noexcept { y.yield(); }

[[noreturn]] void coroutine_suspended_in_a_noexcept_function() {
    ::alarm(kChildSeconds);
    {
        coop::coroutine co([](coop::yielder& y) { park_in_noexcept(y); }, {.name = "parked"});
        co.resume();
    }   // forced_unwind would reach park_in_noexcept: abandoned, no std::terminate
    child_done();
}
} // namespace

TEST_F(TeardownDeathTest, CoroutineSuspendedInsideANoexceptFunctionIsAbandonedWithOneLine) {
    EXPECT_EXIT(coroutine_suspended_in_a_noexcept_function(), ::testing::ExitedWithCode(0),
                child_stderr({coop_test::abandoned_line("parked")}));
}

namespace {
[[noreturn]] void noexcept_coroutine_body() {
    ::alarm(kChildSeconds);
    {
        coop::coroutine co([](coop::yielder& y) noexcept { y.yield(); }, {.name = "nothrow"});
        co.resume();
    }
    child_done();
}
} // namespace

TEST_F(TeardownDeathTest, NoexceptCoroutineBodyIsAbandonedWithOneLine) {
    EXPECT_EXIT(noexcept_coroutine_body(), ::testing::ExitedWithCode(0), child_stderr({coop_test::abandoned_line("nothrow")}));
}

// ---------------------------------------------------------------- (d) yields during forced unwind

// A task that ignores ECANCELED is unwound; its destructors that yield or
// sleep while the stack unwinds get control back at once, and every
// destructor runs.
TEST(Teardown, TaskDestructorsThatYieldOrSleepDuringForcedUnwindReturnAtOnce) {
    int destroyed = 0;
    std::error_code slept = std::make_error_code(std::errc::invalid_argument);
    bool yield_returned = false;
    struct yields_in_dtor {
        bool& returned;
        int& destroyed;
        ~yields_in_dtor() {
            coop::yield();
            returned = true;
            ++destroyed;
        }
    };
    struct sleeps_in_dtor {
        std::error_code& result;
        int& destroyed;
        ~sleeps_in_dtor() {
            result = coop::sleep_for(1h);
            ++destroyed;
        }
    };
    struct plain {
        int& destroyed;
        ~plain() { ++destroyed; }
    };
    {
        coop::reactor r;
        r.spawn([&] {
            plain outer{destroyed};
            yields_in_dtor y{yield_returned, destroyed};
            sleeps_in_dtor s{slept, destroyed};
            plain inner{destroyed};
            coop::this_reactor().stop();
            for (;;) (void)coop::sleep_for(1h);   // ignores ECANCELED: teardown has to unwind it
        });
        r.run();
        EXPECT_EQ(destroyed, 0);
    }
    EXPECT_TRUE(yield_returned);
    EXPECT_EQ(slept, kCanceled);
    EXPECT_EQ(destroyed, 4);
}

// A coroutine whose destructors yield (through its yielder and through
// this_coroutine::yield) while it is destroyed: both yields return nullptr
// at once, and the unwinding completes.
TEST(Teardown, CoroutineDestructorsThatYieldDuringForcedUnwindGetNull) {
    int destroyed = 0;
    void* through_yielder = as_ptr(1);
    void* through_this_coroutine = as_ptr(1);
    struct plain {
        int& destroyed;
        ~plain() { ++destroyed; }
    };
    {
        coop::coroutine co([&](coop::yielder& y) {
            struct yields_in_dtor {
                coop::yielder& y;
                void*& a;
                void*& b;
                int& destroyed;
                ~yields_in_dtor() {
                    a = y.yield(as_ptr(5));
                    b = coop::this_coroutine::yield(as_ptr(6));
                    ++destroyed;
                }
            };
            plain outer{destroyed};
            yields_in_dtor d{y, through_yielder, through_this_coroutine, destroyed};
            plain inner{destroyed};
            y.yield();
        });
        co.resume();
    }
    EXPECT_EQ(through_yielder, nullptr);
    EXPECT_EQ(through_this_coroutine, nullptr);
    EXPECT_EQ(destroyed, 3);
}

// ---------------------------------------------------------------- (e) swallowed forced_unwind

namespace {
[[noreturn]] void task_swallowing_forced_unwind() {
    ::alarm(kChildSeconds);
    {
        coop::reactor r;
        r.spawn([] {
            coop::this_reactor().stop();
            for (;;) {
                try {
                    coop::yield();
                } catch (...) {   // wrong: swallows coop::forced_unwind too
                }
            }
        }, {.name = "swallower"});
        r.run();
    }
    child_done();
}
} // namespace

TEST_F(TeardownDeathTest, TaskLoopSwallowingForcedUnwindIsAbandonedAndTeardownReturns) {
    EXPECT_EXIT(task_swallowing_forced_unwind(), ::testing::ExitedWithCode(0),
                child_stderr({coop_test::abandoned_line("swallower")}));
}

namespace {
[[noreturn]] void coroutine_swallowing_forced_unwind() {
    ::alarm(kChildSeconds);
    {
        coop::coroutine co([](coop::yielder& y) {
            for (;;) {
                try {
                    y.yield();
                } catch (...) {
                }
            }
        }, {.name = "swallower"});
        co.resume();
    }
    child_done();
}
} // namespace

TEST_F(TeardownDeathTest, CoroutineSwallowingForcedUnwindIsAbandonedAndDestructionReturns) {
    EXPECT_EXIT(coroutine_swallowing_forced_unwind(), ::testing::ExitedWithCode(0),
                child_stderr({coop_test::abandoned_line("swallower")}));
}

// Teardown with every kind at once: tasks that end on ECANCELED, one that
// must be unwound, one that is abandoned; each is handled, one line for the
// abandoned one only.
namespace {
[[noreturn]] void mixed_tasks_at_teardown() {
    ::alarm(kChildSeconds);
    int ended = 0, unwound = 0;
    {
        coop::reactor r;
        struct on_unwind {
            int& n;
            ~on_unwind() { ++n; }
        };
        for (int i = 0; i < 3; ++i)
            r.spawn([&] {
                if (coop::sleep_for(1h)) ++ended;
            });
        r.spawn([&] {
            on_unwind u{unwound};
            for (;;) coop::yield();
        });
        r.spawn([]() noexcept {
            for (;;) (void)coop::sleep_for(1h);
        }, {.name = "stubborn"});
        r.spawn([] { coop::this_reactor().stop(); });
        r.run();
    }
    if (ended != 3 || unwound != 1) {
        std::fprintf(stderr, "ended %d unwound %d\n", ended, unwound);
        std::_Exit(1);
    }
    child_done();
}
} // namespace

TEST_F(TeardownDeathTest, MixedTasksAtTeardownAbandonOnlyTheOneThatCannotUnwind) {
    EXPECT_EXIT(mixed_tasks_at_teardown(), ::testing::ExitedWithCode(0),
                child_stderr({coop_test::abandoned_line("stubborn")}));
}
