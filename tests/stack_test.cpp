// tests/stack_test.cpp — coop::stack: sizes, guard pages, lazy commit, pool.
#include <coop/detail/fiber_hooks.hpp>   // COOP_ASAN / COOP_TSAN
#include <coop/stack.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <string>
#include <thread>
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
// ThreadSanitizer maps shadow memory for what the program maps, in mappings
// of its own that it keeps: there the process's mapping count says little
// about coop's, and TSan aborts when the kernel refuses it a mapping.
#if defined(COOP_TSAN)
constexpr bool kCountsOwnMappings = false;
#else
constexpr bool kCountsOwnMappings = true;
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

// Address ranges that stacks occupied, guards included. mapped() reads
// /proc/self/maps line by line and adds up how much of the ranges is
// mapped now (it allocates nothing that grows with the mapping count: the
// test must still report when the process can no longer map memory).
class stack_ranges {
public:
    explicit stack_ranges(std::size_t n) { v_.reserve(n); }
    void add(const coop::stack& s) {
        v_.push_back({reinterpret_cast<std::uintptr_t>(s.guard_lo()),
                      reinterpret_cast<std::uintptr_t>(s.top())});
    }
    // Sorted and merged; call once after the last add().
    void finish() {
        std::sort(v_.begin(), v_.end());
        std::size_t out = 0;
        for (const range& r : v_) {
            if (out > 0 && r.lo <= v_[out - 1].hi) v_[out - 1].hi = std::max(v_[out - 1].hi, r.hi);
            else v_[out++] = r;
        }
        v_.resize(out);
    }
    // Bytes of the ranges some mapping covers; the first few such mappings
    // are described in `first`.
    std::size_t mapped(std::string* first = nullptr) const {
        std::ifstream f("/proc/self/maps");
        std::string line;
        std::size_t n = 0, shown = 0;
        while (std::getline(f, line)) {
            char* end = nullptr;
            const std::uintptr_t lo = std::strtoull(line.c_str(), &end, 16);
            if (!end || *end != '-') continue;
            const std::uintptr_t hi = std::strtoull(end + 1, nullptr, 16);
            const std::size_t before = n;
            auto it = std::lower_bound(v_.begin(), v_.end(), lo,
                                       [](const range& r, std::uintptr_t a) { return r.hi <= a; });
            for (; it != v_.end() && it->lo < hi; ++it)
                n += std::min(hi, it->hi) - std::max(lo, it->lo);
            if (n != before && first && shown++ < 8) *first += line + "\n";
        }
        return n;
    }

private:
    struct range {
        std::uintptr_t lo, hi;
        bool operator<(const range& o) const { return lo < o.lo; }
    };
    std::vector<range> v_;
};

