// coop/detail/fiber_switch.hpp — the asymmetric switch under coop::coroutine.
//
// coop_jump (arch/<arch>/switch.S) is symmetric: both directions leave
// through the same `jmp *reg`, whose target alternates between the two
// sides, and no `ret` can be used because the return-address stack (RAS)
// holds the wrong address. A coroutine is asymmetric — resume() always
// enters, yield() always goes back to whoever resumed — and that lets the
// return predictor work for us:
//
//   resume:  call 1f          the RAS and the resumer's stack get R
//            1: save sp, load the coroutine's sp, pop its continuation,
//               jmp to it      (one target per resume site: predicted)
//   yield:   push our continuation, save sp, load the resumer's sp,
//            ret              (pops R, which is exactly the RAS top: predicted)
//
// Measured on the development machine (AMD EPYC, see README): a resume +
// yield round trip this way costs about a third of a coop_jump round trip.
//
// Register state. The switch is inline asm whose clobber list names every
// register the other side may change: all caller-saved registers, as for a
// call, and all callee-saved ones, so the compiler saves exactly the values
// that are live across the switch, in its own frame, and nothing else. The
// frame pointer (rbp / x29) cannot be a clobber, so it is pushed and popped
// by hand. The stack below sp is skipped by 128 bytes first: x86-64 SysV
// (and Darwin arm64) let leaf code keep data in a red zone there.
//
// FP control state (MXCSR + x87 control word, FPCR) is shared unless a
// coroutine asks to preserve it; then fp_control_save/restore bracket each
// switch on both sides (coroutine.hpp).
//
// A suspended context is a stack pointer whose top word is where to continue:
// the return address R of the resumer's call, a yield's continuation label,
// or coop_fiber_trampoline for a coroutine that has not started.
#ifndef COOP_DETAIL_FIBER_SWITCH_HPP
#define COOP_DETAIL_FIBER_SWITCH_HPP

#include <cstdint>

extern "C" void coop_fiber_trampoline(void);   // arch/<arch>/switch.S

namespace coop::detail {

#if defined(__x86_64__)

#  if defined(__CET__) && (__CET__ & 1)
#    define COOP_FIBER_ENDBR "endbr64\n\t"      /* continuation is an indirect-jump target */
#  else
#    define COOP_FIBER_ENDBR
#  endif
#  if defined(__AVX512F__)
#    define COOP_FIBER_AVX512_CLOBBERS                                                       \
        , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", \
            "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k1", "k2", "k3", \
            "k4", "k5", "k6", "k7"
#  else
#    define COOP_FIBER_AVX512_CLOBBERS
#  endif
// Everything but rsp, rbp (saved by hand) and the three operand registers
// rdi, rsi, rdx (declared as in/out operands instead).
#  define COOP_FIBER_CLOBBERS                                                                 \
      "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "xmm0",     \
          "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",   \
          "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)",     \
          "st(4)", "st(5)", "st(6)", "st(7)", "cc", "memory" COOP_FIBER_AVX512_CLOBBERS

// Continue the context `to`; store ours in *save. Returns the data the
// other side passes when it switches back to us.
inline void* fiber_resume(void* to, void** save, void* data) noexcept {
    asm volatile(
        "leaq   -128(%%rsp), %%rsp\n\t"  // step over this frame's red zone
        "pushq  %%rbp\n\t"               // the frame pointer is not a clobber: save it by hand
        "callq  1f\n\t"                  // push R (the jmp below) on the stack and on the RAS
        "jmp    2f\n"                    // R: the coroutine's ret lands here
        "1:\n\t"
        "movq   %%rsp, (%%rsi)\n\t"      // our context: sp, with R on top
        "movq   %%rdi, %%rsp\n\t"        // the coroutine's stack
        "popq   %%rcx\n\t"               // its continuation
        "jmpq   *%%rcx\n"                // one target per call site: predicted
        "2:\n\t"
        "popq   %%rbp\n\t"
        "leaq   128(%%rsp), %%rsp"       // back over the red zone
        : "+D"(to), "+S"(save), "+d"(data)
        :
        : COOP_FIBER_CLOBBERS);
    return data;
}

// Suspend the running coroutine into *save and continue `to`, which must be
// the context of the resume that started this run: its top is R.
inline void* fiber_yield(void* to, void** save, void* data) noexcept {
    asm volatile(
        "leaq   -128(%%rsp), %%rsp\n\t"  // step over this frame's red zone
        "pushq  %%rbp\n\t"               // frame pointer, by hand
        "leaq   1f(%%rip), %%rcx\n\t"
        "pushq  %%rcx\n\t"               // our continuation on top of our stack
        "movq   %%rsp, (%%rsi)\n\t"      // our context
        "movq   %%rdi, %%rsp\n\t"        // the resumer's stack, R on top
        "retq\n"                         // pops R: paired with the resumer's call
        "1:\n\t" COOP_FIBER_ENDBR
        "popq   %%rbp\n\t"
        "leaq   128(%%rsp), %%rsp"
        : "+D"(to), "+S"(save), "+d"(data)
        :
        : COOP_FIBER_CLOBBERS);
    return data;
}

struct fp_control {
    std::uint32_t mxcsr;
    std::uint16_t x87cw;
};
inline fp_control fp_control_save() noexcept {
    fp_control c;
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(c.mxcsr), "=m"(c.x87cw));
    return c;
}
inline void fp_control_restore(const fp_control& c) noexcept {
    asm volatile("ldmxcsr %0\n\tfldcw %1" : : "m"(c.mxcsr), "m"(c.x87cw));
}

