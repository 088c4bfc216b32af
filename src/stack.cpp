// src/stack.cpp — coroutine stacks carved from slabs, with guard pages and a
// per-thread pool.
//
// Layout. Stacks of one size are cut from slabs: one anonymous mapping each,
// up to kSlabSlots stacks of [guard page | usable bytes], the guard at the
// low end because stacks grow down. A slab is unmapped only as a whole, once
// no stack in it is in use. Why slabs and not one mapping per stack: with
// MADV_GUARD_INSTALL guards, neighbouring mappings merge into one VMA, and
// freeing stacks out of order then splits that VMA once per surviving stack.
// Past vm.max_map_count the kernel refuses the munmap that would split it.
// A slab instead gives a freed stack's pages back with MADV_DONTNEED (no
// split) and keeps its range for the next stack of that size, so the
// mapping count stays at most one per slab in use. With mprotect guards
// each guard splits its mapping anyway; a slab then holds one stack, which
// is two VMAs whatever the order of frees.
//
// Three owners, in order of speed:
//   - a stack in use belongs to its coop::stack object;
//   - a free pooled stack sits in its thread's pool (no lock, no syscall,
//     pages kept), up to pool_capacity per thread;
//   - every other free stack is a free slot of its slab in the registry
//     (one mutex, slow path only), its pages given back.
// A stack may be destroyed on another thread than the one that made it: it
// joins the destroying thread's pool or goes to the registry, which serves
// every thread. A thread's pool goes to the registry when the thread exits.
//
// Invariants of the registry (under its mutex):
//   - a slab is on its size class's `partial` list iff it has both a free
//     slot and a slot in use; on `empties` iff no slot is in use; on no list
//     iff it is full or detached for unmapping;
//   - at most one slab per size class is kept on `empties` when stacks are
//     freed (one spare, so a size used at a slab boundary does not map and
//     unmap slabs in turn); more only when munmap failed, and
//     stack_pool_trim() unmaps them all;
//   - a size class lives while it has slabs, detached ones included.
#include "coop/stack.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <new>
#include <stdexcept>
#include <system_error>
#include <utility>

#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/memcheck.h>
#    include <valgrind/valgrind.h>
#    define COOP_HAVE_VALGRIND 1
#  endif
#endif

#include "coop/detail/sanitizers.h"   // COOP_ASAN

#if defined(COOP_ASAN)
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
#endif

#ifndef MADV_GUARD_INSTALL
#  define MADV_GUARD_INSTALL 102   // Linux 6.13 uapi value
#endif

