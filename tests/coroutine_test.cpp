// tests/coroutine_test.cpp — coop::coroutine and coop::generator.
#include <coop/coroutine.hpp>
#include <coop/generator.hpp>

#include <gtest/gtest.h>

#include <cfenv>
#include <cstdint>
#include <memory>
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
}

} // namespace
