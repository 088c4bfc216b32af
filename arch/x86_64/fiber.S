/* arch/x86_64/fiber.S — the entry trampoline of the coroutine layer's
 * fibers (coop::coroutine, reactor tasks), System V x86-64. The context
 * layer (switch.S, coop/context.h) does not use it: a C program that links
 * only coop_make/coop_jump never pulls this object in.
 *
 * The stack layout of a fresh fiber is defined in coop/detail/fiber_layout.h.
 */
#include <coop/detail/fiber_layout.h>
#include "../asm.h"
#include "hardening.h"

        .text

/* ------------------------------------------------------------------------
 * coop_fiber_trampoline: where a fiber starts. The switch in
 * coop/detail/fiber_switch.hpp pops this address off a fresh stack and jumps
 * here. Register contract at entry:
 *   rdx  the data handed over by the first switch into the fiber
 *   rsp  16-byte aligned, COOP_FIBER_BLOCK_ABOVE_SP below the fiber's
 *        control block (fiber_layout.h)
 *   rbp  whatever the switching code had (cleared below)
 * The CFI marks rip as undefined: unwinders (gdb, libgcc, perf) stop here
 * instead of walking off the top of the fiber's stack.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_fiber_trampoline)
        HIDDEN(coop_fiber_trampoline)       /* only libcoop builds fresh fibers */
        FUNC_TYPE(SYM(coop_fiber_trampoline))
        .p2align 4
SYM(coop_fiber_trampoline):
        .cfi_startproc
        .cfi_undefined rip                  /* outermost frame */
        ENDBR                               /* reached by the resume's indirect jmp */
        xorl    %ebp, %ebp                  /* no caller frame */
        leaq    COOP_FIBER_BLOCK_ABOVE_SP(%rsp), %rdi  /* the control block -> 1st argument */
        movq    %rdx, %rsi                  /* the first resume's data -> 2nd argument */
        /* Enter coop_fiber_main as if called from label 1 below, but with a
           jmp: a real call would push a return-stack-buffer entry that is
           never popped (coop_fiber_main never returns), leaving every later
           ret of the resumer one entry off. The fake return address lies
           inside this function, whose CFI ends every unwind. */
        leaq    1f(%rip), %rax
        pushq   %rax                        /* return address: rsp+8 is 16-aligned at entry, as after a call */
        jmp     SYM(coop_fiber_main)        /* runs the body, then switches away for good */
1:      ENDBR                               /* a materialized code address: keep it a landing pad */
        ud2                                 /* not reached */
        .cfi_endproc
        FUNC_SIZE(SYM(coop_fiber_trampoline))

COOP_OBJECT_NOTES