// A fresh mapping and a fresh thread both still work.
void expect_process_can_still_map() {
    void* m = ::mmap(nullptr, 1u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(m, MAP_FAILED) << "mmap: " << std::strerror(errno);
    if (m != MAP_FAILED) {
        EXPECT_EQ(::munmap(m, 1u << 20), 0);
    }
    bool ran = false;
    try {
        std::thread t([&] { ran = true; });
        t.join();
    } catch (const std::system_error& e) {
        ADD_FAILURE() << "std::thread: " << e.what();
    }
    EXPECT_TRUE(ran);
}

// Half of many stacks freed in an order that leaves a live stack between
// every two freed ones. A layout with one mapping per stack, where guards do
// not split mappings and neighbours merge, would need one VMA per survivor:
// past vm.max_map_count the kernel refuses the munmap, memory stays mapped
// after everything is destroyed, and every later mmap in the process fails.
TEST(StackScale, OutOfOrderFreeKeepsTheMappingCountBounded) {
    // With mprotect guards every live stack is two VMAs whatever the layout,
    // so the test holds as many as fit comfortably under the default limit.
    const bool split = !coop::stack::guard_without_split();
    const std::size_t n = split ? 12000 : 140000;
    const std::size_t size = 16 * 1024;
    coop::stack_pool_trim();
    const std::size_t before = mapping_count();
    stack_ranges all(n + n / 2);
    {
        std::vector<coop::stack> stacks;
        stacks.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            stacks.emplace_back(size);
            all.add(stacks.back());
        }
        for (std::size_t i = 0; i < n; i += 2) stacks[i] = coop::stack();
        const std::size_t live = n / 2;
        const std::size_t during = mapping_count();
        if (kCountsOwnMappings) {
            if (split)
                EXPECT_LE(during, before + 2 * live + 64);   // two VMAs per live stack, no more
            else
                EXPECT_LE(during, before + live / 16) << "the survivors split the stacks' mappings";
        }
        expect_process_can_still_map();
        // the survivors are intact and usable (a sample: touching all would
        // commit a page each)
        for (std::size_t i = 1; i < n; i += 2 * 17) {
            static_cast<char*>(stacks[i].top())[-1] = 1;
            ASSERT_EQ(static_cast<char*>(stacks[i].top())[-1], 1);
        }
        // and the freed ones can be had again, in the holes or elsewhere
        for (std::size_t i = 0; i < n; i += 2) {
            stacks[i] = coop::stack(size);
            all.add(stacks[i]);
        }
    }
    coop::stack_pool_trim();
    all.finish();
    std::string left;
    EXPECT_EQ(all.mapped(&left), 0u)
        << "stack memory still mapped after destroy + trim:\n" << left;
    // glibc keeps the stack and the malloc arena of the thread started above
    if (kCountsOwnMappings) {
        EXPECT_LE(mapping_count(), before + 16);
    }
    expect_process_can_still_map();
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

TEST(Stack, ADestroyedStackGivesItsPagesBack) {
    coop::stack_pool_trim();
    const std::size_t pages = 32;
    // Neighbours of the same size keep the stack's slab in use, so its range
    // normally stays mapped and only its pages go.
    coop::stack before(pages * page());
    coop::stack s(pages * page());
    coop::stack after(pages * page());
    std::memset(s.bottom(), 1, s.size());
    ASSERT_EQ(resident_in(s.bottom(), s.size()), pages);
    void* lo = s.bottom();
    s = coop::stack();
    std::vector<unsigned char> v(pages);
    if (::mincore(lo, pages * page(), v.data()) == 0) {
        std::size_t resident = 0;
        for (unsigned char c : v) resident += c & 1;
        EXPECT_EQ(resident, 0u) << "the freed stack's pages are still in memory";
    } else {
        EXPECT_EQ(errno, ENOMEM);   // or the range was unmapped altogether
    }
}

TEST(Stack, APooledStackKeepsItsPagesUntilTrim) {
    coop::stack_pool_trim();
    const std::size_t pages = 16;
    coop::stack neighbour(pages * page());
    void* lo = nullptr;
    {
        coop::stack s = coop::stack::pooled(pages * page());
        lo = s.bottom();
        std::memset(s.bottom(), 1, s.size());
    }
    ASSERT_EQ(coop::stack_pool_size(), 1u);
    EXPECT_EQ(resident_in(lo, pages * page()), pages);   // documented: kept while pooled
    coop::stack_pool_trim();
    EXPECT_EQ(coop::stack_pool_size(), 0u);
    std::vector<unsigned char> v(pages);
    if (::mincore(lo, pages * page(), v.data()) == 0) {
        std::size_t resident = 0;
        for (unsigned char c : v) resident += c & 1;
        EXPECT_EQ(resident, 0u) << "trim left the pooled stack's pages in memory";
    } else {
        EXPECT_EQ(errno, ENOMEM);
    }
}

TEST(Stack, AReusedStackIsStillGuarded) {
    coop::stack_pool_trim();
    const std::size_t size = 6 * page();
    coop::stack keep(size);
    coop::stack first(size);
    first = coop::stack();
    coop::stack again(size);   // the range `first` left, or a fresh one
    std::memset(again.bottom(), 2, again.size());
    EXPECT_EXIT(
        {
            volatile char* p = static_cast<char*>(again.bottom()) - 1;
            *p = 1;
            std::_Exit(0);
        },
        died_of_segv, kSegvReport);
}

TEST(Stack, MemoryUsageCountsStacksAndSlabs) {
    coop::stack_pool_trim();
    const std::size_t size = 7 * page();
    const coop::stack_memory before = coop::stack_memory_usage();
    {
        std::vector<coop::stack> v;
        for (int i = 0; i < 10; ++i) v.emplace_back(size);
        v.push_back(coop::stack::pooled(size));
        const coop::stack_memory during = coop::stack_memory_usage();
        EXPECT_EQ(during.stacks, before.stacks + 11);
        const std::size_t per = coop::stack::stacks_per_slab(size);
        ASSERT_GE(per, 1u);
        EXPECT_GE(during.slabs, before.slabs + (11 + per - 1) / per);
        EXPECT_GE(during.mapped_bytes, before.mapped_bytes + 11 * (size + page()));
    }
    // the pooled one waits in this thread's pool and still counts
    EXPECT_EQ(coop::stack_memory_usage().stacks, before.stacks + 1);
    coop::stack_pool_trim();
    const coop::stack_memory after = coop::stack_memory_usage();
    EXPECT_EQ(after.stacks, before.stacks);
    EXPECT_LE(after.slabs, before.slabs);
    EXPECT_EQ(after.release_failures, before.release_failures);
}

TEST(Stack, StacksPerSlab) {
    EXPECT_EQ(coop::stack::stacks_per_slab(0), 0u);
    EXPECT_EQ(coop::stack::stacks_per_slab(coop::max_stack_size + 1), 0u);
    EXPECT_EQ(coop::stack::stacks_per_slab(coop::max_stack_size), 1u);
    if (coop::stack::guard_without_split())
        EXPECT_EQ(coop::stack::stacks_per_slab(coop::default_stack_size), 64u);
    else
        EXPECT_EQ(coop::stack::stacks_per_slab(coop::default_stack_size), 1u);
}

// Stacks made on one thread, some freed there, the rest freed on another;
// both threads end. Whatever sat in their pools goes back to the slabs and
// a trim on a third thread unmaps it all.
TEST(StackScale, StacksFreedOnAnotherThreadAreReleasedWhenThreadsEnd) {
    const bool split = !coop::stack::guard_without_split();
    const std::size_t n = split ? 7000 : 20000;   // the freer frees more than its pool holds
    const std::size_t size = 24 * 1024;
    coop::stack_pool_trim();
    const coop::stack_memory before = coop::stack_memory_usage();
    std::vector<coop::stack> made;
    stack_ranges all(n);
    std::thread maker([&] {
        made.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            made.push_back(coop::stack::pooled(size));
            all.add(made.back());
        }
        for (std::size_t i = 0; i < n; i += 3) made[i] = coop::stack();   // into this thread's pool
    });
    maker.join();
    std::size_t pooled_on_freer = 0, freed_by_freer = 0;
    std::thread freer([&] {
        for (std::size_t i = 1; i < n; i += 2) {
            if (made[i]) ++freed_by_freer;
            made[i] = coop::stack();
        }
        for (coop::stack& s : made) {
            if (s) ++freed_by_freer;
            s = coop::stack();
        }
        pooled_on_freer = coop::stack_pool_size();
    });
    freer.join();
    EXPECT_EQ(pooled_on_freer, std::min(freed_by_freer, coop::pool_capacity));
    EXPECT_EQ(coop::stack_pool_size(), 0u);
    EXPECT_EQ(coop::stack_memory_usage().stacks, before.stacks) << "stacks pooled by ended threads were lost";
    coop::stack_pool_trim();
    all.finish();
    std::string left;
    EXPECT_EQ(all.mapped(&left), 0u) << "stack memory still mapped after the threads ended + trim:\n" << left;
    expect_process_can_still_map();
}

