// tests/coroutine_test.cpp — coop::coroutine and coop::generator.
#include <coop/coroutine.hpp>
#include <coop/fiber_local.hpp>
#include <coop/generator.hpp>

#include "test_env.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cfenv>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

void* as_ptr(std::uintptr_t v) { return reinterpret_cast<void*>(v); }
std::uintptr_t as_int(void* p) { return reinterpret_cast<std::uintptr_t>(p); }

TEST(Coroutine, DoesNotRunBeforeFirstResume) {
    bool ran = false;
    coop::coroutine co([&] { ran = true; });
    EXPECT_FALSE(ran);
    EXPECT_FALSE(co.started());
    EXPECT_FALSE(co.done());
    co.resume();
    EXPECT_TRUE(ran);
    EXPECT_TRUE(co.done());
}

TEST(Coroutine, ValuesFlowBothWays) {
    // resume(v) delivers v to the first-value parameter or to the pending
    // yield; yield(v) / return v deliver to resume()'s caller.
    std::vector<std::uintptr_t> seen;
    coop::coroutine co([&](coop::yielder& y, void* first) -> void* {
        seen.push_back(as_int(first));
        std::uintptr_t acc = as_int(first);
        for (int i = 0; i < 3; ++i) {
            void* in = y.yield(as_ptr(acc * 10));
            seen.push_back(as_int(in));
            acc += as_int(in);
        }
        return as_ptr(acc + 1000);
    });
    EXPECT_EQ(as_int(co.resume(as_ptr(1))), 10u);     // acc = 1
    EXPECT_EQ(as_int(co.resume(as_ptr(2))), 30u);     // acc = 3
    EXPECT_EQ(as_int(co.resume(as_ptr(3))), 60u);     // acc = 6
    EXPECT_FALSE(co.done());
    EXPECT_EQ(as_int(co.resume(as_ptr(4))), 1010u);   // acc = 10, returned
    EXPECT_TRUE(co.done());
    EXPECT_EQ(seen, (std::vector<std::uintptr_t>{1, 2, 3, 4}));
}

TEST(Coroutine, ThisCoroutineYieldWorksFromNestedCalls) {
    struct helper {
        static void deep(int n) {
            if (n == 0) {
                coop::this_coroutine::yield(as_ptr(77));
                return;
            }
            deep(n - 1);
        }
    };
    coop::coroutine co([] { helper::deep(50); });
    EXPECT_EQ(as_int(co.resume()), 77u);
    EXPECT_FALSE(co.done());
    EXPECT_EQ(co.resume(), nullptr);
    EXPECT_TRUE(co.done());
}

TEST(Coroutine, ResumingAFinishedCoroutineThrowsLogicError) {
    coop::coroutine co([] {});
    co.resume();
    ASSERT_TRUE(co.done());
    EXPECT_THROW(co.resume(), std::logic_error);
    coop::coroutine empty;
    EXPECT_THROW(empty.resume(), std::logic_error);
    EXPECT_TRUE(empty.done());
}

TEST(Coroutine, ResumingItselfThrowsLogicError) {
    coop::coroutine* self = nullptr;
    bool threw = false;
    coop::coroutine co([&] {
        try {
            self->resume();
        } catch (const std::logic_error&) {
            threw = true;
        }
    });
    self = &co;
    co.resume();
    EXPECT_TRUE(threw);
    EXPECT_TRUE(co.done());
}

TEST(Coroutine, YieldOutsideACoroutineThrowsLogicError) {
    EXPECT_FALSE(coop::this_coroutine::inside());
    EXPECT_THROW(coop::this_coroutine::yield(), std::logic_error);
    EXPECT_EQ(coop::this_coroutine::id(), 0u);
}

TEST(Coroutine, IdsAndNames) {
    std::uint64_t inner_id = 0;
    std::string inner_name;
    coop::coroutine a([&] {
        inner_id = coop::this_coroutine::id();
        inner_name = std::string(coop::this_coroutine::name());
    }, {.name = "worker-7"});
    coop::coroutine b([] {});
    EXPECT_NE(a.id(), 0u);
    EXPECT_NE(a.id(), b.id());
    EXPECT_EQ(a.name(), "worker-7");
    a.resume();
    EXPECT_EQ(inner_id, a.id());
    EXPECT_EQ(inner_name, "worker-7");
    // long names are cut, not overflowed
    std::string longname(100, 'x');
    coop::coroutine c([] {}, {.name = longname.c_str()});
    EXPECT_EQ(c.name(), std::string(31, 'x'));
}

TEST(Coroutine, ExceptionIsRethrownFromResume) {
    coop::coroutine co([](coop::yielder& y) {
        y.yield();
        throw std::runtime_error("boom inside");
    });
    co.resume();
    try {
        co.resume();
        FAIL() << "resume did not rethrow";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "boom inside");
    }
    EXPECT_TRUE(co.done());
    EXPECT_THROW(co.resume(), std::logic_error);
}

