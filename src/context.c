/* src/context.c — C companions of the assembly context switch (the context
 * layer: coop/context.h, arch/<arch>/switch.S): the handler for an entry
 * function that returns, and compile-time checks that the frame layout in
 * arch/<arch>/offsets.h is what C believes. Plain C with no runtime beyond
 * libc, so a C program can link the context layer with gcc alone.
 */
#include "coop/context.h"
#include "coop/export.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__)
#  include "../arch/x86_64/offsets.h"
#elif defined(__aarch64__)
#  include "../arch/aarch64/offsets.h"
#else
#  error "coop supports x86-64 and AArch64"
#endif

#if defined(__x86_64__)
struct saved_frame {             /* what coop_jump leaves at ctx */
    uint64_t r15, r14, r13, r12, rbx, rbp, rip;
};
struct saved_frame_fp {          /* what coop_jump_fp leaves at ctx */
    struct saved_frame regs;
    uint32_t mxcsr;
    uint16_t x87cw;
    uint16_t pad;
    uint64_t ret;
};
_Static_assert(offsetof(struct saved_frame, r15) == COOP_X64_R15, "offsets.h: r15");
_Static_assert(offsetof(struct saved_frame, r14) == COOP_X64_R14, "offsets.h: r14");
_Static_assert(offsetof(struct saved_frame, r13) == COOP_X64_R13, "offsets.h: r13");
_Static_assert(offsetof(struct saved_frame, r12) == COOP_X64_R12, "offsets.h: r12");
_Static_assert(offsetof(struct saved_frame, rbx) == COOP_X64_RBX, "offsets.h: rbx");
_Static_assert(offsetof(struct saved_frame, rbp) == COOP_X64_RBP, "offsets.h: rbp");
_Static_assert(offsetof(struct saved_frame, rip) == COOP_X64_RIP, "offsets.h: rip");
_Static_assert(sizeof(struct saved_frame) == COOP_X64_FRAME, "offsets.h: frame size");
_Static_assert(offsetof(struct saved_frame_fp, mxcsr) == COOP_X64_FP_MXCSR, "offsets.h: mxcsr");
_Static_assert(offsetof(struct saved_frame_fp, x87cw) == COOP_X64_FP_X87CW, "offsets.h: x87 cw");
_Static_assert(offsetof(struct saved_frame_fp, ret) == COOP_X64_FP_RET, "offsets.h: fp return");
_Static_assert(sizeof(struct saved_frame_fp) == COOP_X64_FP_FRAME, "offsets.h: fp frame size");
/* A fresh context: popping the frame must leave rsp 16-byte aligned. */
_Static_assert((COOP_X64_INIT_BELOW_TOP - COOP_X64_FRAME) % 16 == 0, "offsets.h: fresh alignment");
_Static_assert(COOP_X64_INIT_BELOW_TOP + 16 <= COOP_MIN_STACK, "offsets.h: minimum stack");
#elif defined(__aarch64__)
struct saved_frame {
    double d8, d9, d10, d11, d12, d13, d14, d15;
    uint64_t x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30;
};
struct saved_frame_fp {
    struct saved_frame regs;
    uint64_t fpcr;
    uint64_t ret;
};
_Static_assert(offsetof(struct saved_frame, d8) == COOP_A64_D8, "offsets.h: d8");
_Static_assert(offsetof(struct saved_frame, d10) == COOP_A64_D10, "offsets.h: d10");
_Static_assert(offsetof(struct saved_frame, d12) == COOP_A64_D12, "offsets.h: d12");
_Static_assert(offsetof(struct saved_frame, d14) == COOP_A64_D14, "offsets.h: d14");
_Static_assert(offsetof(struct saved_frame, x19) == COOP_A64_X19, "offsets.h: x19");
_Static_assert(offsetof(struct saved_frame, x21) == COOP_A64_X21, "offsets.h: x21");
_Static_assert(offsetof(struct saved_frame, x23) == COOP_A64_X23, "offsets.h: x23");
_Static_assert(offsetof(struct saved_frame, x25) == COOP_A64_X25, "offsets.h: x25");
_Static_assert(offsetof(struct saved_frame, x27) == COOP_A64_X27, "offsets.h: x27");
_Static_assert(offsetof(struct saved_frame, x29) == COOP_A64_X29, "offsets.h: x29");
_Static_assert(offsetof(struct saved_frame, x30) == COOP_A64_X30, "offsets.h: x30");
_Static_assert(sizeof(struct saved_frame) == COOP_A64_FRAME, "offsets.h: frame size");
_Static_assert(COOP_A64_FRAME % 16 == 0, "offsets.h: frame keeps sp aligned");
_Static_assert(offsetof(struct saved_frame_fp, fpcr) == COOP_A64_FP_FPCR, "offsets.h: fpcr");
_Static_assert(offsetof(struct saved_frame_fp, ret) == COOP_A64_FP_RET, "offsets.h: fp return");
_Static_assert(sizeof(struct saved_frame_fp) == COOP_A64_FP_FRAME, "offsets.h: fp frame size");
_Static_assert((COOP_A64_INIT_BELOW_TOP - COOP_A64_FRAME) % 16 == 0, "offsets.h: fresh alignment");
_Static_assert(COOP_A64_INIT_BELOW_TOP + 16 <= COOP_MIN_STACK, "offsets.h: minimum stack");
#endif

/* Called by coop_trampoline when an entry function returns. One line on
   stderr, then abort: continuing would run off the top of the stack. */
COOP_HIDDEN __attribute__((noreturn)) void coop_entry_returned(void);
void coop_entry_returned(void) {
    static const char msg[] = "coop: a context's entry function returned (it must jump away instead)\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    abort();
}
