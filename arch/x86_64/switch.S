/* arch/x86_64/switch.S — coop_make, coop_jump and coop_jump_fp for the
 * System V x86-64 ABI (Linux, BSD, macOS).
 *
 * Callee-saved state under SysV: rbx, rbp, r12-r15, rsp, and the control
 * bits of MXCSR and the x87 control word. rip is saved implicitly as the
 * address to continue at. The frame layout is in offsets.h.
 *
 * Why pop + indirect jmp instead of ret. A `ret` is predicted from the
 * return-stack buffer, which holds the return address pushed by *our* call;
 * after the stack switch we return into the *other* context, so a `ret`
 * would mispredict on every switch (measured on the development machine:
 * ~19 ns against ~5 ns per round trip). An indirect `jmp` is predicted by the
 * branch target buffer from this very site's history, which is right every
 * time in a steady ping-pong. The call that entered coop_jump leaves its
 * entry on the return-stack buffer; later rets in the resumed context may
 * therefore meet one stale entry, which costs one misprediction at most and
 * only when the stacks unwind, not per switch.
 *
 * CET: landing pads (ENDBR, notrack JMP_BACK) and the IBT property note
 * come from hardening.h.
 */
#include "offsets.h"
#include "../asm.h"
#include "hardening.h"

        .text

/* ------------------------------------------------------------------------
 * coop_transfer coop_jump(coop_ctx to /rdi/, void* data /rsi/)
 * returns {ctx /rax/, data /rdx/}
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_jump)
        FUNC_TYPE(SYM(coop_jump))
        .p2align 4
SYM(coop_jump):
        .cfi_startproc
        ENDBR                               /* may be called through a pointer */
L(save):
        /* The call pushed our return address: it is the frame's rip slot. */
        pushq   %rbp                        /* callee-saved: frame pointer */
        .cfi_adjust_cfa_offset 8
        pushq   %rbx                        /* callee-saved */
        .cfi_adjust_cfa_offset 8
        pushq   %r12                        /* callee-saved */
        .cfi_adjust_cfa_offset 8
        pushq   %r13                        /* callee-saved */
        .cfi_adjust_cfa_offset 8
        pushq   %r14                        /* callee-saved */
        .cfi_adjust_cfa_offset 8
        pushq   %r15                        /* callee-saved; rsp is now our ctx */
        .cfi_adjust_cfa_offset 8
        movq    %rsp, %rax                  /* 1st return word of the other side: who jumped (us) */
        movq    %rsi, %rdx                  /* 2nd return word: the data we pass */
        movq    %rdi, %rsp                  /* switch stacks: rsp = the target's saved frame */
L(resume):
        /* From here on we run on the target's stack and restore what its
           own save pushed. rax/rdx hold the coop_transfer being returned. */
        popq    %r15                        /* restore callee-saved */
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        popq    %rcx                        /* where the target continues; rcx is caller-saved and not a return register */
        JMP_BACK *%rcx                      /* indirect jmp, not ret: see the file comment */
        .cfi_endproc
        FUNC_SIZE(SYM(coop_jump))

/* ------------------------------------------------------------------------
 * coop_transfer coop_jump_fp(coop_ctx to /rdi/, void* data /rsi/)
 * As coop_jump, and the caller's MXCSR and x87 control word are restored
 * when the caller is resumed, whatever the other contexts did meanwhile.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_jump_fp)
        FUNC_TYPE(SYM(coop_jump_fp))
        .p2align 4
SYM(coop_jump_fp):
        .cfi_startproc
        ENDBR
        subq    $8, %rsp                    /* one word for the FP control state */
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)                      /* SSE control/status (callee-saved control bits) */
        fnstcw  4(%rsp)                     /* x87 control word (callee-saved) */
        leaq    L(fp_restore)(%rip), %rcx    /* continue in the restore stub when resumed */
        pushq   %rcx                        /* ... it becomes the frame's rip slot */
        .cfi_adjust_cfa_offset 8
        jmp     L(save)                      /* the common save + switch */
        .cfi_endproc

        .p2align 4