TEST(Coroutine, ExceptionCaughtInsideStaysInside) {
    coop::coroutine co([](coop::yielder& y) {
        try {
            y.yield();
            throw 42;
        } catch (int v) {
            y.yield(as_ptr(static_cast<std::uintptr_t>(v)));
        }
    });
    co.resume();
    EXPECT_EQ(as_int(co.resume()), 42u);
    co.resume();
    EXPECT_TRUE(co.done());
}

struct counted {
    int* live;
    explicit counted(int* l) : live(l) { ++*live; }
    ~counted() { --*live; }
};

TEST(Coroutine, DestroyingASuspendedCoroutineRunsDestructors) {
    int live = 0;
    bool after_yield = false;
    {
        coop::coroutine co([&](coop::yielder& y) {
            counted a(&live);
            auto b = std::make_unique<counted>(&live);
            struct nested {
                static void park(int* live, coop::yielder& y) {
                    counted c(live);
                    y.yield();
                }
            };
            nested::park(&live, y);
            after_yield = true;   // never reached: destroyed while parked
        });
        co.resume();
        EXPECT_EQ(live, 3);
    }
    EXPECT_EQ(live, 0);
    EXPECT_FALSE(after_yield);
}

TEST(Coroutine, DestroyingAnUnstartedCoroutineDoesNotRunIt) {
    int live = 0;
    bool ran = false;
    {
        auto token = std::make_shared<counted>(&live);
        coop::coroutine co([&ran, token] { ran = true; });
        token.reset();
        EXPECT_EQ(live, 1);   // the callable holds it
    }
    EXPECT_EQ(live, 0);       // the callable was destroyed
    EXPECT_FALSE(ran);
}

TEST(Coroutine, SwallowedForcedUnwindStillEnds) {
    int yields_after_unwind = 0;
    {
        coop::coroutine co([&](coop::yielder& y) {
            for (;;) {
                try {
                    y.yield();
                } catch (...) {
                    // wrong, but must not hang or crash: every yield throws again
                    if (++yields_after_unwind == 3) throw;
                }
            }
        });
        co.resume();
    }
    EXPECT_EQ(yields_after_unwind, 3);
}

TEST(Coroutine, ForcedUnwindIsNotAStdException) {
    bool caught_as_std = false;
    {
        coop::coroutine co([&](coop::yielder& y) {
            try {
                y.yield();
            } catch (const std::exception&) {
                caught_as_std = true;
            }
        });
        co.resume();
    }
    EXPECT_FALSE(caught_as_std);
}

TEST(Coroutine, DeepRecursionInsideACoroutine) {
    struct rec {
        static std::uint64_t sum(int n) {
            volatile char pad[200];
            pad[0] = static_cast<char>(n);
            if (n == 0) return pad[0];
            return static_cast<std::uint64_t>(n) + sum(n - 1) + static_cast<unsigned char>(pad[0]) * 0;
        }
    };
    std::uint64_t result = 0;
    // ~20 000 frames of >200 bytes: several MiB, on a 16 MiB stack.
    coop::coroutine co([&] { result = rec::sum(20000); }, {.stack_size = 16u << 20});
    co.resume();
    EXPECT_EQ(result, 20000ull * 20001 / 2);
}

TEST(Coroutine, ManyCoroutinesRoundRobin) {
    const int n = 2000, rounds = 10;
    std::vector<std::uint64_t> progress(n, 0);
    std::vector<coop::coroutine> cos;
    cos.reserve(n);
    for (int i = 0; i < n; ++i)
        cos.emplace_back([&progress, i](coop::yielder& y) {
            for (int r = 0; r < rounds; ++r) {
                progress[i] += static_cast<std::uint64_t>(i) + 1;
                y.yield();
            }
        }, coop::coroutine_options{.stack_size = 16 * 1024});
    for (int r = 0; r <= rounds; ++r)
        for (auto& c : cos)
            if (!c.done()) c.resume();
    for (int i = 0; i < n; ++i) {
        EXPECT_TRUE(cos[i].done());
        EXPECT_EQ(progress[i], static_cast<std::uint64_t>(rounds) * (i + 1));
    }
}

TEST(Coroutine, NestedCoroutinesYieldToTheirOwnResumer) {
    std::vector<std::string> log;
    coop::coroutine outer([&](coop::yielder& y) {
        coop::coroutine inner([&] {
            log.push_back("inner-1");
            coop::this_coroutine::yield();   // back to outer, not to main
            log.push_back("inner-2");
        });
        inner.resume();
        log.push_back("outer-after-inner-yield");
        y.yield();
        inner.resume();
        log.push_back("outer-end");
    });
    outer.resume();
    log.push_back("main");
    outer.resume();
    EXPECT_TRUE(outer.done());
    EXPECT_EQ(log, (std::vector<std::string>{"inner-1", "outer-after-inner-yield", "main",
                                             "inner-2", "outer-end"}));
}

TEST(Coroutine, ResumedFromAnotherThread) {
    std::vector<std::uintptr_t> seen;
    coop::coroutine co([&](coop::yielder& y) {
        for (int i = 0; i < 4; ++i) seen.push_back(as_int(y.yield(as_ptr(i))));
    });
    co.resume();
    for (int i = 1; i <= 4; ++i) {
        std::thread t([&] { co.resume(as_ptr(100 + i)); });
        t.join();
        EXPECT_FALSE(coop::this_coroutine::inside());
    }
    EXPECT_TRUE(co.done());
    EXPECT_EQ(seen, (std::vector<std::uintptr_t>{101, 102, 103, 104}));
}

