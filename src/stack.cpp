// src/stack.cpp — mmap'd stacks with guard pages and a per-thread pool.
#include "coop/stack.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <new>
#include <utility>
#include <vector>

#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#    define COOP_HAVE_VALGRIND 1
#  endif
#endif

#include "coop/detail/fiber_hooks.hpp"   // COOP_ASAN

#if defined(COOP_ASAN)
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
#endif

#ifndef MADV_GUARD_INSTALL
#  define MADV_GUARD_INSTALL 102   // Linux 6.13 uapi value
#endif

namespace coop {
namespace {

#if defined(MAP_STACK)
constexpr int kStackFlag = MAP_STACK;
#else
constexpr int kStackFlag = 0;
#endif
#if defined(MAP_NORESERVE)
constexpr int kNoReserve = MAP_NORESERVE;
#else
constexpr int kNoReserve = 0;
#endif

std::size_t query_page() noexcept {
    long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<std::size_t>(p) : 4096;
}

// Does MADV_GUARD_INSTALL really guard here? Install it on one page and ask
// the kernel to read from that page through write(): a real guard makes the
// syscall fail with EFAULT, without any signal. Anything else (EINVAL from an
// older kernel, or an emulator that accepts the advice and ignores it) means
// we fall back to mprotect.
bool probe_guard_install() noexcept {
#if defined(__linux__)
#  if defined(COOP_HAVE_VALGRIND)
    // Valgrind does not model guard regions: it would take the guard page for
    // ordinary memory and fault itself when it reads it (leak scan, stack
    // traces). Guards made with mprotect it tracks.
    if (RUNNING_ON_VALGRIND) return false;
#  endif
    const std::size_t page = query_page();
    void* m = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | kNoReserve, -1, 0);
    if (m == MAP_FAILED) return false;
    bool ok = false;
    if (::madvise(m, page, MADV_GUARD_INSTALL) == 0) {
        int fds[2];
        if (::pipe(fds) == 0) {
            errno = 0;
            ssize_t n = ::write(fds[1], m, 1);
            ok = (n < 0 && errno == EFAULT);
            ::close(fds[0]);
            ::close(fds[1]);
        }
    }
    ::munmap(m, 2 * page);
    return ok;
#else
    return false;
#endif
}

const std::size_t g_page = query_page();
const bool g_guard_install = probe_guard_install();

struct raw {
    void* base;
    std::size_t size;
    std::size_t guard;
    unsigned valgrind_id;
};

// Per-thread free list, reached through one initial-exec thread-local
// pointer (no TLS init guard, no __tls_get_addr, 8 bytes of static TLS).
// The list itself is allocated at the thread's first pooled release; a
// thread_local owner unmaps what it holds when the thread exits, after
// which the pointer reads as "dead" and stacks are unmapped directly.
struct pool {
    std::size_t count = 0;
    raw items[pool_capacity];
};
pool* const kPoolDead = reinterpret_cast<pool*>(std::uintptr_t{1});
constinit thread_local pool* t_pool [[gnu::tls_model("initial-exec")]] = nullptr;

struct pool_owner {
    ~pool_owner();
};
thread_local pool_owner t_pool_owner;

// Valgrind needs to know each stack, or it reports every switch as a huge
// stack-pointer change; ids are remembered per mapping.
unsigned vg_register(void* lo, void* hi) noexcept {
#if defined(COOP_HAVE_VALGRIND)
    return VALGRIND_STACK_REGISTER(lo, hi);
#else
    (void)lo; (void)hi;
    return 0;
#endif
}
void vg_deregister(unsigned id) noexcept {
#if defined(COOP_HAVE_VALGRIND)
    VALGRIND_STACK_DEREGISTER(id);
#else
    (void)id;
#endif
}

raw map_stack(std::size_t size) {
    const std::size_t guard = g_page;
    void* m = ::mmap(nullptr, size + guard, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | kNoReserve | kStackFlag, -1, 0);
    if (m == MAP_FAILED)
        throw std::system_error(errno, std::generic_category(), "coop::stack: mmap");
    bool guarded = g_guard_install && ::madvise(m, guard, MADV_GUARD_INSTALL) == 0;
    if (!guarded && ::mprotect(m, guard, PROT_NONE) != 0) {
        int e = errno;
        ::munmap(m, size + guard);
        throw std::system_error(e, std::generic_category(), "coop::stack: guard page");
    }
    char* lo = static_cast<char*>(m) + guard;
    return raw{m, size, guard, vg_register(lo, lo + size)};
}

void unmap_stack(const raw& r) noexcept {
    vg_deregister(r.valgrind_id);
    ::munmap(r.base, r.size + r.guard);
}

void unmap_all(pool* p) noexcept {
    for (std::size_t i = 0; i < p->count; ++i) unmap_stack(p->items[i]);
    p->count = 0;
}

pool_owner::~pool_owner() {
    pool* p = t_pool;
    t_pool = kPoolDead;
    if (p && p != kPoolDead) {
        unmap_all(p);
        delete p;
    }
}

// The calling thread's pool, created on first use; null once the thread is
// exiting or if memory for it cannot be had.
pool* this_thread_pool() noexcept {
    pool* p = t_pool;
    if (p == kPoolDead) [[unlikely]] return nullptr;
    if (!p) [[unlikely]] {
        p = new (std::nothrow) pool;
        if (!p) return nullptr;
        t_pool = p;
        (void)&t_pool_owner;   // odr-use: registers the thread-exit cleanup
    }
    return p;
}

std::size_t checked_round(std::size_t size) {
    std::size_t r = stack::round_size(size);
    if (r == 0)
        throw std::invalid_argument(
            "coop::stack: size must be between 1 byte and coop::max_stack_size (1 GiB)");
    return r;
}

} // namespace

