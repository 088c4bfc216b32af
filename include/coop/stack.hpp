// coop/stack.hpp — stacks for coroutines.
//
// A coop::stack is a range of anonymous private memory, reserved but not
// committed: only the pages a coroutine actually touches cost memory. Below
// the usable range sits one guard page that faults on overflow.
//
// Slabs. Stacks of one size are cut from slabs: one mapping holds up to 64
// stacks (at most 64 MiB of them, or a single larger stack), each a guard
// page followed by its usable range. Destroying a stack gives its pages back
// to the kernel (madvise MADV_DONTNEED) and keeps its range for the next
// stack of that size; a slab is unmapped, whole, when none of its stacks is
// in use. One empty slab per size is kept for reuse until stack_pool_trim().
//
// Guard pages and vm.max_map_count (65530 by default). Where the kernel has
// MADV_GUARD_INSTALL (Linux 6.13+), coop installs guards with it: a slab
// stays one kernel VMA (neighbouring slabs may merge into one), so stacks
// cost at most one VMA per slab. A new slab is mapped only when every slab
// of that size is full, so there are never more slabs of a size than its
// peak number of stacks divided by the stacks per slab, rounded up, whatever
// order stacks are created and destroyed in. A process can hold about
// 64 x 65530 (4 million) stacks of the default size, minus its other
// mappings. coop
// probes once per process whether the guard really works and otherwise
// falls back to mprotect(PROT_NONE) (older kernels, macOS, Valgrind,
// qemu-user). An mprotect guard splits its mapping, so there a slab holds
// one stack, each stack costs two VMAs, and a process meets the default
// limit at about 32 000 stacks alive at once; destroying stacks in any
// order never needs more VMAs than that.
//
// Pooling. stack::pooled() takes a stack from a per-thread free list and the
// destructor of a pooled stack gives it back (up to pool_capacity stacks per
// thread; beyond that it goes back to its slab), so creating a coroutine
// rarely leaves the thread: no lock, no system call. Pages a pooled stack
// touched stay committed while it waits in the pool. A stack may be
// destroyed on another thread than the one that made it (it joins that
// thread's pool); a thread's pool goes back to the slabs when it exits.
//
// Failures. If the kernel refuses to unmap a slab (ENOMEM: unmapping one of
// several merged slabs splits their VMA, which fails at vm.max_map_count),
// the slab stays mapped and its stacks are reused; stack_pool_trim() tries
// again. If it refuses MADV_DONTNEED, the pages stay committed and the
// stack is still reused. Both are counted in stack_memory_usage().
#ifndef COOP_STACK_HPP
#define COOP_STACK_HPP

#include <coop/export.h>

#include <cstddef>
#include <cstdint>

namespace coop {

// Usable bytes of a stack made without an explicit size. Reserved address
// space, not memory: a coroutine that touches 8 KiB of it costs 8 KiB.
inline constexpr std::size_t default_stack_size = 256 * 1024;
// The largest stack coop hands out. Larger requests are a mistake we report.
inline constexpr std::size_t max_stack_size = std::size_t{1} << 30;
// Stacks kept per thread by the pool.
inline constexpr std::size_t pool_capacity = 4096;

namespace detail {
struct stack_slab;
}

class COOP_API stack {
public:
    // An empty stack (no memory).
    stack() noexcept = default;

    // A stack with `size` usable bytes rounded up to whole pages and a guard
    // page below, from a slab of that size (a new slab if none has a free
    // stack). Throws std::invalid_argument if size is 0 or above
    // max_stack_size, std::system_error if the kernel refuses the mapping or
    // the guard (ENOMEM also when memory for the slab's bookkeeping is short).
    explicit stack(std::size_t size);

    // A stack from the calling thread's pool when one of the same rounded
    // size is there, a fresh one otherwise. Same errors as the constructor.
    static stack pooled(std::size_t size = default_stack_size);

    stack(stack&& other) noexcept;
    stack& operator=(stack&& other) noexcept;
    stack(const stack&) = delete;
    stack& operator=(const stack&) = delete;
    // Inline so that destroying a moved-from stack costs one test.
    ~stack() {
        if (base_) release();
    }

    // Highest address + 1 of the usable range (stacks grow down from here).
    void* top() const noexcept { return static_cast<char*>(base_) + guard_ + size_; }
    // Lowest usable address (just above the guard page).
    void* bottom() const noexcept { return static_cast<char*>(base_) + guard_; }
    // Usable bytes (a whole number of pages).
    std::size_t size() const noexcept { return size_; }
    // The guard range [guard_lo, guard_lo + guard_size).
    void* guard_lo() const noexcept { return base_; }
    std::size_t guard_size() const noexcept { return guard_; }
    bool is_pooled() const noexcept { return pooled_; }
    explicit operator bool() const noexcept { return base_ != nullptr; }

    // Rounds a requested size the way the constructor does (0 if invalid).
    static std::size_t round_size(std::size_t size) noexcept;
    static std::size_t page_size() noexcept;
    // True when guard pages are made with MADV_GUARD_INSTALL (no VMA split).
    static bool guard_without_split() noexcept;
    // How many stacks of this size share one slab (one mapping): 1 with
    // mprotect guards, up to 64 otherwise; 0 for an invalid size.
    static std::size_t stacks_per_slab(std::size_t size) noexcept;

private:
    void release() noexcept;
    void* base_ = nullptr;      // start of the stack's range (the guard page)
    std::size_t size_ = 0;      // usable bytes
    std::size_t guard_ = 0;     // guard bytes
    detail::stack_slab* slab_ = nullptr;   // the slab the range belongs to
    bool pooled_ = false;       // goes back to a pool when destroyed
};

// Gives every stack the calling thread's pool holds back to its slab (the
// pages go back to the kernel), then unmaps every slab of the process in
// which no stack is in use. Stacks waiting in other threads' pools stay.
COOP_API void stack_pool_trim() noexcept;
// Stacks the calling thread's pool holds now.
COOP_API std::size_t stack_pool_size() noexcept;

// What the process holds for stacks, all threads together.
struct stack_memory {
    std::size_t slabs;             // mappings (slabs) of stacks
    std::size_t mapped_bytes;      // their size: reserved address space
    std::size_t stacks;            // stacks in use or waiting in a thread's pool
    std::size_t release_failures;  // munmap or madvise(MADV_DONTNEED) calls the kernel
                                   // refused since the process started (see "Failures")
};
COOP_API stack_memory stack_memory_usage() noexcept;

} // namespace coop

#endif
