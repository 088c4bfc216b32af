// src/context.cpp — C++ companions of the assembly context switch: the
// handler for an entry function that returns, and compile-time checks that
// the frame layout in arch/<arch>/offsets.h is what the C++ side believes.
#include "coop/context.h"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__)
#  include "../arch/x86_64/offsets.h"
#elif defined(__aarch64__)
#  include "../arch/aarch64/offsets.h"
#else
#  error "coop supports x86-64 and AArch64"
#endif

namespace {

#if defined(__x86_64__)
struct saved_frame {             // what coop_jump leaves at ctx
    std::uint64_t r15, r14, r13, r12, rbx, rbp, rip;
};
struct saved_frame_fp {          // what coop_jump_fp leaves at ctx
    saved_frame regs;
    std::uint32_t mxcsr;
    std::uint16_t x87cw;
    std::uint16_t pad;
    std::uint64_t ret;
};
static_assert(offsetof(saved_frame, r15) == COOP_X64_R15);
static_assert(offsetof(saved_frame, r14) == COOP_X64_R14);
static_assert(offsetof(saved_frame, r13) == COOP_X64_R13);
static_assert(offsetof(saved_frame, r12) == COOP_X64_R12);
static_assert(offsetof(saved_frame, rbx) == COOP_X64_RBX);
static_assert(offsetof(saved_frame, rbp) == COOP_X64_RBP);
static_assert(offsetof(saved_frame, rip) == COOP_X64_RIP);
static_assert(sizeof(saved_frame) == COOP_X64_FRAME);
static_assert(offsetof(saved_frame_fp, mxcsr) == COOP_X64_FP_MXCSR);
static_assert(offsetof(saved_frame_fp, x87cw) == COOP_X64_FP_X87CW);
static_assert(offsetof(saved_frame_fp, ret) == COOP_X64_FP_RET);
static_assert(sizeof(saved_frame_fp) == COOP_X64_FP_FRAME);
// A fresh context: popping the frame must leave rsp 16-byte aligned.
static_assert((COOP_X64_INIT_BELOW_TOP - COOP_X64_FRAME) % 16 == 0);
static_assert(COOP_X64_INIT_BELOW_TOP + 16 <= COOP_MIN_STACK);
#elif defined(__aarch64__)
struct saved_frame {
    double d8, d9, d10, d11, d12, d13, d14, d15;
    std::uint64_t x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30;
};
struct saved_frame_fp {
    saved_frame regs;
    std::uint64_t fpcr;
    std::uint64_t ret;
};
static_assert(offsetof(saved_frame, d8) == COOP_A64_D8);
static_assert(offsetof(saved_frame, d10) == COOP_A64_D10);
static_assert(offsetof(saved_frame, d12) == COOP_A64_D12);
static_assert(offsetof(saved_frame, d14) == COOP_A64_D14);
static_assert(offsetof(saved_frame, x19) == COOP_A64_X19);
static_assert(offsetof(saved_frame, x21) == COOP_A64_X21);
static_assert(offsetof(saved_frame, x23) == COOP_A64_X23);
static_assert(offsetof(saved_frame, x25) == COOP_A64_X25);
static_assert(offsetof(saved_frame, x27) == COOP_A64_X27);
static_assert(offsetof(saved_frame, x29) == COOP_A64_X29);
static_assert(offsetof(saved_frame, x30) == COOP_A64_X30);
static_assert(sizeof(saved_frame) == COOP_A64_FRAME);
static_assert(COOP_A64_FRAME % 16 == 0);
static_assert(offsetof(saved_frame_fp, fpcr) == COOP_A64_FP_FPCR);
static_assert(offsetof(saved_frame_fp, ret) == COOP_A64_FP_RET);
static_assert(sizeof(saved_frame_fp) == COOP_A64_FP_FRAME);
static_assert((COOP_A64_INIT_BELOW_TOP - COOP_A64_FRAME) % 16 == 0);
static_assert(COOP_A64_INIT_BELOW_TOP + 16 <= COOP_MIN_STACK);
#endif

} // namespace

// Called by the trampoline when an entry function returns. One line on
// stderr, then abort: continuing would run off the top of the stack.
extern "C" __attribute__((visibility("hidden"), noreturn)) void coop_entry_returned(void) {
    static const char msg[] = "coop: a context's entry function returned (it must jump away instead)\n";
    ssize_t r = ::write(2, msg, sizeof msg - 1);
    (void)r;
    std::abort();
}
