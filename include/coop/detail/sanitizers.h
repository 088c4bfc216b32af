/* coop/detail/sanitizers.h — which sanitizer this translation unit is built
 * with: COOP_ASAN (AddressSanitizer), COOP_TSAN (ThreadSanitizer). The one
 * place coop asks; g++ says so with __SANITIZE_*__, clang with
 * __has_feature. Usable from C and C++.
 */
#ifndef COOP_DETAIL_SANITIZERS_H
#define COOP_DETAIL_SANITIZERS_H

#if defined(__SANITIZE_ADDRESS__)
#  define COOP_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define COOP_ASAN 1
#  endif
#endif
#if defined(__SANITIZE_THREAD__)
#  define COOP_TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define COOP_TSAN 1
#  endif
#endif

#endif