// True when one mapping covers all of [lo, hi).
bool one_mapping_covers(std::uintptr_t lo, std::uintptr_t hi) {
    std::ifstream f("/proc/self/maps");
    std::string line;
    while (std::getline(f, line)) {
        char* end = nullptr;
        const std::uintptr_t a = std::strtoull(line.c_str(), &end, 16);
        const std::uintptr_t b = std::strtoull(end + 1, nullptr, 16);
        if (a <= lo && hi <= b) return true;
    }
    return false;
}

// The kernel refuses to unmap a slab in the middle of merged slabs when the
// split would pass vm.max_map_count. Nothing may be lost: the slab stays
// registered, its stacks are handed out again (without any new mapping,
// which the kernel would refuse too), and a later trim unmaps it.
TEST(StackScale, UnmapRefusedAtTheMappingLimitLosesNothing) {
    if (!coop::stack::guard_without_split())
        GTEST_SKIP() << "needs MADV_GUARD_INSTALL: with mprotect guards a slab is one stack of two "
                        "VMAs and unmapping it never splits a VMA";
    if (!kCountsOwnMappings)
        GTEST_SKIP() << "ThreadSanitizer needs mappings of its own and aborts at the mapping limit";
    long limit = 0;
    {
        std::ifstream f("/proc/sys/vm/max_map_count");
        f >> limit;
    }
    if (limit <= 0 || limit > (1 << 18))
        GTEST_SKIP() << "vm.max_map_count is " << limit << ": too large to fill in a test";
    const std::size_t size = 13 * page();   // a size no other test uses
    const std::size_t per = coop::stack::stacks_per_slab(size);
    ASSERT_GE(per, 2u);
    coop::stack_pool_trim();
    std::vector<coop::stack> stacks;
    stacks.reserve(4 * per);
    stack_ranges all(8 * per);
    std::uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (std::size_t i = 0; i < 4 * per; ++i) {
        stacks.emplace_back(size);
        all.add(stacks.back());
        lo = std::min(lo, reinterpret_cast<std::uintptr_t>(stacks.back().guard_lo()));
        hi = std::max(hi, reinterpret_cast<std::uintptr_t>(stacks.back().top()));
    }
    if (hi - lo != 4 * per * (size + page()) || !one_mapping_covers(lo, hi))
        GTEST_SKIP() << "the four slabs did not end up side by side in one merged VMA";

    // Use up the mapping count: one-page mappings that cannot merge.
    std::vector<void*> filler;
    filler.reserve(static_cast<std::size_t>(limit));
    for (int prot = PROT_READ;; prot ^= PROT_READ) {
        void* m = ::mmap(nullptr, page(), prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) break;
        filler.push_back(m);
        if (filler.size() == filler.capacity()) break;
    }
    const coop::stack_memory full = coop::stack_memory_usage();
    // Freed slab by slab: the first becomes the spare, the next ones sit
    // between merged neighbours and cannot be unmapped now.
    stacks.clear();
    const coop::stack_memory refused = coop::stack_memory_usage();
    // All stacks again: the slabs kept serve them; the process has no
    // mapping to spare, so none of them may need a new one.
    std::size_t made = 0;
    try {
        for (std::size_t i = 0; i < 3 * per; ++i) {
            stacks.emplace_back(size);
            static_cast<char*>(stacks.back().top())[-1] = 1;
            ++made;
        }
    } catch (const std::system_error&) {
    }
    const coop::stack_memory reused = coop::stack_memory_usage();
    stacks.clear();
    for (void* m : filler) ASSERT_EQ(::munmap(m, page()), 0);
    filler.clear();

    EXPECT_GE(refused.release_failures, full.release_failures + 1);
    EXPECT_GE(refused.slabs + 1, full.slabs) << "refused slabs must stay registered";
    EXPECT_EQ(made, 3 * per) << "stacks of the slabs kept could not be had again at the limit";
    EXPECT_EQ(reused.slabs, refused.slabs) << "a slab was mapped although slabs were kept";
    coop::stack_pool_trim();   // now the unmaps go through
    all.finish();
    std::string left;
    EXPECT_EQ(all.mapped(&left), 0u) << "slabs refused at the limit stayed mapped after trim:\n" << left;
    expect_process_can_still_map();
}

} // namespace
