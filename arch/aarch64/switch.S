/* arch/aarch64/switch.S — coop_make, coop_jump and coop_jump_fp for AAPCS64
 * (Linux, BSD, macOS).
 *
 * Callee-saved state under AAPCS64: x19-x28, x29 (frame pointer), x30 (link
 * register, saved as the address to continue at), sp, the low 64 bits of
 * v8-v15 (d8-d15), and FPCR. x18 is the platform register and is left alone.
 * The frame layout is in offsets.h.
 *
 * How a switch ends. `ret` is predicted from the return-address stack, which
 * holds *our* caller, while the switch continues in the *other* context, so
 * `ret` mispredicts on every switch. `br x30` is predicted by the indirect
 * predictor from this site's history instead, which is right every time in
 * a steady ping-pong. But under BTI, `br` may only land on a `bti j` pad, and
 * the return site after a `bl` is not one. So:
 *   - builds without BTI (the default): end with `br x30`;
 *   - builds with -mbranch-protection=bti/standard: end with `ret`, which BTI
 *     does not check, and pay the misprediction. Correctness first.
 *
 * PAC. With -mbranch-protection=pac-ret/standard, the saved x30 is signed
 * with paciasp before it is stored and authenticated with autiasp after the
 * frame is popped, so a forged saved context faults instead of running. The
 * stack pointer is the modifier, and it is the same at save and restore
 * because each context resumes on its own stack at the same depth. coop_make
 * signs the trampoline address with pacia1716 for the same reason. All three
 * are in the hint space: no-ops on cores without PAC.
 */
#include "offsets.h"
#include "../asm.h"
#include "hardening.h"

        .text

/* ------------------------------------------------------------------------
 * coop_transfer coop_jump(coop_ctx to /x0/, void* data /x1/)
 * returns {ctx /x0/, data /x1/}
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_jump)
        FUNC_TYPE(SYM(coop_jump))
        .p2align 4
SYM(coop_jump):
        .cfi_startproc
        ENTRY_PAD                           /* may be called through a pointer */
