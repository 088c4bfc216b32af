// src/overflow_internal.hpp — what the coroutine layer asks of the stack-overflow
// reporter (src/overflow.cpp; the public side is coop/overflow.hpp).
#ifndef COOP_SRC_OVERFLOW_INTERNAL_HPP
#define COOP_SRC_OVERFLOW_INTERNAL_HPP

namespace coop::detail {

// Called by every fiber when it starts: the first time on a thread, install
// the SIGSEGV/SIGBUS handler (once per process, unless
// COOP_OVERFLOW_HANDLER=0) and the thread's alternate signal stack; later a
// thread-local test.
void overflow_arm() noexcept;

} // namespace coop::detail

#endif
