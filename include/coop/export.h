/* coop/export.h — what libcoop.so exports.
 *
 * The library is built with -fvisibility=hidden: a symbol is exported only
 * when its declaration says COOP_API. That is the public API, plus exactly
 * the out-of-line functions that inline code in the installed headers calls
 * (those live in namespace coop::detail and are not a stable interface).
 * COOP_HIDDEN marks what the assembly reaches but nobody else may.
 * `make check` lists the exports of libcoop.so and fails on one that is not
 * expected (tests/check/exports.sh).
 */
#ifndef COOP_EXPORT_H
#define COOP_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#  define COOP_API __attribute__((visibility("default")))
#  define COOP_HIDDEN __attribute__((visibility("hidden")))
#else
#  define COOP_API
#  define COOP_HIDDEN
#endif

#endif