L(save):
        SIGN_LR                             /* PAC: sign the continuation with the entry sp */
        sub     sp, sp, #COOP_A64_FRAME     /* room for the frame; sp stays 16-aligned */
        .cfi_adjust_cfa_offset COOP_A64_FRAME
        stp     d8,  d9,  [sp, #COOP_A64_D8]    /* callee-saved FP (low halves of v8-v15) */
        stp     d10, d11, [sp, #COOP_A64_D10]
        stp     d12, d13, [sp, #COOP_A64_D12]
        stp     d14, d15, [sp, #COOP_A64_D14]
        stp     x19, x20, [sp, #COOP_A64_X19]   /* callee-saved integer registers */
        stp     x21, x22, [sp, #COOP_A64_X21]
        stp     x23, x24, [sp, #COOP_A64_X23]
        stp     x25, x26, [sp, #COOP_A64_X25]
        stp     x27, x28, [sp, #COOP_A64_X27]
        stp     x29, x30, [sp, #COOP_A64_X29]   /* frame pointer and the continuation */
        mov     x9, sp                      /* our ctx; x9 is a scratch register */
        mov     sp, x0                      /* switch stacks: sp = the target's saved frame */
        mov     x0, x9                      /* 1st return register: who jumped (us); x1 = data already */
L(resume):
        /* On the target's stack: restore what its own save stored.
           x0/x1 hold the coop_transfer being returned. */
        ldp     d8,  d9,  [sp, #COOP_A64_D8]
        ldp     d10, d11, [sp, #COOP_A64_D10]
        ldp     d12, d13, [sp, #COOP_A64_D12]
        ldp     d14, d15, [sp, #COOP_A64_D14]
        ldp     x19, x20, [sp, #COOP_A64_X19]
        ldp     x21, x22, [sp, #COOP_A64_X21]
        ldp     x23, x24, [sp, #COOP_A64_X23]
        ldp     x25, x26, [sp, #COOP_A64_X25]
        ldp     x27, x28, [sp, #COOP_A64_X27]
        ldp     x29, x30, [sp, #COOP_A64_X29]
        add     sp, sp, #COOP_A64_FRAME     /* pop the frame: sp is what it was at the save */
        AUTH_LR                             /* PAC: check the continuation against that sp */
        CONTINUE                            /* see the file comment for ret vs br */
        .cfi_endproc
        FUNC_SIZE(SYM(coop_jump))

/* ------------------------------------------------------------------------
 * coop_transfer coop_jump_fp(coop_ctx to /x0/, void* data /x1/)
 * As coop_jump; the caller's FPCR is restored when the caller is resumed.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_jump_fp)
        FUNC_TYPE(SYM(coop_jump_fp))
        .p2align 4
SYM(coop_jump_fp):
        .cfi_startproc
        ENTRY_PAD
        SIGN_LR                             /* PAC: sign the caller's return address, entry sp */
        mrs     x9, fpcr                    /* FPCR is callee-saved under AAPCS64 */
        stp     x9, x30, [sp, #-16]!        /* push FPCR and the caller's return address */
        .cfi_adjust_cfa_offset 16
        adr     x30, L(fp_restore)          /* continue in the restore stub when resumed */
        b       L(save)                     /* the common save + switch (signs x30 again) */
        .cfi_endproc

        .p2align 4
L(fp_restore):
        .cfi_startproc
        JUMP_PAD                            /* target of the resume's branch (a pad only matters in BTI builds) */
        ldp     x9, x30, [sp], #16          /* FPCR and the caller's return address */
        msr     fpcr, x9                    /* our FPCR back */
        AUTH_LR                             /* PAC: sp is the entry sp again */
        CONTINUE                            /* x0/x1 still hold the coop_transfer */
        .cfi_endproc
        FUNC_SIZE(SYM(coop_jump_fp))

/* ------------------------------------------------------------------------
 * coop_ctx coop_make(void* stack_top /x0/, size_t size /x1/,
 *                    void (*entry)(coop_transfer) /x2/)
 * Builds a frame whose first resume continues in coop_trampoline.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_make)
        FUNC_TYPE(SYM(coop_make))
        .p2align 4
SYM(coop_make):
        .cfi_startproc
        ENTRY_PAD
        cmp     x1, #COOP_MIN_STACK         /* too small for the frame and a first call */
        b.lo    1f
        and     x9, x0, #~15                /* align the top down to 16 */
        stp     xzr, xzr, [x9, #-16]        /* a null frame record above the frame */
        sub     x0, x9, #COOP_A64_INIT_BELOW_TOP  /* ctx: sp of the fresh context */
        stp     xzr, xzr, [x0, #COOP_A64_D8]    /* FP registers start as zero */
        stp     xzr, xzr, [x0, #COOP_A64_D10]
        stp     xzr, xzr, [x0, #COOP_A64_D12]
        stp     xzr, xzr, [x0, #COOP_A64_D14]
        stp     x2,  xzr, [x0, #COOP_A64_X19]   /* x19 carries entry into the trampoline */
        stp     xzr, xzr, [x0, #COOP_A64_X21]
        stp     xzr, xzr, [x0, #COOP_A64_X23]
        stp     xzr, xzr, [x0, #COOP_A64_X25]
        stp     xzr, xzr, [x0, #COOP_A64_X27]
        adr     x17, SYM(coop_trampoline)   /* the first continuation */
#if COOP_PAC
        add     x16, x0, #COOP_A64_FRAME    /* the sp the resume will authenticate with */
        PACIA1716                           /* sign x17 with it */
#endif
        stp     xzr, x17, [x0, #COOP_A64_X29]   /* x29 = 0 ends frame-record chains */
        ret
1:      mov     x0, #0                      /* NULL: stack too small */
        ret
        .cfi_endproc
        FUNC_SIZE(SYM(coop_make))

/* The first instruction a fresh context runs. x0/x1 hold the coop_transfer
   of the jump that started it; sp is 16-byte aligned. The CFI marks x30 as
   undefined so unwinders (gdb, libgcc, perf) stop here instead of walking
   off the top of the coroutine stack. */
        .globl  SYM(coop_trampoline)
        HIDDEN(coop_trampoline)             /* named for backtraces, not exported */
        FUNC_TYPE(SYM(coop_trampoline))
        .p2align 4
SYM(coop_trampoline):
        .cfi_startproc
        .cfi_undefined x30                  /* outermost frame */
        JUMP_PAD                            /* reached by the resume's branch */
        mov     x29, #0                     /* no caller frame record */
        blr     x19                         /* entry(t): x0 = t.ctx, x1 = t.data */
        bl      SYM(coop_entry_returned)    /* entry must not return: print and abort */
        brk     #0x3c                       /* not reached */
        .cfi_endproc
        FUNC_SIZE(SYM(coop_trampoline))

COOP_OBJECT_NOTES