TEST(Coroutine, MoveTransfersOwnership) {
    int steps = 0;
    coop::coroutine a([&](coop::yielder& y) { ++steps; y.yield(); ++steps; });
    a.resume();
    coop::coroutine b(std::move(a));
    EXPECT_FALSE(static_cast<bool>(a));
    EXPECT_TRUE(a.done());
    b.resume();
    EXPECT_TRUE(b.done());
    EXPECT_EQ(steps, 2);
    coop::coroutine c;
    c = std::move(b);
    EXPECT_TRUE(c.done());
}

TEST(Coroutine, StacksComeFromThePoolAndGoBack) {
    coop::stack_pool_trim();
    void* first_bottom = nullptr;
    {
        coop::coroutine co([] {});
        first_bottom = co.stack_bottom();
        co.resume();
    }
    EXPECT_EQ(coop::stack_pool_size(), 1u);
    coop::coroutine again([] {});
    EXPECT_EQ(again.stack_bottom(), first_bottom);   // reused, not mapped anew
    EXPECT_EQ(coop::stack_pool_size(), 0u);
}

TEST(Coroutine, InvalidStackSizeIsRejected) {
    EXPECT_THROW(coop::coroutine([] {}, {.stack_size = 0}), std::invalid_argument);
    EXPECT_THROW(coop::coroutine([] {}, {.stack_size = coop::max_stack_size + 1}),
                 std::invalid_argument);
    // A callable that leaves no room to run on its stack is refused too.
    struct big {
        char bytes[64 * 1024];
        void operator()() const {}
    };
    EXPECT_THROW(coop::coroutine(big{}, {.stack_size = 64 * 1024}), std::invalid_argument);
}

// ---------------------------------------------------------------- exception state
// Each coroutine has its own C++ exception state: the caught-exceptions
// stack (std::current_exception(), `throw;`) and std::uncaught_exceptions().

TEST(CoroutineExceptions, CatchBlocksOnBothSidesOfASwitchKeepTheirOwnException) {
    using coop_test::what_of;
    std::vector<std::string> inside;
    coop::coroutine co([&](coop::yielder& y) {
        try {
            throw std::runtime_error("inner");
        } catch (const std::runtime_error& e) {
            y.yield();   // the resumer enters its own catch block and resumes us from there
            inside.push_back(what_of(std::current_exception()));
            try {
                throw;
            } catch (const std::runtime_error& again) {
                inside.push_back(again.what());
            } catch (...) {
                inside.push_back("throw; rethrew a foreign exception");
            }
            inside.push_back(e.what());
            y.yield();
        }   // leaves its handler while the resumer is inside its own
        inside.push_back(what_of(std::current_exception()));
        y.yield();
    });
    co.resume();
    EXPECT_EQ(what_of(std::current_exception()), "none");
    try {
        throw std::logic_error("outer");
    } catch (const std::logic_error& e) {
        co.resume();
        EXPECT_EQ(what_of(std::current_exception()), "outer");
        co.resume();   // the coroutine leaves its catch block
        EXPECT_EQ(what_of(std::current_exception()), "outer");
        EXPECT_STREQ(e.what(), "outer");   // still alive: the coroutine's handler exit did not free it
        try {
            throw;
        } catch (const std::logic_error& again) {
            EXPECT_STREQ(again.what(), "outer");
        } catch (...) {
            ADD_FAILURE() << "throw; rethrew " << what_of(std::current_exception());
        }
    }
    EXPECT_EQ(what_of(std::current_exception()), "none");
    co.resume();
    EXPECT_TRUE(co.done());
    EXPECT_EQ(inside, (std::vector<std::string>{"inner", "inner", "inner", "none"}));
}

TEST(CoroutineExceptions, UncaughtExceptionsAreCountedPerCoroutine) {
    int co_in_dtor = -1, co_after_resume = -1, co_after_catch = -1;
    coop::coroutine co([&](coop::yielder& y) {
        struct yields_while_unwinding {
            coop::yielder& y;
            int& before;
            int& after;
            ~yields_while_unwinding() {
                before = std::uncaught_exceptions();
                y.yield();   // in a destructor run by unwinding: the count travels with us
                after = std::uncaught_exceptions();
            }
        };
        try {
            yields_while_unwinding g{y, co_in_dtor, co_after_resume};
            throw std::runtime_error("unwinding");
        } catch (const std::runtime_error&) {
            co_after_catch = std::uncaught_exceptions();
        }
        y.yield();
    });
    co.resume();   // suspended in the destructor, its exception in flight
    EXPECT_EQ(co_in_dtor, 1);
    EXPECT_EQ(std::uncaught_exceptions(), 0);
    EXPECT_EQ(std::current_exception(), nullptr);

    int main_before = -1, main_after = -1;
    struct resumes_while_unwinding {
        coop::coroutine& co;
        int& before;
        int& after;
        ~resumes_while_unwinding() {
            before = std::uncaught_exceptions();
            co.resume();   // the coroutine finishes its own unwinding and catches
            after = std::uncaught_exceptions();
        }
    };
    try {
        resumes_while_unwinding r{co, main_before, main_after};
        throw 7;
    } catch (int) {
    }
    EXPECT_EQ(main_before, 1);
    EXPECT_EQ(main_after, 1);
    EXPECT_EQ(co_after_resume, 1);
    EXPECT_EQ(co_after_catch, 0);
    EXPECT_EQ(std::uncaught_exceptions(), 0);
    co.resume();
    EXPECT_TRUE(co.done());
}

