// coop/detail/fiber_switch.hpp — the stack switch under every fiber
// (coop::coroutine, reactor tasks): inline asm, one copy per switch site.
//
// coop_jump (arch/<arch>/switch.S) is one function: every switch in the
// process leaves through its single `jmp *reg` / `br`, whose target changes
// from one switch to the next (in a ping-pong it alternates between the two
// sides), and that costs predictions. This switch is inline asm instead, so
// each switch site in the program gets its own indirect jump, and a site
// almost always continues at the same place: a given resume site enters the
// same yield, a given yield returns to the same resume, and tasks that park
// at the same site continue each other. Measured on the development machine
// (AMD EPYC, see README): a resume + yield round trip costs about half a
// coop_jump round trip.
//
// Neither direction uses call/ret. A `call` in resume paired with a `ret` in
// yield would be predicted by the return-address stack only while the
// coroutine yields at the very call depth it was resumed at; a yield from
// inside a helper function (every reactor wait is one) would then cost two
// mispredictions per round trip (measured: 3 ns flat, 24 ns nested, against
// 4.4 ns nested with jumps both ways).
//
// Register state. The switch is inline asm whose clobber list names every
// register the other side may change: all caller-saved registers, as for a
// call, and all callee-saved ones, so the compiler saves exactly the values
// that are live across the switch, in its own frame, and nothing else. The
// frame pointer (rbp / x29) cannot be a clobber, so it is pushed and popped
// by hand. The stack below sp is skipped by COOP_FIBER_RED_ZONE bytes first:
// x86-64 SysV (and Darwin arm64) let leaf code keep data in a red zone there.
//
// The stack layout a switch leaves behind, and a fresh fiber's, are in
// coop/detail/fiber_layout.h. fiber_switch(to, save, data): continue the
// suspended fiber `to`, store our own suspended sp in *save, hand `data`
// over; returns the data the other side hands back when it switches to us.
//
// FP control state (MXCSR + x87 control word, FPCR) is not touched here;
// fp_control_save/restore are for fibers that keep their own (fiber.hpp).
#ifndef COOP_DETAIL_FIBER_SWITCH_HPP
#define COOP_DETAIL_FIBER_SWITCH_HPP

#include <coop/detail/fiber_layout.h>

#include <cstdint>

extern "C" void coop_fiber_trampoline(void);   // arch/<arch>/fiber.S

#define COOP_FIBER_STR2(x) #x
#define COOP_FIBER_STR(x) COOP_FIBER_STR2(x)

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

// The switch, one asm body for both directions.
#  define COOP_FIBER_SWITCH_X86_64                                                       \
      "leaq   -" COOP_FIBER_STR(COOP_FIBER_RED_ZONE) "(%%rsp), %%rsp\n\t" /* step over the red zone */ \
      "pushq  %%rbp\n\t"               /* the frame pointer is no clobber: save by hand */ \
      "leaq   1f(%%rip), %%rcx\n\t"                                                         \
      "pushq  %%rcx\n\t"               /* our continuation on top of our stack */        \
      "movq   %%rsp, (%%rsi)\n\t"      /* our context */                                 \
      "movq   %%rdi, %%rsp\n\t"        /* the other side's stack */                      \
      "popq   %%rcx\n\t"               /* its continuation */                            \
      "jmpq   *%%rcx\n"                 /* this site's own indirect jump: predicted */    \
      "1:\n\t" COOP_FIBER_ENDBR       /* we continue here when switched back to */       \
      "popq   %%rbp\n\t"                                                                   \
      "leaq   " COOP_FIBER_STR(COOP_FIBER_RED_ZONE) "(%%rsp), %%rsp" /* back over the red zone */

// Continue `to`, store our context in *save, hand over `data`; returns what
// the other side hands back when it switches to us.
inline void* fiber_switch(void* to, void** save, void* data) noexcept {
    asm volatile(COOP_FIBER_SWITCH_X86_64
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

// A fresh fiber whose control block starts at `top` (16-byte aligned; see
// fiber_layout.h): the trampoline's address below a null frame pointer and
// a null return address.
static_assert(COOP_FIBER_FRESH_BELOW_TOP == 3 * 8, "three words below top");
inline void* fiber_make(void* top) noexcept {
    auto* slot = static_cast<void**>(top);
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
#  if COOP_FIBER_RED_ZONE != 0
#    define COOP_FIBER_REDZONE_IN "sub sp, sp, #" COOP_FIBER_STR(COOP_FIBER_RED_ZONE) "\n\t"
#    define COOP_FIBER_REDZONE_OUT "\n\tadd sp, sp, #" COOP_FIBER_STR(COOP_FIBER_RED_ZONE)
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

// The switch, one asm body for both directions.
#  define COOP_FIBER_SWITCH_AARCH64                                                    \
      COOP_FIBER_REDZONE_IN                                                            \
      "str    x29, [sp, #-16]!\n\t"    /* the frame pointer is no clobber: save by hand */ \
      "adr    x9, 1f\n\t"                                                             \
      "str    x9, [sp, #-16]!\n\t"     /* our continuation on top of our stack */       \
      "mov    x10, sp\n\t"                                                             \
      "str    x10, [x1]\n\t"           /* our context */                                \
      "mov    sp, x0\n\t"              /* the other side's stack */                     \
      "ldr    x9, [sp], #16\n\t"       /* its continuation */                           \
      "br     x9\n"                     /* this site's own indirect branch: predicted */ \
      "1:\n\t" COOP_FIBER_BTI_J        /* we continue here (a br target: bti j) */      \
      "ldr    x29, [sp], #16" COOP_FIBER_REDZONE_OUT

// Continue `to`, store our context in *save, hand over `data`; returns what
// the other side hands back when it switches to us.
inline void* fiber_switch(void* to, void** save, void* data) noexcept {
    register void* x0 asm("x0") = to;
    register void** x1 asm("x1") = save;
    register void* x2 asm("x2") = data;
    asm volatile(COOP_FIBER_SWITCH_AARCH64
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

// A fresh fiber whose control block starts at `top` (16-byte aligned; see
// fiber_layout.h): the trampoline's address in a 16-byte slot below a null
// frame record.
static_assert(COOP_FIBER_FRESH_BELOW_TOP == 4 * 8, "four words below top");
inline void* fiber_make(void* top) noexcept {
    auto* slot = static_cast<void**>(top);
    slot[-1] = nullptr;                                       // null frame record
    slot[-2] = nullptr;
    slot[-3] = nullptr;
    slot[-4] = reinterpret_cast<void*>(&coop_fiber_trampoline);
    return slot - 4;
}

#else
#  error "coop supports x86-64 and AArch64"
#endif

// After the continuation is popped, the trampoline's sp is 16-byte aligned
// and the control block sits COOP_FIBER_BLOCK_ABOVE_SP above it.
static_assert(COOP_FIBER_FRESH_BELOW_TOP - COOP_FIBER_CONT_POP == COOP_FIBER_BLOCK_ABOVE_SP,
              "fiber_layout.h: a fresh fiber's sp, the pop and the trampoline disagree");
static_assert(COOP_FIBER_BLOCK_ABOVE_SP % 16 == 0, "the trampoline's sp must be 16-byte aligned");

} // namespace coop::detail

#endif
