// coop/detail/assert.hpp — COOP_ASSERT: coop's invariant checks.
//
// Off unless the build defines COOP_ASSERTIONS (`make ASSERTIONS=1`, and the
// `assert` step of `make check`, which runs the whole suite so); NDEBUG
// turns them off in any case. A failed check prints the condition, file and
// line on stderr and aborts. The checks cost nothing when off: the condition
// is not evaluated.
#ifndef COOP_DETAIL_ASSERT_HPP
#define COOP_DETAIL_ASSERT_HPP

#include <coop/export.h>

namespace coop::detail {
[[noreturn]] COOP_API void assert_failed(const char* cond, const char* file, int line) noexcept;
}

#if defined(COOP_ASSERTIONS) && !defined(NDEBUG)
#  define COOP_ASSERT(cond) \
      ((cond) ? (void)0 : ::coop::detail::assert_failed(#cond, __FILE__, __LINE__))
#else
#  define COOP_ASSERT(cond) ((void)0)
#endif

#endif