// ---------------------------------------------------------------- thread moves

thread_local int t_thread_tag = 0;

// One coroutine, resumed alternately by two live threads. Each thread
// resumes it from inside a coroutine of its own that stays running on that
// thread meanwhile, so a stale per-thread pointer would name a live
// coroutine of the other thread (whose stack a wrong yield would take over).
// Inside the mover, after every switch: coop's view of the running coroutine
// is the mover, thread_locals read through COOP_FIBER_LOCAL and errno read
// through coop::fiber_errno() are the resuming thread's, and each kind of
// yield suspends the mover and hands its value to the resumer.
TEST(CoroutineThreads, ResumedAlternatelyFromTwoLiveThreadsKnowsItselfAndItsThread) {
    const int rounds = coop_test::scaled(10000, 5000);
    std::mutex m;
    std::condition_variable cv;
    int turn = 0;                  // which thread resumes next
    bool finished = false;
    int expected_tag = 0;          // the resuming thread's tag, set before each resume
    int bad_id = 0, bad_name = 0, bad_inside = 0, bad_tls = 0, bad_errno = 0, bad_value = 0;
    int bad_home = 0, bad_out = 0;
    std::uintptr_t step = 0;       // the value of the next resume; the mover yields it back

    std::uint64_t mover_id = 0;
    coop::coroutine mover([&](coop::yielder& y) {
        for (int i = 0; i < rounds; ++i) {
            // Read before and after the switch, in one function: a cached
            // thread pointer or errno address would survive the yield.
            if (coop::this_coroutine::id() != mover_id) ++bad_id;
            if (coop::this_coroutine::name() != "mover") ++bad_name;
            if (!coop::this_coroutine::inside()) ++bad_inside;
            if (COOP_FIBER_LOCAL(t_thread_tag) != expected_tag) ++bad_tls;
            if (coop::fiber_errno() != 1000 + expected_tag) ++bad_errno;
            void* in = (i % 2 == 0) ? coop::this_coroutine::yield(as_ptr(i))
                                    : y.yield(as_ptr(i));
            if (as_int(in) != static_cast<std::uintptr_t>(i) + 1) ++bad_value;
        }
        if (coop::this_coroutine::id() != mover_id) ++bad_id;
        if (COOP_FIBER_LOCAL(t_thread_tag) != expected_tag) ++bad_tls;
        if (coop::fiber_errno() != 1000 + expected_tag) ++bad_errno;
    }, {.stack_size = 64 * 1024, .name = "mover"});
    mover_id = mover.id();

    auto resumer = [&](int me) {
        t_thread_tag = me + 1;
        std::uint64_t home_id = 0;
        coop::coroutine home([&] {
            for (;;) {
                {
                    std::unique_lock<std::mutex> lk(m);
                    cv.wait(lk, [&] { return turn == me || finished; });
                    if (finished) return;
                }
                expected_tag = me + 1;
                errno = 1000 + expected_tag;
                void* out = mover.resume(as_ptr(step));
                if (coop::this_coroutine::id() != home_id) ++bad_home;
                if (!mover.done() && as_int(out) != step) ++bad_out;
                ++step;
                std::lock_guard<std::mutex> lk(m);
                if (mover.done()) finished = true;
                turn = 1 - me;
                cv.notify_all();
            }
        }, {.stack_size = 64 * 1024, .name = "home"});
        home_id = home.id();
        home.resume();
    };
    std::thread a([&] { resumer(0); });
    std::thread b([&] { resumer(1); });
    a.join();
    b.join();
    EXPECT_TRUE(mover.done());
    EXPECT_EQ(bad_id, 0);
    EXPECT_EQ(bad_name, 0);
    EXPECT_EQ(bad_inside, 0);
    EXPECT_EQ(bad_tls, 0);
    EXPECT_EQ(bad_errno, 0);
    EXPECT_EQ(bad_value, 0);
    EXPECT_EQ(bad_home, 0);
    EXPECT_EQ(bad_out, 0);
}

// ---------------------------------------------------------------- misuse