namespace coop {

namespace detail {
struct stack_class;

// One mapping cut into `slots` stacks of `stride` bytes (guard + usable).
struct stack_slab {
    char* base = nullptr;            // the mapping
    std::size_t bytes = 0;           // its length: slots * stride
    std::size_t stride = 0;          // guard page + usable bytes
    stack_class* cls = nullptr;      // the size class it belongs to
    stack_slab* prev = nullptr;      // links in cls->partial or cls->empties
    stack_slab* next = nullptr;
    void* list = nullptr;            // which of the two lists, or null
    std::uint64_t free = 0;          // bit i set: slot i is free (in the registry)
    unsigned slots = 0;              // 1..kSlabSlots
    unsigned used = 0;               // slots handed out (in use or in a thread's pool)
    // Per slot, written only by the slot's current owner (ownership passes
    // through the registry's mutex, or the user's own synchronisation when
    // a stack moves between threads):
    bool guarded[64] = {};           // the guard page is installed
    unsigned valgrind_id[64] = {};   // Valgrind's id while the stack is out
};

// All slabs of one usable size.
struct stack_class {
    std::size_t size = 0;            // usable bytes of each stack
    std::size_t slabs = 0;           // mapped slabs of this size (detached ones too)
    stack_slab* partial = nullptr;   // some slots free, some in use
    stack_slab* empties = nullptr;   // no slot in use
    stack_class* next = nullptr;     // the registry's list of classes
};
} // namespace detail

namespace {

using detail::stack_class;
using detail::stack_slab;

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

// A slab holds at most this many stacks (one bit each in stack_slab::free)
// and spans at most kSlabBytes unless one stack alone is larger. 64 stacks
// of the default 256 KiB make a 16.3 MiB slab.
constexpr unsigned kSlabSlots = 64;
constexpr std::size_t kSlabBytes = std::size_t{64} << 20;

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
    // A two-page mapping of our own, never merged into anything we keep:
    // if the kernel refuses to unmap it, 8 KiB stay reserved, nothing more.
    (void)::munmap(m, 2 * page);
    return ok;
#else
    return false;
#endif
}

const std::size_t g_page = query_page();
const bool g_guard_install = probe_guard_install();
#if defined(COOP_HAVE_VALGRIND)
// Asked once: the client request is a handful of instructions, too many for
// every pooled release.
bool on_valgrind() noexcept { return RUNNING_ON_VALGRIND != 0; }
const bool g_on_valgrind = on_valgrind();
#endif

// ---------------------------------------------------------------- registry

struct registry {
    std::mutex mu;
    stack_class* classes = nullptr;
    std::size_t slabs = 0;           // stack_memory fields, kept current
    std::size_t mapped = 0;
    std::size_t out = 0;
    std::size_t failures = 0;
};
// Never destroyed: threads that exit after main() returns still give their
// pools back to it.
union registry_holder {
    registry r;
    constexpr registry_holder() : r() {}
    ~registry_holder() {}
};
constinit registry_holder g_registry;
registry& reg() noexcept { return g_registry.r; }

stack_slab*& list_head(stack_class* c, void* list) noexcept {
    return list == &c->partial ? c->partial : c->empties;
}
void link(stack_slab* s, stack_slab*& head) noexcept {
    s->prev = nullptr;
    s->next = head;
    if (head) head->prev = s;
    head = s;
    s->list = &head;
}
void unlink(stack_slab* s) noexcept {
    if (!s->list) return;
    stack_slab*& head = list_head(s->cls, s->list);
    if (s->prev) s->prev->next = s->next;
    else head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = nullptr;
    s->list = nullptr;
}

stack_class* find_class(registry& g, std::size_t size) noexcept {
    for (stack_class* c = g.classes; c; c = c->next)
        if (c->size == size) return c;
    return nullptr;
}

unsigned slot_index(const stack_slab* s, const void* slot) noexcept {
    return static_cast<unsigned>(static_cast<std::size_t>(static_cast<const char*>(slot) - s->base) /
                                 s->stride);
}

std::uint64_t all_slots(unsigned n) noexcept {
    return n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
}

// Hands out the lowest free slot of s. Under the mutex.
unsigned take_slot_locked(registry& g, stack_slab* s) noexcept {
    const unsigned i = static_cast<unsigned>(__builtin_ctzll(s->free));
    s->free &= s->free - 1;
    if (s->used++ == 0) {                       // was on empties
        unlink(s);
        if (s->free) link(s, s->cls->partial);
    } else if (s->free == 0) {
        unlink(s);                              // now full
    }
    ++g.out;
    return i;
}

// Marks slot i of s free. Returns true when s is now detached and must be
// unmapped by the caller (outside the mutex). Under the mutex.
bool free_slot_locked(registry& g, stack_slab* s, unsigned i) noexcept {
    const bool was_full = s->free == 0;
    s->free |= std::uint64_t{1} << i;
    --s->used;
    --g.out;
    stack_class* c = s->cls;
    if (s->used == 0) {
        unlink(s);
        if (!c->empties) {
            link(s, c->empties);                // the spare
            return false;
        }
        return true;                            // detached
    }
    if (was_full) link(s, c->partial);
    return false;
}

// Unmaps a detached slab. If the kernel refuses (ENOMEM when unmapping
// would split a merged VMA beyond vm.max_map_count), the slab goes back to
// the registry as an empty slab: its stacks stay usable and the next
// stack_pool_trim() tries again. Nothing is lost either way.
void unmap_slab(stack_slab* s) noexcept {
    const bool ok = ::munmap(s->base, s->bytes) == 0;
    registry& g = reg();
    stack_class* dead = nullptr;
    {
        std::lock_guard<std::mutex> lock(g.mu);
        if (!ok) {
            ++g.failures;
            link(s, s->cls->empties);
            return;
        }
        --g.slabs;
        g.mapped -= s->bytes;
        stack_class* c = s->cls;
        if (--c->slabs == 0) {
            for (stack_class** p = &g.classes; *p; p = &(*p)->next)
                if (*p == c) {
                    *p = c->next;
                    break;
                }
            dead = c;
        }
    }
    delete s;
    delete dead;
}

struct raw {
    void* base;            // the slot: guard page, then the usable range
    std::size_t size;      // usable bytes
    stack_slab* slab;
};

// Valgrind needs to know each stack, or it reports every switch as a huge
// stack-pointer change. A stack is registered while it is out of the
// registry (in use or pooled).
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

[[noreturn]] void throw_errno(int e, const char* what) {
    throw std::system_error(e, std::generic_category(), what);
}

void return_slot(stack_slab* s, void* slot, std::size_t size) noexcept;

// A stack of `size` usable bytes from the registry: a free slot of a slab of
// that size if there is one, else a slot of a freshly mapped slab.
raw take(std::size_t size) {
    registry& g = reg();
    stack_slab* s = nullptr;
    unsigned i = 0;
    {
        std::lock_guard<std::mutex> lock(g.mu);
        if (stack_class* c = find_class(g, size)) {
            s = c->partial ? c->partial : c->empties;
            if (s) i = take_slot_locked(g, s);
        }
    }
    if (!s) {
        // A new slab, mapped outside the mutex. Everything that can fail
        // comes before mmap, so a mapping is never left without an owner.
        const std::size_t stride = size + g_page;
        std::size_t slots = g_guard_install ? kSlabBytes / stride : 1;
        if (slots < 1) slots = 1;
        if (slots > kSlabSlots) slots = kSlabSlots;
        auto* fresh = new (std::nothrow) stack_slab;
        auto* new_class = new (std::nothrow) stack_class;
        if (!fresh || !new_class) {
            delete fresh;
            delete new_class;
            throw_errno(ENOMEM, "coop::stack: slab bookkeeping");
        }
        void* m = ::mmap(nullptr, slots * stride, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | kNoReserve | kStackFlag, -1, 0);
        if (m == MAP_FAILED) {
            const int e = errno;
            delete fresh;
            delete new_class;
            throw_errno(e, "coop::stack: mmap");
        }
        fresh->base = static_cast<char*>(m);
        fresh->bytes = slots * stride;
        fresh->stride = stride;
        fresh->slots = static_cast<unsigned>(slots);
        fresh->free = all_slots(fresh->slots);
        {
            std::lock_guard<std::mutex> lock(g.mu);
            stack_class* c = find_class(g, size);
            if (!c) {
                c = std::exchange(new_class, nullptr);
                c->size = size;
                c->next = g.classes;
                g.classes = c;
            }
            fresh->cls = c;
            ++c->slabs;
            ++g.slabs;
            g.mapped += fresh->bytes;
            link(fresh, c->empties);
            s = fresh;
            i = take_slot_locked(g, s);
        }
        delete new_class;
    }
    char* slot = s->base + static_cast<std::size_t>(i) * s->stride;
    if (!s->guarded[i]) {
        // MADV_GUARD_INSTALL leaves the slab one VMA; mprotect splits it,
        // which is why a slab holds one stack in that case.
        const bool ok = g_guard_install ? ::madvise(slot, g_page, MADV_GUARD_INSTALL) == 0
                                        : ::mprotect(slot, g_page, PROT_NONE) == 0;
        if (!ok) {
            const int e = errno;
            return_slot(s, slot, size);   // still unguarded: the next taker retries
            throw_errno(e, "coop::stack: guard page");
        }
        s->guarded[i] = true;
    }
    s->valgrind_id[i] = vg_register(slot + g_page, slot + g_page + size);
    return raw{slot, size, s};
}

// Returns a slot to its slab. The pages go back to the kernel; when this
// was the slab's last stack in use and the size already has a spare slab,
// the whole slab is unmapped instead.
void return_slot(stack_slab* s, void* slot, std::size_t size) noexcept {
    registry& g = reg();
    const unsigned i = slot_index(s, slot);
    bool detached = false;
    {
        std::lock_guard<std::mutex> lock(g.mu);
        // The slab's last stack, and a spare exists: unmap, no need to
        // drop the pages first.
        if (s->used == 1 && s->cls->empties) detached = free_slot_locked(g, s, i);
    }
    if (!detached) {
        // The slot is still ours (not yet marked free), so no other thread
        // can be using these pages while they are dropped. If the kernel
        // refuses, the pages stay committed: counted, and the slot is
        // still reused.
        const bool dropped = ::madvise(static_cast<char*>(slot) + g_page, size, MADV_DONTNEED) == 0;
        std::lock_guard<std::mutex> lock(g.mu);
        if (!dropped) ++g.failures;
        detached = free_slot_locked(g, s, i);
    }
    if (detached) unmap_slab(s);
}

void give_back(const raw& r) noexcept {
    stack_slab* s = r.slab;
    vg_deregister(s->valgrind_id[slot_index(s, r.base)]);
    return_slot(s, r.base, r.size);
}

// Unmaps every slab with no stack in use, for all sizes.
void unmap_empty_slabs() noexcept {
    registry& g = reg();
    stack_slab* todo = nullptr;
    {
        std::lock_guard<std::mutex> lock(g.mu);
        for (stack_class* c = g.classes; c; c = c->next) {
            while (stack_slab* s = c->empties) {
                unlink(s);
                s->next = todo;       // a private list now: detached slabs are on no list
                todo = s;
            }
        }
    }
    while (todo) {
        stack_slab* s = todo;
        todo = s->next;
        s->next = nullptr;
        unmap_slab(s);
    }
}

// ---------------------------------------------------------------- thread pools

// Per-thread free list, reached through one initial-exec thread-local
// pointer (no TLS init guard, no __tls_get_addr, 8 bytes of static TLS).
// The list itself is allocated at the thread's first pooled release; a
// thread_local owner gives what it holds to the registry when the thread
// exits, after which the pointer reads as "dead" and stacks go to the
// registry directly.
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

void drain(pool* p) noexcept {
    while (p->count > 0) give_back(p->items[--p->count]);
}

pool_owner::~pool_owner() {
    pool* p = t_pool;
    t_pool = kPoolDead;
    if (p && p != kPoolDead) {
        drain(p);
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

std::size_t stack::stacks_per_slab(std::size_t size) noexcept {
    const std::size_t r = round_size(size);
    if (r == 0) return 0;
    if (!g_guard_install) return 1;
    const std::size_t n = kSlabBytes / (r + g_page);
    return n < 1 ? 1 : n > kSlabSlots ? kSlabSlots : n;
}

stack::stack(std::size_t size) {
    raw r = take(checked_round(size));
    base_ = r.base;
    size_ = r.size;
    guard_ = g_page;
    slab_ = r.slab;
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
        if (!found) r = take(want);
    }
    s.base_ = r.base;
    s.size_ = r.size;
    s.guard_ = g_page;
    s.slab_ = r.slab;
    s.pooled_ = true;
    return s;
}

stack::stack(stack&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)),
      guard_(std::exchange(o.guard_, 0)), slab_(std::exchange(o.slab_, nullptr)),
      pooled_(std::exchange(o.pooled_, false)) {}

stack& stack::operator=(stack&& o) noexcept {
    if (this != &o) {
        release();
        base_ = std::exchange(o.base_, nullptr);
        size_ = std::exchange(o.size_, 0);
        guard_ = std::exchange(o.guard_, 0);
        slab_ = std::exchange(o.slab_, nullptr);
        pooled_ = std::exchange(o.pooled_, false);
    }
    return *this;
}

void stack::release() noexcept {
    if (!base_) return;
#if defined(COOP_ASAN)
    // A coroutine that ended by jumping away left its frames' redzones
    // poisoned; the next user of this memory must not trip over them.
    __asan_unpoison_memory_region(static_cast<char*>(base_) + guard_, size_);
#endif
#if defined(COOP_HAVE_VALGRIND)
    // Memcheck marked the frames a coroutine popped as no-access; the next
    // fiber's control block lands at another colour offset, inside them.
    if (g_on_valgrind)
        (void)VALGRIND_MAKE_MEM_UNDEFINED(static_cast<char*>(base_) + guard_, size_);
#endif
    void* const base = std::exchange(base_, nullptr);
    if (pooled_) {
        pool* p = this_thread_pool();
        if (p && p->count < pool_capacity) {
            // Field by field from the members, not through a local raw:
            // the compiler stores such a local in 8-byte pieces and copies
            // it with a 16-byte load, which the CPU cannot forward from two
            // stores (a stall on every pooled release, measured).
            raw& item = p->items[p->count++];
            item.base = base;
            item.size = size_;
            item.slab = slab_;
            return;
        }
    }
    give_back(raw{base, size_, slab_});
}

void stack_pool_trim() noexcept {
    pool* p = t_pool;
    if (p && p != kPoolDead) drain(p);
    unmap_empty_slabs();
}

std::size_t stack_pool_size() noexcept {
    pool* p = t_pool;
    return (p && p != kPoolDead) ? p->count : 0;
}

stack_memory stack_memory_usage() noexcept {
    registry& g = reg();
    std::lock_guard<std::mutex> lock(g.mu);
    return stack_memory{g.slabs, g.mapped, g.out, g.failures};
}

} // namespace coop
