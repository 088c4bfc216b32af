/* arch/x86_64/offsets.h — layout of a suspended context on System V x86-64.
 *
 * Included by arch/x86_64/switch.S (as preprocessed assembly) and by C
 * (src/context.c), which checks every offset against a struct with
 * static_assert(offsetof(...)). This file is the only place the numbers live.
 *
 * A coop_ctx points at the lowest word of this frame, on the suspended stack:
 *
 *   ctx + 0   r15   \
 *   ctx + 8   r14    |
 *   ctx + 16  r13    |  the callee-saved integer registers of the SysV ABI
 *   ctx + 24  r12    |  (rsp itself is the context pointer)
 *   ctx + 32  rbx    |
 *   ctx + 40  rbp   /
 *   ctx + 48  rip   where to continue: the caller's return address for
 *                   coop_jump, an internal restore stub for coop_jump_fp,
 *                   the entry trampoline for a fresh context
 *
 * coop_jump_fp pushes one more word before the frame above:
 *   ctx + 56  mxcsr (low 4 bytes), x87 control word (next 2 bytes)
 *   ctx + 64  the caller's return address
 */
#ifndef COOP_ARCH_X86_64_OFFSETS_H
#define COOP_ARCH_X86_64_OFFSETS_H

#define COOP_X64_R15 0
#define COOP_X64_R14 8
#define COOP_X64_R13 16
#define COOP_X64_R12 24
#define COOP_X64_RBX 32
#define COOP_X64_RBP 40
#define COOP_X64_RIP 48
#define COOP_X64_FRAME 56          /* bytes popped by a resume */

#define COOP_X64_FP_MXCSR 56       /* coop_jump_fp's extra word */
#define COOP_X64_FP_X87CW 60
#define COOP_X64_FP_RET 64
#define COOP_X64_FP_FRAME 72

/* A fresh context: ctx = (stack_top & ~15) - COOP_X64_INIT_BELOW_TOP, so that
   after the resume pops COOP_X64_FRAME bytes rsp is 16-byte aligned and the
   trampoline's call gives entry the alignment of a normal call. */
#define COOP_X64_INIT_BELOW_TOP 72
/* Smallest stack coop_make accepts. */
#define COOP_MIN_STACK 256

#endif
