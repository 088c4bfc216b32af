// coop/stack.hpp — stacks for coroutines.
//
// A coop::stack is an anonymous private mapping, reserved but not committed:
// only the pages a coroutine actually touches cost memory. Below the usable
// range sits one guard page that faults on overflow.
//
// Guard pages and vm.max_map_count. A guard made with mprotect(PROT_NONE)
// splits the mapping, so every stack costs two kernel VMAs and a process
// meets the default limit of 65530 at about 32 000 stacks. Where the kernel
// has MADV_GUARD_INSTALL (Linux 6.13+), coop installs the guard with it
// instead: the stack stays one VMA and neighbouring stacks merge, so millions
// of stacks fit. coop probes once per process which way works and falls back
// to mprotect otherwise (older kernels, macOS, emulators that ignore it).
//
// Pooling. stack::pooled() takes a stack from a per-thread free list and the
// destructor of a pooled stack gives it back (up to pool_capacity stacks per
// thread; beyond that it is unmapped), so creating a coroutine rarely calls
// mmap. Pages a pooled stack touched stay committed while it waits in the
// pool; stack_pool_trim() unmaps what the calling thread holds.
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

class COOP_API stack {
public:
    // An empty stack (no memory).
    stack() noexcept = default;

    // A fresh mapping with `size` usable bytes rounded up to whole pages and
    // a guard page below. Throws std::invalid_argument if size is 0 or above
    // max_stack_size, std::system_error if the kernel refuses the mapping.
    explicit stack(std::size_t size);

    // A stack from the calling thread's pool when one of the same rounded
    // size is there, a fresh one otherwise. Same errors as the constructor.
    static stack pooled(std::size_t size = default_stack_size);

    stack(stack&& other) noexcept;
    stack& operator=(stack&& other) noexcept;
    stack(const stack&) = delete;
    stack& operator=(const stack&) = delete;
    ~stack();

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

private:
    void release() noexcept;
    void* base_ = nullptr;      // start of the mapping (the guard page)
    std::size_t size_ = 0;      // usable bytes
    std::size_t guard_ = 0;     // guard bytes
    unsigned valgrind_id_ = 0;  // Valgrind's stack id (0 outside Valgrind)
    bool pooled_ = false;       // goes back to a pool when destroyed
};

// Unmaps every stack the calling thread's pool holds.
COOP_API void stack_pool_trim() noexcept;
// Stacks the calling thread's pool holds now.
COOP_API std::size_t stack_pool_size() noexcept;

} // namespace coop

#endif
