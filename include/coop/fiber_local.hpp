// coop/fiber_local.hpp — reading thread_locals and errno safely in code
// that switches fibers.
//
// A coroutine suspended on one thread may be resumed on another (a task
// never changes threads: it belongs to its reactor's thread). Compilers do
// not expect a function to change threads halfway, so they compute the
// address of a thread_local once and keep it in a register across calls,
// a yield included:
//   - AArch64 (g++ and clang) reads the thread pointer (tpidr_el0) once per
//     function, so any thread_local used after a yield may be the old
//     thread's;
//   - errno is *__errno_location(), which glibc declares const, so on every
//     architecture an errno read after a yield may be the old thread's.
// x86-64 reaches thread_locals through %fs at each access, so plain
// thread_locals are right there, but errno is not.
//
// Where a coroutine may move between threads, reach per-thread data after a
// switch through these, which the compiler can neither merge nor move across
// the switch:
//
//   thread_local int t_hits;
//   COOP_FIBER_LOCAL(t_hits)++;            // this thread's t_hits, now
//   int e = coop::fiber_errno();           // this thread's errno, now
//
// coop's own per-thread state is always reached this way (detail/fiber.hpp).
// coop's blocking calls return std::error_code and do not leave their result
// in errno.
#ifndef COOP_FIBER_LOCAL_HPP
#define COOP_FIBER_LOCAL_HPP

#include <coop/export.h>

#include <type_traits>

namespace coop {

// Call get() out of line, behind a compiler barrier: whatever thread_local
// it names is looked up on the thread running now. Returns what get()
// returns (a reference, for COOP_FIBER_LOCAL).
template <class Get>
[[gnu::noinline]] decltype(auto) fiber_local(Get get) noexcept(noexcept(get())) {
    asm volatile("" ::: "memory");   // not pure: the compiler must call it every time
    return get();
}

// errno of the thread running now.
COOP_API int fiber_errno() noexcept;
// Set errno of the thread running now.
COOP_API void set_fiber_errno(int e) noexcept;

} // namespace coop

// The thread_local `var` of the thread running now, as an lvalue.
#define COOP_FIBER_LOCAL(var) \
    (::coop::fiber_local([]() noexcept -> decltype(auto) { return (var); }))

#endif
