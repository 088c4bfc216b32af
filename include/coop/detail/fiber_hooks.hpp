// coop/detail/fiber_hooks.hpp — tell AddressSanitizer and ThreadSanitizer
// about stack switches. Everything here compiles to nothing unless the
// translation unit is built with -fsanitize=address or -fsanitize=thread.
//
// The protocol, for every switch (first entry and final exit included):
//   AddressSanitizer: __sanitizer_start_switch_fiber(&save, dest_lo, dest_size)
//     right before the jump, __sanitizer_finish_switch_fiber(save, &from_lo,
//     &from_size) right after control comes back; a null `save` at the final
//     exit tells ASan the leaving stack is gone (its fake frames are freed).
//   ThreadSanitizer: __tsan_switch_to_fiber(dest, 0) right before the jump,
//     in the same frame that performs it, so the instrumented frame that
//     called it returns on the fiber it was entered on.
#ifndef COOP_DETAIL_FIBER_HOOKS_HPP
#define COOP_DETAIL_FIBER_HOOKS_HPP

#include <coop/detail/sanitizers.h>

#include <cstddef>

#if defined(COOP_ASAN)
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                     std::size_t* size_old);
}
#endif
#if defined(COOP_TSAN)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
}
#endif

namespace coop::detail::hooks {

// ASan: about to leave the current stack for [lo, lo + size).
inline void asan_leave(void** save, const void* lo, std::size_t size) noexcept {
#if defined(COOP_ASAN)
    __sanitizer_start_switch_fiber(save, lo, size);
#else
    (void)save; (void)lo; (void)size;
#endif
}
// ASan: arrived back; learn which stack we came from (may be null pointers).
inline void asan_arrive(void* save, const void** from_lo, std::size_t* from_size) noexcept {
#if defined(COOP_ASAN)
    __sanitizer_finish_switch_fiber(save, from_lo, from_size);
#else
    (void)save; (void)from_lo; (void)from_size;
#endif
}

inline void* tsan_current() noexcept {
#if defined(COOP_TSAN)
    return __tsan_get_current_fiber();
#else
    return nullptr;
#endif
}
inline void* tsan_create() noexcept {
#if defined(COOP_TSAN)
    return __tsan_create_fiber(0);
#else
    return nullptr;
#endif
}
inline void tsan_destroy(void* fiber) noexcept {
#if defined(COOP_TSAN)
    if (fiber) __tsan_destroy_fiber(fiber);
#else
    (void)fiber;
#endif
}
inline void tsan_switch(void* fiber) noexcept {
#if defined(COOP_TSAN)
    __tsan_switch_to_fiber(fiber, 0);
#else
    (void)fiber;
#endif
}

} // namespace coop::detail::hooks

#endif
