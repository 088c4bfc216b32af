/* arch/aarch64/fiber.S — the entry trampoline of the coroutine layer's
 * fibers (coop::coroutine, reactor tasks), AAPCS64. The context layer
 * (switch.S, coop/context.h) does not use it: a C program that links only
 * coop_make/coop_jump never pulls this object in.
 *
 * The stack layout of a fresh fiber is defined in coop/detail/fiber_layout.h.
 */
#include <coop/detail/fiber_layout.h>
#include "../asm.h"
#include "hardening.h"

        .text

/* ------------------------------------------------------------------------
 * coop_fiber_trampoline: where a fiber starts. The switch in
 * coop/detail/fiber_switch.hpp pops this address off a fresh stack and
 * branches here (br). Register contract at entry:
 *   x2   the data handed over by the first switch into the fiber
 *   sp   16-byte aligned, COOP_FIBER_BLOCK_ABOVE_SP below the fiber's
 *        control block (fiber_layout.h)
 *   x29  whatever the switching code had (cleared below)
 * The CFI marks x30 as undefined: unwinders (gdb, libgcc, perf) stop here
 * instead of walking off the top of the fiber's stack.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_fiber_trampoline)
        HIDDEN(coop_fiber_trampoline)       /* only libcoop builds fresh fibers */
        FUNC_TYPE(SYM(coop_fiber_trampoline))
        .p2align 4
SYM(coop_fiber_trampoline):
        .cfi_startproc
        .cfi_undefined x30                  /* outermost frame */
        JUMP_PAD                            /* reached by the resume's br */
        mov     x29, #0                     /* no caller frame record */
        add     x0, sp, #COOP_FIBER_BLOCK_ABOVE_SP  /* the control block -> 1st argument */
        mov     x1, x2                      /* the first resume's data -> 2nd argument */
        /* Enter coop_fiber_main as if called from label 1 below, but with a
           plain branch: bl would push a return-address-stack entry that is
           never popped (coop_fiber_main never returns), leaving every later
           ret of the resumer one entry off. x30 points inside this
           function, whose CFI ends every unwind. */
        adr     x30, 1f
        b       SYM(coop_fiber_main)        /* runs the body, then switches away for good */
1:      JUMP_PAD                            /* a materialized code address: keep it a landing pad */
        brk     #0x3c                       /* not reached */
        .cfi_endproc
        FUNC_SIZE(SYM(coop_fiber_trampoline))

COOP_OBJECT_NOTES