std::size_t stack::page_size() noexcept { return g_page; }
bool stack::guard_without_split() noexcept { return g_guard_install; }

std::size_t stack::round_size(std::size_t size) noexcept {
    if (size == 0 || size > max_stack_size) return 0;
    return (size + g_page - 1) & ~(g_page - 1);
}

stack::stack(std::size_t size) {
    raw r = map_stack(checked_round(size));
    base_ = r.base;
    size_ = r.size;
    guard_ = r.guard;
    valgrind_id_ = r.valgrind_id;
}

stack stack::pooled(std::size_t size) {
    const std::size_t want = checked_round(size);
    stack s;
    raw r;
    pool* p = t_pool;
    if (p && p != kPoolDead && p->count > 0 && p->items[p->count - 1].size == want) [[likely]] {
        r = p->items[--p->count];            // the common case: same size as last time
    } else {
        bool found = false;
        if (p && p != kPoolDead) {
            for (std::size_t i = p->count; i-- > 0;) {
                if (p->items[i].size == want) {
                    r = p->items[i];
                    p->items[i] = p->items[--p->count];
                    found = true;
                    break;
                }
            }
        }
        if (!found) r = map_stack(want);
    }
    s.base_ = r.base;
    s.size_ = r.size;
    s.guard_ = r.guard;
    s.valgrind_id_ = r.valgrind_id;
    s.pooled_ = true;
    return s;
}

stack::stack(stack&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)),
      guard_(std::exchange(o.guard_, 0)), valgrind_id_(std::exchange(o.valgrind_id_, 0)),
      pooled_(std::exchange(o.pooled_, false)) {}

stack& stack::operator=(stack&& o) noexcept {
    if (this != &o) {
        release();
        base_ = std::exchange(o.base_, nullptr);
        size_ = std::exchange(o.size_, 0);
        guard_ = std::exchange(o.guard_, 0);
        valgrind_id_ = std::exchange(o.valgrind_id_, 0);
        pooled_ = std::exchange(o.pooled_, false);
    }
    return *this;
}

stack::~stack() { release(); }

void stack::release() noexcept {
    if (!base_) return;
    raw r{base_, size_, guard_, valgrind_id_};
    base_ = nullptr;
#if defined(COOP_ASAN)
    // A coroutine that ended by jumping away left its frames' redzones
    // poisoned; the next user of this memory must not trip over them.
    __asan_unpoison_memory_region(static_cast<char*>(r.base) + r.guard, r.size);
#endif
    if (pooled_) {
        pool* p = this_thread_pool();
        if (p && p->count < pool_capacity) {
            p->items[p->count++] = r;
            return;
        }
    }
    unmap_stack(r);
}

void stack_pool_trim() noexcept {
    pool* p = t_pool;
    if (p && p != kPoolDead) unmap_all(p);
}

std::size_t stack_pool_size() noexcept {
    pool* p = t_pool;
    return (p && p != kPoolDead) ? p->count : 0;
}

} // namespace coop
