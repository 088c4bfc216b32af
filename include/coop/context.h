/* coop/context.h — the lowest layer of coop: a hand-written context switch.
 *
 * Usable from C and C++. Both functions are defined in assembly:
 *   arch/x86_64/switch.S  (System V x86-64)
 *   arch/aarch64/switch.S (AAPCS64)
 *
 * A context is a suspended execution: a stack pointer whose top holds the
 * callee-saved registers and the address to continue at. A context is
 * consumed by jumping to it; the jump hands back a fresh context for the
 * side that was suspended, so every context is resumed at most once.
 *
 * FP environment. The callee-saved FP *control* state (x86-64: MXCSR and the
 * x87 control word; AArch64: FPCR) is not touched by coop_jump: all contexts
 * on a thread share one FP environment, the fast choice also made by marl and
 * corosensei. coop_jump_fp additionally saves the caller's FP control state
 * and restores it when the caller is resumed, so a context that always
 * switches through coop_jump_fp keeps its own rounding mode, exception masks
 * and flush-to-zero setting. The two jumps interoperate freely: each side
 * restores only its own state when it is resumed.
 */
#ifndef COOP_CONTEXT_H
#define COOP_CONTEXT_H

#include <coop/export.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A suspended context. */
typedef void* coop_ctx;

/* What a jump delivers: the context that jumped (jump to it to go back) and
   the pointer it passed. */
typedef struct coop_transfer {
    coop_ctx ctx;
    void* data;
} coop_transfer;

/* Prepare a context that runs entry(t) on the stack [stack_top - size,
   stack_top) at its first jump. t.ctx is the context that jumped in, t.data
   what it passed. entry must never return: if it does, the process prints one
   line on stderr and aborts. stack_top need not be aligned; the context uses
   at most 128 bytes below the aligned top before entry runs. Returns NULL if
   size is too small to hold the initial frame. */
COOP_API coop_ctx coop_make(void* stack_top, size_t size, void (*entry)(coop_transfer));

/* Suspend the caller, resume `to`, hand it `data`. Returns when someone jumps
   back: .ctx is the context that jumped to us (jump there to go back), .data
   what it passed. Shares the thread's FP control state (see above). */
COOP_API coop_transfer coop_jump(coop_ctx to, void* data);

/* As coop_jump, and also preserves the caller's FP control state across the
   suspension (x86-64: MXCSR + x87 control word; AArch64: FPCR). */
COOP_API coop_transfer coop_jump_fp(coop_ctx to, void* data);

#ifdef __cplusplus
}
#endif

#endif /* COOP_CONTEXT_H */
