/* coop/detail/fiber_layout.h — the stack layout of a suspended fiber, for
 * the coroutine switch (coop/detail/fiber_switch.hpp, inline asm), the fiber
 * entry trampoline (arch/<arch>/fiber.S) and the C++ that builds a fresh
 * fiber (coop/detail/fiber.hpp). The numbers live here and nowhere else;
 * fiber_switch.hpp static_asserts how they relate.
 *
 * A suspended fiber is a stack pointer `sp`. The switch leaves (x86-64):
 *
 *     sp + 0    continuation: where the fiber goes on when switched to
 *     sp + 8    the frame pointer (rbp) of the code that switched
 *     sp + 16   COOP_FIBER_RED_ZONE bytes skipped, then that code's frame
 *
 * and (AArch64), in 16-byte slots to keep sp 16-byte aligned:
 *
 *     sp + 0    continuation (sp + 8: unused)
 *     sp + 16   the frame pointer (x29) of the code that switched
 *     sp + 32   COOP_FIBER_RED_ZONE bytes skipped (Darwin only), then that
 *               code's frame
 *
 * Switching to a fiber pops its continuation (COOP_FIBER_CONT_POP bytes) and
 * jumps there; the code at the continuation pops the rest.
 *
 * A fresh fiber: its control block starts at a 16-byte aligned address
 * `top`, and fiber_make() writes below it a null return address and a null
 * frame pointer (x86-64: 2 words; AArch64: a null frame record and a pad
 * word, 3 words), then the address of coop_fiber_trampoline. Its sp is
 * top - COOP_FIBER_FRESH_BELOW_TOP. After the continuation is popped,
 * sp = top - COOP_FIBER_BLOCK_ABOVE_SP, 16-byte aligned, and the trampoline
 * finds the control block at sp + COOP_FIBER_BLOCK_ABOVE_SP.
 */
#ifndef COOP_DETAIL_FIBER_LAYOUT_H
#define COOP_DETAIL_FIBER_LAYOUT_H

#if defined(__x86_64__)
#  define COOP_FIBER_CONT_POP 8          /* popq: the continuation */
#  define COOP_FIBER_FRESH_BELOW_TOP 24  /* trampoline address, null rbp, null return address */
#  define COOP_FIBER_RED_ZONE 128        /* SysV: leaf code may use 128 bytes below rsp */
#elif defined(__aarch64__)
#  define COOP_FIBER_CONT_POP 16         /* ldr x9, [sp], #16: the continuation's slot */
#  define COOP_FIBER_FRESH_BELOW_TOP 32  /* trampoline address, pad, null frame record */
#  if defined(__APPLE__)
#    define COOP_FIBER_RED_ZONE 128      /* Darwin arm64 has a 128-byte red zone */
#  else
#    define COOP_FIBER_RED_ZONE 0        /* AAPCS64: no red zone */
#  endif
#else
#  error "coop supports x86-64 and AArch64"
#endif

/* Where the trampoline finds the control block, above its entry sp. */
#define COOP_FIBER_BLOCK_ABOVE_SP 16

#endif
