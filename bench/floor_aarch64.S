/* bench/floor_aarch64.S — the floors under a context switch, AAPCS64.
 *
 * The same two questions as bench/floor_x86_64.S, asked of an AArch64 core:
 *
 *  1. How the switch's last instruction is predicted. `ret` (= ret x30) is
 *     predicted from the return-address stack, whose top entry is what
 *     *our* `bl` pushed, while the switch continues in *another* context:
 *     every switch mispredicts. `br x30` jumps to the same register but is
 *     an ordinary indirect branch, predicted from this instruction's own
 *     history, which learns a steady ping-pong.
 *  2. What keeping FPCR costs: read on one side, written on the other.
 *     Writing FPCR is self-synchronising on many cores.
 *
 * coop_floor_switch_ret and coop_floor_switch_jmp are the same minimal
 * switch up to their last instruction. Both keep every callee-saved
 * register (x19-x28, x29, x30, d8-d15), so C++ code may call them like any
 * function; x18 (the platform register) is not touched. coop_floor_fp_env
 * reads FPCR and writes it back once; timed next to an empty out-of-line
 * call (kernels.hpp's direct_callee) it shows that cost. bench/kernels.hpp
 * declares them; switch_bench and coop-study time them.
 *
 * A context is a stack pointer with a 160-byte frame above it: x19..x30 at
 * 0..95, d8..d15 at 96..159. x30 is the address to continue at. Every entry
 * starts with `bti c` (a NOP without BTI). No property note is emitted, so
 * a binary linking these claims neither BTI nor PAC, and `br x30` to a
 * return site is allowed; these kernels do not sign return addresses.
 */
#if defined(__APPLE__)
#  define SYM(name) _##name                 /* Mach-O prefixes C symbols with _ */
#  define FUNC_TYPE(name)
#  define FUNC_SIZE(name)
#else
#  define SYM(name) name
#  define FUNC_TYPE(name) .type name, %function
#  define FUNC_SIZE(name) .size name, .-name
#endif

#define BTI_C hint #34                      /* landing pad for calls; a NOP without BTI */

/* The frame both switches push and pop, identical in both (assembler
   macros: a `;` separator would be a comment on Darwin). */
        .macro  save_frame
        sub     sp, sp, #160                /* room for the frame */
        stp     x19, x20, [sp, #0]          /* callee-saved */
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]         /* x30: where our caller continues */
        stp     d8, d9, [sp, #96]           /* low halves of v8-v15 are callee-saved */
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        .endm

        .macro  load_frame
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]         /* x30: where the other side continues */
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        .endm

        .text

/* ------------------------------------------------------------------------
 * void coop_floor_switch_ret(void** save /x0/, void* to /x1/)
 * Store our context in *save, continue the context `to`; ends in `ret`.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_floor_switch_ret)
        FUNC_TYPE(SYM(coop_floor_switch_ret))
        .p2align 6                          /* both kernels start on a 64-byte boundary */
SYM(coop_floor_switch_ret):
        BTI_C
        save_frame                          /* our registers and return address */
        mov     x9, sp
        str     x9, [x0]                    /* our context: this stack pointer */
        mov     sp, x1                      /* the other context's stack */
        load_frame                          /* its registers; x30 = its return address */
        ret                                 /* predicted from the return-address stack, whose top
                                               is OUR caller: wrong target on every switch */
        FUNC_SIZE(SYM(coop_floor_switch_ret))

/* ------------------------------------------------------------------------
 * void coop_floor_switch_jmp(void** save /x0/, void* to /x1/)
 * The same switch; ends in `br x30`.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_floor_switch_jmp)
        FUNC_TYPE(SYM(coop_floor_switch_jmp))
        .p2align 6
SYM(coop_floor_switch_jmp):
        BTI_C
        save_frame                          /* identical to coop_floor_switch_ret ... */
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        load_frame                          /* ... up to here */
        br      x30                         /* same register, but an indirect branch: predicted
                                               from this br's own history (two alternating
                                               targets in a ping-pong), not from the RAS */
        FUNC_SIZE(SYM(coop_floor_switch_jmp))

/* ------------------------------------------------------------------------
 * void* coop_floor_make(void* top /x0/, void (*entry)(void) /x1/)
 * A fresh context below `top`: the first switch into it continues at
 * entry() with sp = the 16-byte aligned top and a null frame record.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_floor_make)
        FUNC_TYPE(SYM(coop_floor_make))
        .p2align 4
SYM(coop_floor_make):
        BTI_C
        and     x0, x0, #-16                /* 16-byte aligned top */
        sub     x0, x0, #160                /* the frame below it */
        stp     xzr, xzr, [x0, #0]          /* callee-saved registers start as zero */
        stp     xzr, xzr, [x0, #16]
        stp     xzr, xzr, [x0, #32]
        stp     xzr, xzr, [x0, #48]
        stp     xzr, xzr, [x0, #64]
        stp     xzr, x1, [x0, #80]          /* x29 = 0 ends frame chains; x30 = entry */
        stp     xzr, xzr, [x0, #96]
        stp     xzr, xzr, [x0, #112]
        stp     xzr, xzr, [x0, #128]
        stp     xzr, xzr, [x0, #144]
        ret
        FUNC_SIZE(SYM(coop_floor_make))

/* ------------------------------------------------------------------------
 * void coop_floor_fp_env(void)
 * Reads FPCR and writes it back, as a switch that keeps the FP control
 * state does once per switch.
 * ------------------------------------------------------------------------ */
        .globl  SYM(coop_floor_fp_env)
        FUNC_TYPE(SYM(coop_floor_fp_env))
        .p2align 4
SYM(coop_floor_fp_env):
        BTI_C
        mrs     x9, fpcr                    /* read: cheap */
        msr     fpcr, x9                    /* write: the costly half on most cores */
        ret                                 /* a plain return: predicted, as in direct_callee */
        FUNC_SIZE(SYM(coop_floor_fp_env))

#if defined(__linux__) && defined(__ELF__)
        .section .note.GNU-stack,"",%progbits   /* no executable stack */
#endif