// A fresh context below `top` (16-byte aligned): the trampoline's address
// at top - 24, so popping it leaves rsp = top - 16, 16-byte aligned for the
// trampoline's call; the trampoline finds `top` at rsp + 16.
inline void* fiber_make(void* top) noexcept {
    auto t = reinterpret_cast<std::uintptr_t>(top) & ~std::uintptr_t{15};
    auto* slot = reinterpret_cast<void**>(t);
    slot[-1] = nullptr;                                       // fake return address
    slot[-2] = nullptr;                                       // fake saved frame pointer
    slot[-3] = reinterpret_cast<void*>(&coop_fiber_trampoline);
    return slot - 3;
}

#elif defined(__aarch64__)

#  if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#    define COOP_FIBER_BTI_J "hint #36\n\t"     /* bti j: continuation is a br target */
#  else
#    define COOP_FIBER_BTI_J
#  endif
#  if defined(__ARM_FEATURE_PAC_DEFAULT) && (__ARM_FEATURE_PAC_DEFAULT & 1)
#    define COOP_FIBER_PACIASP "hint #25\n\t"   /* paciasp: sign R with sp */
#    define COOP_FIBER_AUTIASP "hint #29\n\t"   /* autiasp: check R against sp */
#  else
#    define COOP_FIBER_PACIASP
#    define COOP_FIBER_AUTIASP
#  endif
#  if defined(__APPLE__)
#    define COOP_FIBER_REDZONE_IN "sub sp, sp, #128\n\t"   /* Darwin arm64 has a red zone */
#    define COOP_FIBER_REDZONE_OUT "\n\tadd sp, sp, #128"
#  else
#    define COOP_FIBER_REDZONE_IN
#    define COOP_FIBER_REDZONE_OUT
#  endif
// x18: on Linux and the BSDs it is an ordinary temporary (compilers keep
// values in it), so the other side may change it and it is a clobber; on
// Darwin and Windows it is the reserved platform register, never allocated,
// and no switch touches it.
#  if defined(__APPLE__) || defined(_WIN32)
#    define COOP_FIBER_X18
#  else
#    define COOP_FIBER_X18 "x18",
#  endif
// Everything but sp, x29 (saved by hand), x18 where reserved, and the
// operand registers x0-x2.
#  define COOP_FIBER_CLOBBERS                                                                  \
      "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15",     \
          "x16", "x17", COOP_FIBER_X18 "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", \
          "x30", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",    \
          "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", \
          "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31", "cc", "memory"

inline void* fiber_resume(void* to, void** save, void* data) noexcept {
    register void* x0 asm("x0") = to;
    register void** x1 asm("x1") = save;
    register void* x2 asm("x2") = data;
    asm volatile(
        COOP_FIBER_REDZONE_IN
        "str    x29, [sp, #-16]!\n\t"    // the frame pointer is not a clobber: save it by hand
        "bl     1f\n\t"                  // x30 = R, pushed on the RAS
        "b      2f\n"                    // R: the coroutine's ret lands here
        "1:\n\t" COOP_FIBER_PACIASP      // PAC builds: sign R with this sp
        "str    x30, [sp, #-16]!\n\t"    // our context: sp, with R on top
        "mov    x9, sp\n\t"
        "str    x9, [x1]\n\t"
        "mov    sp, x0\n\t"              // the coroutine's stack
        "ldr    x9, [sp], #16\n\t"       // its continuation
        "br     x9\n"                    // one target per call site: predicted
        "2:\n\t"
        "ldr    x29, [sp], #16" COOP_FIBER_REDZONE_OUT
        : "+r"(x0), "+r"(x1), "+r"(x2)
        :
        : COOP_FIBER_CLOBBERS);
    return x2;
}

inline void* fiber_yield(void* to, void** save, void* data) noexcept {
    register void* x0 asm("x0") = to;
    register void** x1 asm("x1") = save;
    register void* x2 asm("x2") = data;
    asm volatile(
        COOP_FIBER_REDZONE_IN
        "str    x29, [sp, #-16]!\n\t"    // frame pointer, by hand
        "adr    x9, 1f\n\t"
        "str    x9, [sp, #-16]!\n\t"     // our continuation on top of our stack
        "mov    x10, sp\n\t"
        "str    x10, [x1]\n\t"           // our context
        "mov    sp, x0\n\t"              // the resumer's stack, R on top
        "ldr    x30, [sp], #16\n\t"      // R; sp is now what it was when R was signed
        COOP_FIBER_AUTIASP
        "ret\n"                          // paired with the resumer's bl (and BTI-safe)
        "1:\n\t" COOP_FIBER_BTI_J
        "ldr    x29, [sp], #16" COOP_FIBER_REDZONE_OUT
        : "+r"(x0), "+r"(x1), "+r"(x2)
        :
        : COOP_FIBER_CLOBBERS);
    return x2;
}

struct fp_control {
    std::uint64_t fpcr;
};
inline fp_control fp_control_save() noexcept {
    fp_control c;
    asm volatile("mrs %0, fpcr" : "=r"(c.fpcr));
    return c;
}
inline void fp_control_restore(const fp_control& c) noexcept {
    asm volatile("msr fpcr, %0" : : "r"(c.fpcr));
}

// A fresh context below `top` (16-byte aligned): the trampoline's address
// in a 16-byte slot below a null frame record; popping it leaves
// sp = top - 16, where the trampoline finds `top` at sp + 16.
inline void* fiber_make(void* top) noexcept {
    auto t = reinterpret_cast<std::uintptr_t>(top) & ~std::uintptr_t{15};
    auto* slot = reinterpret_cast<void**>(t);
    slot[-1] = nullptr;                                       // null frame record
    slot[-2] = nullptr;
    slot[-3] = nullptr;
    slot[-4] = reinterpret_cast<void*>(&coop_fiber_trampoline);
    return slot - 4;
}

#else
#  error "coop supports x86-64 and AArch64"
#endif

} // namespace coop::detail

#endif
