// coop/overflow.hpp — stack-overflow reports for coroutines.
//
// Every coroutine stack has a guard page below it. When a coroutine runs
// into it, coop's SIGSEGV/SIGBUS handler (running on an alternate signal
// stack, because the faulting stack has no room left) recognises the fault
// as an overflow of the running coroutine and prints exactly one line
//
//   coop: stack overflow in coroutine <name or #id> (stack <lo>-<hi>, <size> bytes)
//
// then calls abort(). Any other fault is passed on to the handler that was
// installed before coop's (or, if there was none, the process dies of the
// signal as it would have without coop).
//
// Installation is automatic: the first time a thread starts running a
// coroutine, coop installs its handler process-wide (once) and gives that
// thread an alternate signal stack (unless the thread already has one). So
// a coroutine is covered wherever it first ran. Call
// install_overflow_handler() yourself
//   - on a thread that resumes coroutines first started on another thread,
//   - after installing your own SIGSEGV/SIGBUS handler, to put coop's in
//     front of it again (yours is then called for every fault that is not a
//     coroutine stack overflow).
// Programs that must own the signals can instead call
// report_stack_overflow() first thing in their own handler.
#ifndef COOP_OVERFLOW_HPP
#define COOP_OVERFLOW_HPP

#include <coop/export.h>

#include <signal.h>

#include <cstddef>

namespace coop {

// Puts coop's SIGSEGV/SIGBUS handler in front of whatever is installed now
// (which becomes the one it passes other faults to; nothing changes if
// coop's is already there), and gives the calling thread an alternate
// signal stack if it has none. Thread-safe; not async-signal-safe.
COOP_API void install_overflow_handler() noexcept;

// For a SIGSEGV/SIGBUS handler of the program's own: if the fault described
// by info (and ucontext, may be null) is an overflow of the coroutine
// running on this thread, prints the report line and aborts. Otherwise
// returns false. Async-signal-safe.
COOP_API bool report_stack_overflow(const siginfo_t* info, const void* ucontext) noexcept;

// Size of the alternate signal stack coop gives a thread.
COOP_API std::size_t overflow_signal_stack_size() noexcept;

} // namespace coop

#endif
