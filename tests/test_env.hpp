// tests/test_env.hpp — what a test needs to know about where it runs, so
// that loops can be sized for Valgrind and qemu (20-50x slower than native),
// and the small helpers several test files share.
#ifndef COOP_TESTS_TEST_ENV_HPP
#define COOP_TESTS_TEST_ENV_HPP

#include <coop/detail/sanitizers.h>

#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#  endif
#endif
#ifndef RUNNING_ON_VALGRIND
#  define RUNNING_ON_VALGRIND 0
#endif

namespace coop_test {

// Running under qemu-user: the Makefile sets COOP_RUN_PREFIX for those runs.
inline bool under_emulator() {
    const char* p = std::getenv("COOP_RUN_PREFIX");
    return p && *p;
}

inline bool under_valgrind() { return RUNNING_ON_VALGRIND != 0; }

// An iteration count: `native` on real hardware, `slow` under Valgrind or qemu.
inline int scaled(int native, int slow) { return (under_valgrind() || under_emulator()) ? slow : native; }

// The message of the exception p holds ("none" for a null p).
inline std::string what_of(std::exception_ptr p) {
    if (!p) return "none";
    try {
        std::rethrow_exception(p);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "(not a std::exception)";
    }
}

// How gtest death tests run here. ThreadSanitizer loses its fiber
// bookkeeping in a fork()ed child, so TSan builds re-execute the test
// binary ("threadsafe"); everything else forks ("fast"), which also works
// under qemu-user, where the child could not exec a foreign binary.
#if defined(COOP_TSAN)
inline constexpr const char* kDeathTestStyle = "threadsafe";
#else
inline constexpr const char* kDeathTestStyle = "fast";
#endif

// The line coop prints for a named coroutine or task it cannot unwind, as
// a regex (the id, "#N" after the name, is not known in advance).
inline std::string abandoned_line(const std::string& name) {
    return "coop: coroutine " + name +
           " \\(#[0-9]+\\) could not be unwound: [^\n]*; its stack is abandoned and the "
           "destructors still on it will not run\n";
}

} // namespace coop_test

#endif