TEST(CoroutineMisuse, YielderUsedOutsideItsCoroutineThrowsLogicError) {
    coop::yielder* saved = nullptr;
    int resumed = 0;
    coop::coroutine co([&](coop::yielder& y) {
        saved = &y;
        y.yield();
        ++resumed;
        // from a coroutine nested inside its own: not its coroutine either
        coop::coroutine nested([&] { EXPECT_THROW(saved->yield(), std::logic_error); });
        nested.resume();
        EXPECT_TRUE(nested.done());
        y.yield();
        ++resumed;
    });
    co.resume();
    ASSERT_NE(saved, nullptr);
    EXPECT_THROW(saved->yield(), std::logic_error);          // from the thread's own stack
    EXPECT_THROW((*saved)(as_ptr(3)), std::logic_error);
    coop::coroutine other([&] { EXPECT_THROW(saved->yield(), std::logic_error); });
    other.resume();                                          // from another coroutine
    EXPECT_TRUE(other.done());
    EXPECT_EQ(resumed, 0);
    co.resume();   // the coroutine is intact and still suspended where it was
    EXPECT_EQ(resumed, 1);
    co.resume();
    EXPECT_EQ(resumed, 2);
    EXPECT_TRUE(co.done());
}

// ---------------------------------------------------------------- stack sizes

TEST(CoroutineStacks, TinyStackSizesAreRaisedToTheMinimum) {
    for (std::size_t size : {std::size_t{1}, std::size_t{64}, std::size_t{4095}, std::size_t{4096},
                             std::size_t{4097}, std::size_t{8192}, std::size_t{12288}, std::size_t{16384}}) {
        int used = 0;
        coop::coroutine co([&](coop::yielder& y) {
            volatile char scratch[4096];   // a few KiB of real stack use
            scratch[0] = 1;
            scratch[sizeof scratch - 1] = 2;
            y.yield();
            used = scratch[0] + scratch[sizeof scratch - 1];
        }, {.stack_size = size});
        EXPECT_GE(static_cast<std::size_t>(static_cast<char*>(co.stack_top()) -
                                           static_cast<char*>(co.stack_bottom())),
                  coop::min_stack_size)
            << "stack_size " << size;
        co.resume();
        co.resume();
        EXPECT_TRUE(co.done()) << "stack_size " << size;
        EXPECT_EQ(used, 3) << "stack_size " << size;
    }
}

TEST(CoroutineStacks, CallableTooLargeForItsStackNamesBothSizes) {
    struct big {
        std::array<char, 64 * 1024> bytes{};
        void operator()() const {}
    };
    try {
        coop::coroutine co(big{}, {.stack_size = 16 * 1024});
        FAIL() << "a 64 KiB callable was accepted on a 16 KiB stack";
    } catch (const std::invalid_argument& e) {
        const std::string msg = e.what();
        std::smatch m;
        ASSERT_TRUE(std::regex_search(msg, m, std::regex("callable \\(([0-9]+) bytes\\)"))) << msg;
        EXPECT_GE(std::stoul(m[1].str()), sizeof(big)) << msg;
        EXPECT_NE(msg.find(std::to_string(16 * 1024)), std::string::npos) << msg;
    }
}

// ---------------------------------------------------------------- forced unwind

TEST(CoroutineUnwind, YieldInADestructorDuringForcedUnwindReturnsNullAndUnwindingCompletes) {
    int live = 0;
    void* from_yielder = as_ptr(1);
    void* from_this_coroutine = as_ptr(1);
    bool dtor_finished = false, after_yield = false;
    {
        coop::coroutine co([&](coop::yielder& y) {
            struct yields_in_dtor {
                coop::yielder& y;
                void*& a;
                void*& b;
                bool& done;
                ~yields_in_dtor() {
                    a = y.yield(as_ptr(5));                          // nobody to yield to
                    b = coop::this_coroutine::yield(as_ptr(6));
                    done = true;
                }
            };
            counted outer(&live);
            yields_in_dtor d{y, from_yielder, from_this_coroutine, dtor_finished};
            counted inner(&live);
            y.yield();
            after_yield = true;
        });
        co.resume();
        EXPECT_EQ(live, 2);
    }   // destroyed while suspended: unwound
    EXPECT_EQ(from_yielder, nullptr);
    EXPECT_EQ(from_this_coroutine, nullptr);
    EXPECT_TRUE(dtor_finished);
    EXPECT_EQ(live, 0);   // the destructors before and after it ran too
    EXPECT_FALSE(after_yield);
}

// ---------------------------------------------------------------- registers

