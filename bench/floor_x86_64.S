/* bench/floor_x86_64.S — the floors under a context switch, x86-64 SysV.
 *
 * Two things set how fast a stackful switch can be on a given CPU, apart
 * from the loads and stores every switch does:
 *
 *  1. How its last instruction is predicted. A switch is entered by a `call`
 *     and continues in *another* context. If it leaves with `ret`, the CPU
 *     predicts the target from its return-stack buffer (RSB), whose top
 *     entry is the return address *our* call pushed; the real target is the
 *     other context's return address, so every switch mispredicts. If it
 *     leaves with `pop` + indirect `jmp`, the target comes from the indirect
 *     branch predictor, which keys on this jmp's address and recent branch
 *     history and learns a steady ping-pong. How large the RSB penalty is
 *     (pipeline depth, how fast the front end recovers) differs per core.
 *  2. What keeping the floating-point control state costs: MXCSR and the
 *     x87 control word, saved on one side and loaded on the other. Loading
 *     them (ldmxcsr, fldcw) is serialising or microcoded on many cores.
 *
 * coop_floor_switch_ret and coop_floor_switch_jmp are the same minimal
 * switch, byte for byte, up to the instructions that leave it. Both keep the
 * six callee-saved registers, so C++ code may call them like any function.
 * coop_floor_fp_env is a function that saves and restores the FP control
 * state once; timed next to an empty out-of-line call (kernels.hpp's
 * direct_callee) it shows that cost. bench/kernels.hpp declares them; the
 * suites (switch_bench) and coop-study time them.
 *
 * A context here is a stack pointer: below it the six registers, above them
 * the address to continue at (for a suspended switch: its caller's return
 * address). No property note is emitted: these objects claim no CET
 * feature, so a binary that links them claims none either (nothing in a
 * benchmark binary depends on that).
 */
#if defined(__APPLE__)
#  define SYM(name) _##name                 /* Mach-O prefixes C symbols with _ */
#  define FUNC_TYPE(name)
#  define FUNC_SIZE(name)
#else
#  define SYM(name) name
#  define FUNC_TYPE(name) .type name, @function
#  define FUNC_SIZE(name) .size name, .-name
#endif

#if defined(__CET__) && (__CET__ & 1)
#  define ENDBR endbr64                     /* IBT landing pad: called through pointers */
#  define JMP_BACK notrack jmp              /* return sites are no landing pads */
#else
#  define ENDBR
#  define JMP_BACK jmp
#endif

        .text

/* ------------------------------------------------------------------------
 * void coop_floor_switch_ret(void** save /rdi/, void* to /rsi/)
 * Store our context in *save, continue the context `to`; ends in `ret`.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_floor_switch_ret)
        FUNC_TYPE(SYM(coop_floor_switch_ret))
        .p2align 5                          /* both kernels start on a 32-byte boundary: same fetch blocks */
SYM(coop_floor_switch_ret):
        ENDBR
        pushq   %rbp                        /* callee-saved: the caller may keep values here */
        pushq   %rbx                        /* callee-saved */
        pushq   %r12                        /* callee-saved */
        pushq   %r13                        /* callee-saved */
        pushq   %r14                        /* callee-saved */
        pushq   %r15                        /* callee-saved; our return address sits above the six */
        movq    %rsp, (%rdi)                /* our context: this stack pointer */
        movq    %rsi, %rsp                  /* the other context's stack */
        popq    %r15                        /* its registers, in reverse order of the pushes */
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp                        /* rsp now points at the other side's return address */
        ret                                 /* popped and predicted from the RSB, whose top is OUR
                                               caller's address: wrong target on every switch */
        FUNC_SIZE(SYM(coop_floor_switch_ret))

/* ------------------------------------------------------------------------
 * void coop_floor_switch_jmp(void** save /rdi/, void* to /rsi/)
 * The same switch; ends in pop + indirect jmp.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_floor_switch_jmp)
        FUNC_TYPE(SYM(coop_floor_switch_jmp))
        .p2align 5
SYM(coop_floor_switch_jmp):
        ENDBR
        pushq   %rbp                        /* identical to coop_floor_switch_ret ... */
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp                        /* ... up to here */
        popq    %rcx                        /* the other side's return address, popped by hand
                                               (rcx: caller-saved, carries no return value) */
        JMP_BACK *%rcx                      /* indirect jmp: predicted from this jmp's own history,
                                               which in a ping-pong alternates between two known
                                               targets; the RSB is not consulted */
        FUNC_SIZE(SYM(coop_floor_switch_jmp))

/* ------------------------------------------------------------------------
 * void* coop_floor_make(void* top /rdi/, void (*entry)(void) /rsi/)
 * A fresh context below `top` for the two switches above: the first switch
 * into it continues at entry(), with rsp as right after a call.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_floor_make)
        FUNC_TYPE(SYM(coop_floor_make))
        .p2align 4
SYM(coop_floor_make):
        ENDBR
        movq    %rdi, %rax
        andq    $-16, %rax                  /* 16-byte aligned top */
        movq    $0, -8(%rax)                /* entry's (fake) return address: rsp = top - 8 at entry,
                                               8 mod 16, as after a call */
        movq    %rsi, -16(%rax)             /* where the first switch continues */
        xorl    %ecx, %ecx
        movq    %rcx, -24(%rax)             /* rbp = 0: frame-pointer walkers stop here */
        movq    %rcx, -32(%rax)             /* rbx */
        movq    %rcx, -40(%rax)             /* r12 */
        movq    %rcx, -48(%rax)             /* r13 */
        movq    %rcx, -56(%rax)             /* r14 */
        movq    %rcx, -64(%rax)             /* r15 */
        subq    $64, %rax                   /* the context: rsp with the six registers above it */
        ret
        FUNC_SIZE(SYM(coop_floor_make))

/* ------------------------------------------------------------------------
 * void coop_floor_fp_env(void)
 * Saves MXCSR and the x87 control word and loads them back, as a switch
 * that keeps the FP control state does once per switch (its own state saved
 * on one side, the other context's loaded on the other).
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_floor_fp_env)
        FUNC_TYPE(SYM(coop_floor_fp_env))
        .p2align 4
SYM(coop_floor_fp_env):
        ENDBR
        subq    $8, %rsp                    /* one word for both */
        stmxcsr (%rsp)                      /* SSE control/status register */
        fnstcw  4(%rsp)                     /* x87 control word */
        ldmxcsr (%rsp)                      /* load MXCSR: the costly half on most cores */
        fldcw   4(%rsp)                     /* load the x87 control word */
        addq    $8, %rsp
        ret                                 /* a plain return: predicted, as in direct_callee */
        FUNC_SIZE(SYM(coop_floor_fp_env))

#if defined(__linux__) && defined(__ELF__)
        .section .note.GNU-stack,"",@progbits   /* no executable stack */
#endif
