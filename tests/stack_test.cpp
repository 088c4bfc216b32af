// tests/stack_test.cpp — coop::stack: sizes, guard pages, lazy commit, pool.
#include <coop/detail/fiber_hooks.hpp>   // COOP_ASAN / COOP_TSAN
#include <coop/stack.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

std::size_t page() { return coop::stack::page_size(); }

// A write to a guard page kills the process with SIGSEGV. In sanitizer
// builds the sanitizer's own SEGV handler reports the fault and exits with
// an error status instead; its report names the fault.
#if defined(COOP_ASAN) || defined(COOP_TSAN)
constexpr bool kSanitized = true;
constexpr const char* kSegvReport = "SEGV";
#else
constexpr bool kSanitized = false;
constexpr const char* kSegvReport = "";
#endif
bool died_of_segv(int status) {
    if (WIFSIGNALED(status)) return WTERMSIG(status) == SIGSEGV;
    return kSanitized && WIFEXITED(status) && WEXITSTATUS(status) != 0;
}

TEST(Stack, SizesAreRoundedToPages) {
    EXPECT_EQ(coop::stack(1).size(), page());
    EXPECT_EQ(coop::stack(page()).size(), page());
    EXPECT_EQ(coop::stack(page() + 1).size(), 2 * page());
    EXPECT_EQ(coop::stack::round_size(3 * page() - 5), 3 * page());
}

TEST(Stack, BadSizesThrowInvalidArgument) {
    EXPECT_THROW(coop::stack(0), std::invalid_argument);
    EXPECT_THROW(coop::stack(coop::max_stack_size + 1), std::invalid_argument);
    EXPECT_THROW(coop::stack(static_cast<std::size_t>(-1)), std::invalid_argument);
    EXPECT_THROW(coop::stack::pooled(0), std::invalid_argument);
    EXPECT_EQ(coop::stack::round_size(0), 0u);
}

TEST(Stack, LayoutIsGuardThenUsableRange) {
    coop::stack s(10 * page());
    ASSERT_TRUE(s);
    EXPECT_EQ(static_cast<char*>(s.top()) - static_cast<char*>(s.bottom()),
              static_cast<std::ptrdiff_t>(s.size()));
    EXPECT_EQ(static_cast<char*>(s.guard_lo()) + s.guard_size(), s.bottom());
    EXPECT_GE(s.guard_size(), page());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.top()) % page(), 0u);
    // the whole usable range is writable
    std::memset(s.bottom(), 0xA5, s.size());
    EXPECT_EQ(static_cast<unsigned char*>(s.bottom())[s.size() - 1], 0xA5);
}

TEST(Stack, GuardPageFaults) {
    coop::stack s(4 * page());
    EXPECT_EXIT(
        {
            volatile char* p = static_cast<char*>(s.bottom()) - 1;
            *p = 1;
            std::_Exit(0);   // not reached when the guard works
        },
        died_of_segv, kSegvReport);
}

// Pages of [lo, lo + len) that are in memory, asked of the kernel directly.
std::size_t resident_in(void* lo, std::size_t len) {
    std::vector<unsigned char> v(len / page());
    if (::mincore(lo, len, v.data()) != 0) return static_cast<std::size_t>(-1);
    std::size_t n = 0;
    for (unsigned char c : v) n += c & 1;
    return n;
}

TEST(Stack, MemoryIsCommittedOnlyWhenTouched) {
    coop::stack s(64u << 20);   // 64 MiB reserved
    EXPECT_EQ(resident_in(s.bottom(), s.size()), 0u) << "reserving must not commit";
    // touch 16 pages at the top, as a shallow coroutine would
    char* top = static_cast<char*>(s.top());
    for (int i = 1; i <= 16; ++i) top[-static_cast<long>(i * page())] = 1;
    EXPECT_EQ(resident_in(s.bottom(), s.size()), 16u);
}

TEST(Stack, MoveLeavesTheSourceEmpty) {
    coop::stack a(page());
    void* bottom = a.bottom();
    coop::stack b(std::move(a));
    EXPECT_FALSE(a);
    EXPECT_EQ(b.bottom(), bottom);
    coop::stack c;
    c = std::move(b);
    EXPECT_FALSE(b);
    EXPECT_EQ(c.bottom(), bottom);
}

TEST(Stack, PoolReusesStacksOfTheSameSize) {
    coop::stack_pool_trim();
    void* bottom = nullptr;
    {
        coop::stack s = coop::stack::pooled(64 * 1024);
        EXPECT_TRUE(s.is_pooled());
        bottom = s.bottom();
    }
    EXPECT_EQ(coop::stack_pool_size(), 1u);
    {
        coop::stack other = coop::stack::pooled(128 * 1024);   // different size: fresh
        EXPECT_NE(other.bottom(), bottom);
    }
    EXPECT_EQ(coop::stack_pool_size(), 2u);
    coop::stack again = coop::stack::pooled(64 * 1024);
    EXPECT_EQ(again.bottom(), bottom);
    EXPECT_EQ(coop::stack_pool_size(), 1u);
    coop::stack_pool_trim();
    EXPECT_EQ(coop::stack_pool_size(), 0u);
}

TEST(Stack, PoolIsBoundedPerThread) {
    coop::stack_pool_trim();
    {
        std::vector<coop::stack> many;
        for (std::size_t i = 0; i < coop::pool_capacity + 10; ++i)
            many.push_back(coop::stack::pooled(16 * 1024));
    }
    EXPECT_EQ(coop::stack_pool_size(), coop::pool_capacity);
    coop::stack_pool_trim();
}

TEST(Stack, PlainStacksDoNotEnterThePool) {
    coop::stack_pool_trim();
    { coop::stack s(16 * 1024); EXPECT_FALSE(s.is_pooled()); }
    EXPECT_EQ(coop::stack_pool_size(), 0u);
}

std::size_t mapping_count() {
    std::ifstream f("/proc/self/maps");
    std::size_t n = 0;
    std::string line;
    while (std::getline(f, line)) ++n;
    return n;
}

TEST(Stack, GuardInstallDoesNotSplitMappings) {
    if (!coop::stack::guard_without_split())
        GTEST_SKIP() << "this kernel (or emulator) lacks MADV_GUARD_INSTALL; guards use mprotect";
    const std::size_t before = mapping_count();
    std::vector<coop::stack> stacks;
    for (int i = 0; i < 2000; ++i) stacks.emplace_back(16 * 1024);
    const std::size_t after = mapping_count();
    // mprotect guards would add 2 mappings per stack (4000); guard regions
    // leave neighbours mergeable, so growth stays far below one per stack.
    EXPECT_LT(after - before, 200u);
    // and the guards still fault
    EXPECT_EXIT(
        {
            volatile char* p = static_cast<char*>(stacks[1000].bottom()) - 1;
            *p = 1;
            std::_Exit(0);
        },
        died_of_segv, kSegvReport);
}

} // namespace