// Sets every general-purpose and vector register the ABI lets code use to
// garbage (the asm tells the compiler so, and the compiler of the coroutine
// body keeps its own values safe around it). If the coroutine switch forgot
// to declare any register as changed, the resumer would find this garbage in
// a value it keeps in that register across resume().
void scramble_registers() {
#if defined(__x86_64__)
    asm volatile(
        "movq $0x5a5a5a5a5a5a5a5a, %%rax\n\t"
        "movq %%rax, %%rbx\n\t movq %%rax, %%rcx\n\t movq %%rax, %%rdx\n\t"
        "movq %%rax, %%rsi\n\t movq %%rax, %%rdi\n\t movq %%rax, %%r8\n\t"
        "movq %%rax, %%r9\n\t movq %%rax, %%r10\n\t movq %%rax, %%r11\n\t"
        "movq %%rax, %%r12\n\t movq %%rax, %%r13\n\t movq %%rax, %%r14\n\t movq %%rax, %%r15\n\t"
        "pcmpeqd %%xmm0, %%xmm0\n\t pcmpeqd %%xmm1, %%xmm1\n\t pcmpeqd %%xmm2, %%xmm2\n\t"
        "pcmpeqd %%xmm3, %%xmm3\n\t pcmpeqd %%xmm4, %%xmm4\n\t pcmpeqd %%xmm5, %%xmm5\n\t"
        "pcmpeqd %%xmm6, %%xmm6\n\t pcmpeqd %%xmm7, %%xmm7\n\t pcmpeqd %%xmm8, %%xmm8\n\t"
        "pcmpeqd %%xmm9, %%xmm9\n\t pcmpeqd %%xmm10, %%xmm10\n\t pcmpeqd %%xmm11, %%xmm11\n\t"
        "pcmpeqd %%xmm12, %%xmm12\n\t pcmpeqd %%xmm13, %%xmm13\n\t pcmpeqd %%xmm14, %%xmm14\n\t"
        "pcmpeqd %%xmm15, %%xmm15"
        :
        :
        : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
          "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
#elif defined(__aarch64__)
#  if !defined(__APPLE__)
    // x18 is an ordinary temporary on Linux and the BSDs (reserved on Apple).
    asm volatile("mov x18, #0x5a5a" : : : "x18");
#  endif
    asm volatile(
        "mov x0, #0x5a5a\n\t"
        "mov x1, x0\n\t mov x2, x0\n\t mov x3, x0\n\t mov x4, x0\n\t mov x5, x0\n\t mov x6, x0\n\t"
        "mov x7, x0\n\t mov x8, x0\n\t mov x9, x0\n\t mov x10, x0\n\t mov x11, x0\n\t mov x12, x0\n\t"
        "mov x13, x0\n\t mov x14, x0\n\t mov x15, x0\n\t mov x16, x0\n\t mov x17, x0\n\t"
        "mov x19, x0\n\t mov x20, x0\n\t mov x21, x0\n\t mov x22, x0\n\t mov x23, x0\n\t"
        "mov x24, x0\n\t mov x25, x0\n\t mov x26, x0\n\t mov x27, x0\n\t mov x28, x0\n\t"
        "movi v0.2d, #-1\n\t movi v1.2d, #-1\n\t movi v2.2d, #-1\n\t movi v3.2d, #-1\n\t"
        "movi v4.2d, #-1\n\t movi v5.2d, #-1\n\t movi v6.2d, #-1\n\t movi v7.2d, #-1\n\t"
        "movi v8.2d, #-1\n\t movi v9.2d, #-1\n\t movi v10.2d, #-1\n\t movi v11.2d, #-1\n\t"
        "movi v12.2d, #-1\n\t movi v13.2d, #-1\n\t movi v14.2d, #-1\n\t movi v15.2d, #-1\n\t"
        "movi v16.2d, #-1\n\t movi v17.2d, #-1\n\t movi v18.2d, #-1\n\t movi v19.2d, #-1\n\t"
        "movi v20.2d, #-1\n\t movi v21.2d, #-1\n\t movi v22.2d, #-1\n\t movi v23.2d, #-1\n\t"
        "movi v24.2d, #-1\n\t movi v25.2d, #-1\n\t movi v26.2d, #-1\n\t movi v27.2d, #-1\n\t"
        "movi v28.2d, #-1\n\t movi v29.2d, #-1\n\t movi v30.2d, #-1\n\t movi v31.2d, #-1"
        :
        :
        : "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12",
          "x13", "x14", "x15", "x16", "x17", "x19", "x20", "x21", "x22", "x23", "x24", "x25",
          "x26", "x27", "x28", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
          "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21",
          "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31", "cc", "memory");
#endif
}

// Values the resumer holds across resume(): forced into registers right
// before the switch, used right after it.
template <class Resume>
bool values_survive(Resume&& resume, std::uint64_t seed) {
    std::uint64_t a = seed * 3 + 1, b = seed * 5 + 2, c = seed * 7 + 3, d = seed * 11 + 4;
    std::uint64_t e = seed * 13 + 5, g = seed * 17 + 6, h = seed * 19 + 7;
    double x = static_cast<double>(seed) * 0.5, y = x + 1.25, z = x - 3.5, w = x * 2;
    asm volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d), "+r"(e), "+r"(g), "+r"(h));
#if defined(__x86_64__)
    asm volatile("" : "+x"(x), "+x"(y), "+x"(z), "+x"(w));
#else
    asm volatile("" : "+w"(x), "+w"(y), "+w"(z), "+w"(w));
#endif
    resume();
    const double fs = static_cast<double>(seed) * 0.5;
    return a == seed * 3 + 1 && b == seed * 5 + 2 && c == seed * 7 + 3 && d == seed * 11 + 4 &&
           e == seed * 13 + 5 && g == seed * 17 + 6 && h == seed * 19 + 7 && x == fs &&
           y == fs + 1.25 && z == fs - 3.5 && w == fs * 2;
}

TEST(Coroutine, ResumerValuesSurviveARegisterScramblingCoroutine) {
    for (bool fp : {false, true}) {
        coop::coroutine co([](coop::yielder& y) {
            for (;;) {
                scramble_registers();
                y.yield();
            }
        }, {.preserve_fp_env = fp});
        int bad = 0;
        for (std::uint64_t i = 1; i <= 2000; ++i)
            if (!values_survive([&] { co.resume(); }, i)) ++bad;
        EXPECT_EQ(bad, 0) << "preserve_fp_env=" << fp;
    }
}