L(fp_restore):
        .cfi_startproc
        .cfi_def_cfa_offset 16              /* rsp -> FP word, then the caller's return address */
        ENDBR                               /* reached by the indirect jmp in L(resume) */
        ldmxcsr (%rsp)                      /* our MXCSR back, flags included */
        fldcw   4(%rsp)                     /* our x87 control word back */
        leaq    8(%rsp), %rsp               /* drop the FP word (lea: leaves flags alone) */
        .cfi_def_cfa_offset 8
        popq    %rcx                        /* the caller's return address */
        .cfi_def_cfa_offset 0
        JMP_BACK *%rcx                      /* rax/rdx still hold the coop_transfer */
        .cfi_endproc
        FUNC_SIZE(SYM(coop_jump_fp))

/* ------------------------------------------------------------------------
 * coop_ctx coop_make(void* stack_top /rdi/, size_t size /rsi/,
 *                    void (*entry)(coop_transfer) /rdx/)
 * Builds a frame whose first resume continues in coop_trampoline.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_make)
        FUNC_TYPE(SYM(coop_make))
        .p2align 4
SYM(coop_make):
        .cfi_startproc
        ENDBR
        cmpq    $COOP_MIN_STACK, %rsi       /* too small for the frame and a first call */
        jb      1f
        movq    %rdi, %rax
        andq    $-16, %rax                  /* align the top down to 16 */
        movq    $0, -8(%rax)                /* a zero word above the frame: a null "return address" */
        movq    $0, -16(%rax)               /* and a null saved frame pointer for frame-pointer walkers */
        subq    $COOP_X64_INIT_BELOW_TOP, %rax   /* ctx: rsp of the fresh context */
        xorl    %ecx, %ecx
        movq    %rcx, COOP_X64_R15(%rax)    /* callee-saved registers start as zero */
        movq    %rcx, COOP_X64_R14(%rax)
        movq    %rcx, COOP_X64_R13(%rax)
        movq    %rcx, COOP_X64_R12(%rax)
        movq    %rdx, COOP_X64_RBX(%rax)    /* rbx carries entry into the trampoline */
        movq    %rcx, COOP_X64_RBP(%rax)    /* rbp = 0 terminates frame-pointer chains */
        leaq    SYM(coop_trampoline)(%rip), %rcx
        movq    %rcx, COOP_X64_RIP(%rax)    /* first resume continues in the trampoline */
        ret
1:      xorl    %eax, %eax                  /* NULL: stack too small */
        ret
        .cfi_endproc
        FUNC_SIZE(SYM(coop_make))

/* The first instruction a fresh context runs. rax/rdx hold the coop_transfer
   of the jump that started it; rsp is 16-byte aligned. The CFI marks rip as
   undefined so unwinders (gdb, libgcc, perf) stop here instead of walking
   off the top of the coroutine stack. */
        .globl  SYM(coop_trampoline)
        HIDDEN(coop_trampoline)             /* named for backtraces, not exported */
        FUNC_TYPE(SYM(coop_trampoline))
        .p2align 4
SYM(coop_trampoline):
        .cfi_startproc
        .cfi_undefined rip                  /* outermost frame */
        ENDBR                               /* reached by the indirect jmp in L(resume) */
        xorl    %ebp, %ebp                  /* no caller frame (already zero; made explicit) */
        movq    %rax, %rdi                  /* coop_transfer.ctx -> 1st eightbyte of the argument */
        movq    %rdx, %rsi                  /* coop_transfer.data -> 2nd eightbyte */
        callq   *%rbx                       /* entry(t); rsp+8 is 16-aligned inside, as after any call */
        callq   SYM(coop_entry_returned)    /* entry must not return: print and abort */
        ud2                                 /* not reached */
        .cfi_endproc
        FUNC_SIZE(SYM(coop_trampoline))

COOP_OBJECT_NOTES
