/* arch/aarch64/offsets.h — layout of a suspended context under AAPCS64.
 *
 * Included by arch/aarch64/switch.S (as preprocessed assembly) and by C
 * (src/context.c), which checks every offset against a struct with
 * static_assert(offsetof(...)). This file is the only place the numbers live.
 *
 * A coop_ctx is the suspended stack pointer and points at this frame:
 *
 *   ctx + 0 .. 56    d8-d15   low 64 bits of v8-v15 (callee-saved)
 *   ctx + 64 .. 136  x19-x28  callee-saved integer registers
 *   ctx + 144        x29      frame pointer
 *   ctx + 152        x30      where to continue (PAC-signed in PAC builds,
 *                             with the stack pointer after the frame is
 *                             popped as modifier)
 *
 * x18 (the platform register) is never touched.
 *
 * coop_jump_fp pushes 16 more bytes above the frame first:
 *   ctx + 160        FPCR
 *   ctx + 168        the caller's return address (x30)
 */
#ifndef COOP_ARCH_AARCH64_OFFSETS_H
#define COOP_ARCH_AARCH64_OFFSETS_H

#define COOP_A64_D8 0
#define COOP_A64_D10 16
#define COOP_A64_D12 32
#define COOP_A64_D14 48
#define COOP_A64_X19 64
#define COOP_A64_X21 80
#define COOP_A64_X23 96
#define COOP_A64_X25 112
#define COOP_A64_X27 128
#define COOP_A64_X29 144
#define COOP_A64_X30 152
#define COOP_A64_FRAME 160         /* bytes popped by a resume; a multiple of 16 */

#define COOP_A64_FP_FPCR 160       /* coop_jump_fp's extra 16 bytes */
#define COOP_A64_FP_RET 168
#define COOP_A64_FP_FRAME 176

/* A fresh context: ctx = (stack_top & ~15) - COOP_A64_INIT_BELOW_TOP; after
   the resume pops the frame, sp is 16 bytes below the aligned top. */
#define COOP_A64_INIT_BELOW_TOP 176
/* Smallest stack coop_make accepts. */
#define COOP_MIN_STACK 256

#endif