TEST(Coroutine, CoroutineValuesSurviveARegisterScramblingResumer) {
    int bad = 0;
    coop::coroutine co([&](coop::yielder& y) {
        for (std::uint64_t i = 1;; ++i)
            if (!values_survive([&] { y.yield(); }, i)) ++bad;
    });
    for (int i = 0; i < 2000; ++i) {
        co.resume();
        scramble_registers();
    }
    EXPECT_EQ(bad, 0);
}

// ---------------------------------------------------------------- FP env

class CoroutineFp : public ::testing::Test {
protected:
    void SetUp() override { std::fegetenv(&env_); }
    void TearDown() override { std::fesetenv(&env_); }
    std::fenv_t env_{};
};

TEST_F(CoroutineFp, PreservingCoroutineKeepsItsOwnRoundingMode) {
    std::vector<int> inside;
    coop::coroutine co([&](coop::yielder& y) {
        std::fesetround(FE_TOWARDZERO);
        for (int i = 0; i < 5; ++i) {
            y.yield();
            inside.push_back(std::fegetround());
        }
    }, {.preserve_fp_env = true});
    std::fesetround(FE_UPWARD);
    for (int i = 0; i < 6; ++i) {
        co.resume();
        EXPECT_EQ(std::fegetround(), FE_UPWARD) << "resume " << i;
    }
    EXPECT_TRUE(co.done());
    EXPECT_EQ(inside, std::vector<int>(5, FE_TOWARDZERO));
}

TEST_F(CoroutineFp, DefaultCoroutineSharesTheThreadsRoundingMode) {
    coop::coroutine co([](coop::yielder& y) {
        std::fesetround(FE_TOWARDZERO);
        y.yield();
    });
    std::fesetround(FE_UPWARD);
    co.resume();
    EXPECT_EQ(std::fegetround(), FE_TOWARDZERO);   // documented: shared, not restored
    co.resume();
}

// ---------------------------------------------------------------- generator

TEST(Generator, RangeForYieldsEveryValueInOrder) {
    coop::generator<int> squares([](coop::generator<int>::sink& out) {
        for (int i = 0; i < 6; ++i) out(i * i);
    });
    std::vector<int> got;
    for (int v : squares) got.push_back(v);
    EXPECT_EQ(got, (std::vector<int>{0, 1, 4, 9, 16, 25}));
    EXPECT_TRUE(squares.done());
}

TEST(Generator, NextReturnsNulloptAtTheEnd) {
    coop::generator<std::string> words([](coop::generator<std::string>::sink& out) {
        out(std::string("alpha"));
        std::string b = "beta";
        out(b);
    });
    EXPECT_EQ(words.next(), std::optional<std::string>("alpha"));
    EXPECT_EQ(words.next(), std::optional<std::string>("beta"));
    EXPECT_EQ(words.next(), std::nullopt);
    EXPECT_EQ(words.next(), std::nullopt);
}

TEST(Generator, InfiniteGeneratorStoppedEarlyUnwinds) {
    int live = 0;
    {
        coop::generator<std::uint64_t> fib([&](coop::generator<std::uint64_t>::sink& out) {
            counted guard(&live);
            std::uint64_t a = 0, b = 1;
            for (;;) {
                out(a);
                b = a + b;
                a = b - a;
            }
        });
        std::vector<std::uint64_t> first;
        for (auto v : fib) {
            if (first.size() == 10) break;
            first.push_back(v);
        }
        EXPECT_EQ(first, (std::vector<std::uint64_t>{0, 1, 1, 2, 3, 5, 8, 13, 21, 34}));
        EXPECT_EQ(live, 1);
    }
    EXPECT_EQ(live, 0);
}

TEST(Generator, ValuesFromNestedCalls) {
    struct walk {
        static void tree(coop::generator<int>::sink& out, int lo, int hi) {
            if (lo > hi) return;
            int mid = (lo + hi) / 2;
            tree(out, lo, mid - 1);
            out(mid);
            tree(out, mid + 1, hi);
        }
    };
    coop::generator<int> inorder([](coop::generator<int>::sink& out) { walk::tree(out, 1, 100); });
    int expect = 1;
    for (int v : inorder) EXPECT_EQ(v, expect++);
    EXPECT_EQ(expect, 101);
}

TEST(Generator, ExceptionReachesTheConsumer) {
    coop::generator<int> g([](coop::generator<int>::sink& out) {
        out(1);
        throw std::runtime_error("generator failed");
    });
    auto it = g.begin();
    EXPECT_EQ(*it, 1);
    EXPECT_THROW(++it, std::runtime_error);
    // the body has ended: no value is left to point at
    EXPECT_TRUE(it == g.end());
    EXPECT_EQ(g.next(), std::nullopt);
    EXPECT_TRUE(g.begin() == g.end());
}

// A generator of the words w0, w1, ... w<n-1> (strings long enough to live
// on the heap, so that a moved-from one is visibly empty).
coop::generator<std::string> words(int n) {
    return coop::generator<std::string>([n](coop::generator<std::string>::sink& out) {
        for (int i = 0; i < n; ++i) out("word number " + std::to_string(i) + " of the sequence");
    });
}
std::string word(int i) { return "word number " + std::to_string(i) + " of the sequence"; }

TEST(Generator, RangeForAfterNextStartsAfterTheValueNextReturned) {
    auto g = words(4);
    EXPECT_EQ(g.next(), word(0));
    std::vector<std::string> rest;
    for (const std::string& w : g) rest.push_back(w);
    EXPECT_EQ(rest, (std::vector<std::string>{word(1), word(2), word(3)}));
}

TEST(Generator, SecondRangeForAfterBreakContinuesWithTheNextValue) {
    auto g = words(6);
    std::vector<std::string> first, second;
    for (const std::string& w : g) {
        first.push_back(w);
        if (first.size() == 2) break;
    }
    for (const std::string& w : g) second.push_back(w);
    EXPECT_EQ(first, (std::vector<std::string>{word(0), word(1)}));
    EXPECT_EQ(second, (std::vector<std::string>{word(2), word(3), word(4), word(5)}));
    // a third loop and next() find nothing left
    for (const std::string& w : g) ADD_FAILURE() << "delivered again: " << w;
    EXPECT_EQ(g.next(), std::nullopt);
}

TEST(Generator, EveryMixOfNextBeginAndIncrementDeliversEachValueOnce) {
    coop::generator<int> g([](coop::generator<int>::sink& out) {
        for (int i = 0; i < 10; ++i) out(i);
    });
    std::vector<int> got;
    auto a = g.begin();
    got.push_back(*a);                // 0
    got.push_back(*g.next());         // 1: after what `a` delivered
    auto b = g.begin();               // at 2
    got.push_back(*b);                // 2
    got.push_back(*b);                // the same value, same delivery: read twice
    ++b;                              // 3, not delivered yet
    got.push_back(*g.next());         // 3: the value b points at, moved out
    auto c = g.begin();               // nothing delivered at 3 twice: c is at 4
    got.push_back(*c);                // 4
    for (int v : g) got.push_back(v); // 5..9
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(g.next(), std::nullopt);
}

TEST(Generator, StaleIteratorThrowsInsteadOfRepeatingAValue) {
    auto g = words(3);
    auto a = g.begin();
    EXPECT_EQ(*a, word(0));
    EXPECT_EQ(g.next(), word(1));     // moves on without a
    EXPECT_THROW((void)*a, std::logic_error);
    EXPECT_THROW(++a, std::logic_error);
    auto b = g.begin();
    EXPECT_EQ(*b, word(2));
}

TEST(Generator, LvaluesAreCopiedAndNeverMovedFrom) {
    std::string after_const, after_var;
    coop::generator<std::string> g([&](coop::generator<std::string>::sink& out) {
        const std::string fixed = "a const string, long enough to be on the heap";
        std::string var = "a mutable string, long enough to be on the heap";
        out(fixed);
        after_const = fixed;
        out(var);
        after_var = var;
        out(var);   // the consumer moves out of what it got: var must not change
        after_var += " | " + var;
    });
    EXPECT_EQ(g.next(), "a const string, long enough to be on the heap");
    EXPECT_EQ(g.next(), "a mutable string, long enough to be on the heap");
    auto it = g.begin();
    std::string taken = std::move(*it);
    EXPECT_EQ(taken, "a mutable string, long enough to be on the heap");
    ++it;
    EXPECT_TRUE(it == g.end());
    EXPECT_EQ(after_const, "a const string, long enough to be on the heap");
    EXPECT_EQ(after_var, "a mutable string, long enough to be on the heap | "
                         "a mutable string, long enough to be on the heap");
}

struct copy_count {
    int* copies;
    explicit copy_count(int* c) : copies(c) {}
    copy_count(const copy_count& o) : copies(o.copies) { ++*copies; }
    copy_count(copy_count&&) noexcept = default;
    copy_count& operator=(const copy_count& o) {
        copies = o.copies;
        ++*copies;
        return *this;
    }
    copy_count& operator=(copy_count&&) noexcept = default;
};

TEST(Generator, RvaluesAreMovedNotCopied) {
    int copies = 0;
    coop::generator<copy_count> g([&](coop::generator<copy_count>::sink& out) {
        out(copy_count(&copies));
        copy_count named(&copies);
        out(std::move(named));
        out(named);   // an lvalue: one copy
    });
    EXPECT_TRUE(g.next().has_value());
    EXPECT_TRUE(g.next().has_value());
    EXPECT_EQ(copies, 0);
    EXPECT_TRUE(g.next().has_value());
    EXPECT_EQ(copies, 1);
    EXPECT_FALSE(g.next().has_value());

    coop::generator<std::unique_ptr<int>> owners([](coop::generator<std::unique_ptr<int>>::sink& out) {
        out(std::make_unique<int>(7));
    });
    auto p = owners.next();
    ASSERT_TRUE(p && *p);
    EXPECT_EQ(**p, 7);
}

} // namespace
