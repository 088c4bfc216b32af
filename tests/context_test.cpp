// tests/context_test.cpp — the C ABI: coop_make / coop_jump / coop_jump_fp.
//
// Register tests use small assembly helpers (below) that load known values
// into every callee-saved register, switch, and report what the registers
// hold when control comes back; the other side does the same with different
// values, so each side clobbers everything the other must keep.
#include <coop/context.h>
#include <coop/stack.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cfenv>
#include <cstdint>
#include <cstring>
#include <vector>

extern "C" {
// Loads in[] into the callee-saved registers, calls coop_jump(to, data),
// stores the callee-saved registers into out[] when resumed, restores its
// caller's registers and returns coop_jump's result.
coop_transfer coop_test_jump_regs(coop_ctx to, void* data, const std::uint64_t* in,
                                  std::uint64_t* out);
// An entry function that records its stack pointer at its first
// instruction in coop_test_entry_sp, then tail-calls coop_test_entry_c.
void coop_test_entry_sp_probe(coop_transfer t);
void coop_test_entry_c(coop_transfer t);
std::uintptr_t coop_test_entry_sp = 0;
}

#if defined(__x86_64__)
// rbx, rbp, r12, r13, r14, r15
constexpr int kRegs = 6;
asm(R"(
        .text
        .globl  coop_test_jump_regs
        .type   coop_test_jump_regs, @function
coop_test_jump_regs:
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        pushq   %rcx                 # out; also restores 16-byte alignment for the call
        movq    0(%rdx), %rbx
        movq    8(%rdx), %rbp
        movq    16(%rdx), %r12
        movq    24(%rdx), %r13
        movq    32(%rdx), %r14
        movq    40(%rdx), %r15
        call    coop_jump@PLT
        popq    %rcx
        movq    %rbx, 0(%rcx)
        movq    %rbp, 8(%rcx)
        movq    %r12, 16(%rcx)
        movq    %r13, 24(%rcx)
        movq    %r14, 32(%rcx)
        movq    %r15, 40(%rcx)
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .size   coop_test_jump_regs, .-coop_test_jump_regs

        .globl  coop_test_entry_sp_probe
        .type   coop_test_entry_sp_probe, @function
coop_test_entry_sp_probe:
        movq    %rsp, coop_test_entry_sp(%rip)
        jmp     coop_test_entry_c@PLT
        .size   coop_test_entry_sp_probe, .-coop_test_entry_sp_probe
)");
// At a function's first instruction the SysV ABI has rsp + 8 16-byte aligned.
constexpr std::uintptr_t kEntrySpMod16 = 8;
#elif defined(__aarch64__)
// x19..x28, x29, d8..d15
constexpr int kRegs = 19;
asm(R"(
        .text
        .globl  coop_test_jump_regs
        .type   coop_test_jump_regs, %function
coop_test_jump_regs:
        hint    #34                  // bti c
        stp     x29, x30, [sp, #-176]!
        stp     x19, x20, [sp, #16]
        stp     x21, x22, [sp, #32]
        stp     x23, x24, [sp, #48]
        stp     x25, x26, [sp, #64]
        stp     x27, x28, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        str     x3, [sp, #160]
        ldp     x19, x20, [x2, #0]
        ldp     x21, x22, [x2, #16]
        ldp     x23, x24, [x2, #32]
        ldp     x25, x26, [x2, #48]
        ldp     x27, x28, [x2, #64]
        ldr     x29, [x2, #80]
        ldp     d8, d9, [x2, #88]
        ldp     d10, d11, [x2, #104]
        ldp     d12, d13, [x2, #120]
        ldp     d14, d15, [x2, #136]
        bl      coop_jump
        ldr     x3, [sp, #160]
        stp     x19, x20, [x3, #0]
        stp     x21, x22, [x3, #16]
        stp     x23, x24, [x3, #32]
        stp     x25, x26, [x3, #48]
        stp     x27, x28, [x3, #64]
        str     x29, [x3, #80]
        stp     d8, d9, [x3, #88]
        stp     d10, d11, [x3, #104]
        stp     d12, d13, [x3, #120]
        stp     d14, d15, [x3, #136]
        ldp     x19, x20, [sp, #16]
        ldp     x21, x22, [sp, #32]
        ldp     x23, x24, [sp, #48]
        ldp     x25, x26, [sp, #64]
        ldp     x27, x28, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldp     x29, x30, [sp], #176
        ret
        .size   coop_test_jump_regs, .-coop_test_jump_regs

        .globl  coop_test_entry_sp_probe
        .type   coop_test_entry_sp_probe, %function
coop_test_entry_sp_probe:
        hint    #36                  // bti j: reached by the resume's branch
        mov     x9, sp
        adrp    x10, coop_test_entry_sp
        str     x9, [x10, :lo12:coop_test_entry_sp]
        b       coop_test_entry_c
        .size   coop_test_entry_sp_probe, .-coop_test_entry_sp_probe
)");
// AAPCS64: sp is 16-byte aligned at every public interface.
constexpr std::uintptr_t kEntrySpMod16 = 0;
#else
#  error "unsupported architecture"
#endif

namespace {

// Fixed-size (no heap): the register contexts below are abandoned, never
// unwound, so nothing they hold may need freeing.
using regs = std::array<std::uint64_t, kRegs>;

regs pattern(std::uint64_t seed) {
    regs v{};
    for (int i = 0; i < kRegs; ++i)
        v[i] = (seed * 0x9E3779B97F4A7C15ull) ^ (0x0101010101010101ull * (i + 1)) ^ (seed << 8);
    return v;
}

// ---------------------------------------------------------------- registers

struct reg_side {
    std::uint64_t seed;
    long iterations;
    long mismatches = 0;
    long resumes = 0;
};

reg_side* g_other = nullptr;

// The other side: every time it is resumed, checks its own pattern survived
// and loads a fresh one, so the main side's registers are clobbered.
void regs_entry(coop_transfer t) {
    reg_side* side = g_other;
    std::uint64_t round = 0;
    for (;;) {
        const regs in = pattern(side->seed + round);
        regs out{};
        t = coop_test_jump_regs(t.ctx, nullptr, in.data(), out.data());
        ++side->resumes;
        if (out != in) ++side->mismatches;
        ++round;
    }
}

TEST(Context, CalleeSavedRegistersSurviveBothWays) {
    coop::stack s(64 * 1024);
    reg_side other{0xBADC0FFEEull, 0};
    g_other = &other;
    coop_ctx ctx = coop_make(s.top(), s.size(), regs_entry);
    ASSERT_NE(ctx, nullptr);
    long mismatches = 0;
    const long kIterations = 20000;
    for (long i = 0; i < kIterations; ++i) {
        const regs in = pattern(0x1234 + i);
        regs out{};
        coop_transfer t = coop_test_jump_regs(ctx, nullptr, in.data(), out.data());
        ctx = t.ctx;
        if (out != in) {
            ++mismatches;
            for (int r = 0; r < kRegs && mismatches == 1; ++r)
                ADD_FAILURE() << "register slot " << r << ": wrote " << std::hex << in[r]
                              << " read " << out[r];
        }
    }
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(other.mismatches, 0);
    // The other side was resumed once per iteration after its first entry.
    EXPECT_EQ(other.resumes, kIterations - 1);
}

// ---------------------------------------------------------------- alignment

coop_ctx g_back = nullptr;
extern "C" void coop_test_entry_c(coop_transfer t) {
    g_back = t.ctx;
    coop_jump(t.ctx, nullptr);
    ADD_FAILURE() << "resumed a context that should not be";
    for (;;) coop_jump(g_back, nullptr);
}

TEST(Context, FreshContextStartsAlignedAsIfCalled) {
    // Every misalignment of the top must give the same alignment at entry.
    coop::stack s(64 * 1024);
    for (std::uintptr_t skew = 0; skew < 32; ++skew) {
        coop_test_entry_sp = 1;
        void* top = static_cast<char*>(s.top()) - skew;
        coop_ctx ctx = coop_make(top, s.size() - skew, coop_test_entry_sp_probe);
        ASSERT_NE(ctx, nullptr);
        coop_jump(ctx, nullptr);
        EXPECT_EQ(coop_test_entry_sp % 16, kEntrySpMod16) << "skew " << skew;
        EXPECT_LT(coop_test_entry_sp, reinterpret_cast<std::uintptr_t>(top));
        EXPECT_GE(coop_test_entry_sp, reinterpret_cast<std::uintptr_t>(top) - 256);
    }
}

TEST(Context, TooSmallStackIsRefused) {
    alignas(16) static char small[128];
    EXPECT_EQ(coop_make(small + sizeof small, sizeof small, coop_test_entry_c), nullptr);
    EXPECT_EQ(coop_make(small + sizeof small, 0, coop_test_entry_c), nullptr);
}

// ---------------------------------------------------------------- data

void echo_plus_one(coop_transfer t) {
    for (;;) {
        auto v = reinterpret_cast<std::uintptr_t>(t.data);
        t = coop_jump(t.ctx, reinterpret_cast<void*>(v + 1));
    }
}

TEST(Context, DataFlowsBothWays) {
    coop::stack s(64 * 1024);
    coop_ctx ctx = coop_make(s.top(), s.size(), echo_plus_one);
    ASSERT_NE(ctx, nullptr);
    for (std::uintptr_t i = 0; i < 1000; ++i) {
        coop_transfer t = coop_jump(ctx, reinterpret_cast<void*>(i * 7));
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data), i * 7 + 1);
        ctx = t.ctx;
        // The returned context lies inside the stack we gave it.
        EXPECT_GT(reinterpret_cast<std::uintptr_t>(ctx), reinterpret_cast<std::uintptr_t>(s.bottom()));
        EXPECT_LT(reinterpret_cast<std::uintptr_t>(ctx), reinterpret_cast<std::uintptr_t>(s.top()));
    }
}

// First jump: the entry sees the jumping context and the data it passed.
struct first_seen {
    coop_ctx from;
    void* data;
};
first_seen g_first{};
void record_first(coop_transfer t) {
    g_first = {t.ctx, t.data};
    coop_jump(t.ctx, &g_first);
    for (;;) coop_jump(g_back, nullptr);
}

TEST(Context, EntryReceivesTransferOfFirstJump) {
    coop::stack s(64 * 1024);
    coop_ctx ctx = coop_make(s.top(), s.size(), record_first);
    int marker = 42;
    coop_transfer t = coop_jump(ctx, &marker);
    EXPECT_EQ(g_first.data, &marker);
    EXPECT_EQ(t.data, &g_first);
    EXPECT_NE(g_first.from, nullptr);
}

// A ring of contexts passing a token: main jumps to member 0, each member
// adds its number and jumps to the next, the last one jumps back to main.
// Every jump consumes the target's context and hands the jumper's fresh one
// to the target, which files it in the table for the next lap.
struct ring {
    std::vector<coop::stack> stacks;
    std::vector<coop_ctx> ctxs;
    coop_ctx main = nullptr;
    std::uint64_t sum = 0;
};
ring* g_ring = nullptr;

void ring_member(coop_transfer t) {
    const auto index = reinterpret_cast<std::uintptr_t>(t.data);
    for (;;) {
        if (index == 0)
            g_ring->main = t.ctx;
        else
            g_ring->ctxs[index - 1] = t.ctx;
        g_ring->sum += index + 1;
        if (index + 1 == g_ring->ctxs.size())
            t = coop_jump(g_ring->main, nullptr);
        else
            t = coop_jump(g_ring->ctxs[index + 1], reinterpret_cast<void*>(index + 1));
    }
}

TEST(Context, ManyContextsInARing) {
    ring r;
    g_ring = &r;
    const std::uint64_t n = 500, laps = 20;
    r.stacks.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        r.stacks.emplace_back(16 * 1024);
        r.ctxs.push_back(coop_make(r.stacks.back().top(), r.stacks.back().size(), ring_member));
        ASSERT_NE(r.ctxs.back(), nullptr);
    }
    for (std::uint64_t lap = 0; lap < laps; ++lap) {
        coop_transfer t = coop_jump(r.ctxs[0], nullptr);
        r.ctxs[n - 1] = t.ctx;
        EXPECT_EQ(r.sum, (lap + 1) * n * (n + 1) / 2);
    }
}

// ---------------------------------------------------------------- FP control

// The FP control state a context sees, as one comparable value.
struct fp_control {
    int rounding;
    std::uint64_t raw;   // MXCSR control bits + x87 CW, or FPCR
    bool operator==(const fp_control&) const = default;
};

fp_control read_fp_control() {
    fp_control c{std::fegetround(), 0};
#if defined(__x86_64__)
    std::uint32_t mxcsr;
    std::uint16_t cw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(cw));
    c.raw = (std::uint64_t{mxcsr & ~0x3Fu} << 16) | cw;   // control bits, not the sticky flags
#else
    std::uint64_t fpcr;
    asm volatile("mrs %0, fpcr" : "=r"(fpcr));
    c.raw = fpcr;
#endif
    return c;
}

// A setting distinct from the default for each side: rounding mode, plus
// flush-to-zero (MXCSR.FTZ / FPCR.FZ) and on x86 the x87 precision control.
void set_fp_control(int rounding, bool flush) {
    std::fesetround(rounding);
#if defined(__x86_64__)
    std::uint32_t mxcsr;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    mxcsr = flush ? (mxcsr | 0x8000u) : (mxcsr & ~0x8000u);
    asm volatile("ldmxcsr %0" : : "m"(mxcsr));
    std::uint16_t cw;
    asm volatile("fnstcw %0" : "=m"(cw));
    cw = static_cast<std::uint16_t>((cw & ~0x0300u) | (flush ? 0x0000u : 0x0300u));  // PC: single vs extended
    asm volatile("fldcw %0" : : "m"(cw));
#else
    std::uint64_t fpcr;
    asm volatile("mrs %0, fpcr" : "=r"(fpcr));
    fpcr = flush ? (fpcr | (1ull << 24)) : (fpcr & ~(1ull << 24));
    asm volatile("msr fpcr, %0" : : "r"(fpcr));
#endif
}

struct fp_side {
    fp_control mine{};
    long mismatches = 0;
    bool use_fp_jump = true;
};
fp_side* g_fp = nullptr;

void fp_entry(coop_transfer t) {
    set_fp_control(FE_TOWARDZERO, true);
    g_fp->mine = read_fp_control();
    for (;;) {
        t = g_fp->use_fp_jump ? coop_jump_fp(t.ctx, nullptr) : coop_jump(t.ctx, nullptr);
        if (!(read_fp_control() == g_fp->mine)) ++g_fp->mismatches;
    }
}

class ContextFp : public ::testing::Test {
protected:
    void SetUp() override { saved_ = read_fp_control(); std::fegetenv(&env_); }
    void TearDown() override { std::fesetenv(&env_); set_fp_control(saved_.rounding, false); }
    fp_control saved_{};
    std::fenv_t env_{};
};

TEST_F(ContextFp, JumpFpPreservesEachSidesControlState) {
    fp_side side;
    g_fp = &side;
    coop::stack s(64 * 1024);
    coop_ctx ctx = coop_make(s.top(), s.size(), fp_entry);
    set_fp_control(FE_UPWARD, false);
    const fp_control mine = read_fp_control();
    long mismatches = 0;
    for (int i = 0; i < 1000; ++i) {
        coop_transfer t = coop_jump_fp(ctx, nullptr);
        ctx = t.ctx;
        if (!(read_fp_control() == mine)) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(side.mismatches, 0);
    EXPECT_FALSE(side.mine == mine);   // the two sides really differ
    EXPECT_EQ(side.mine.rounding, FE_TOWARDZERO);
}

TEST_F(ContextFp, PlainJumpSharesTheThreadsControlState) {
    fp_side side;
    side.use_fp_jump = false;
    g_fp = &side;
    coop::stack s(64 * 1024);
    coop_ctx ctx = coop_make(s.top(), s.size(), fp_entry);
    set_fp_control(FE_UPWARD, false);
    coop_transfer t = coop_jump(ctx, nullptr);
    // The other side's setting is now the thread's: nothing was restored.
    EXPECT_EQ(read_fp_control(), side.mine);
    EXPECT_EQ(std::fegetround(), FE_TOWARDZERO);
    (void)t;
}

TEST_F(ContextFp, MixedJumpsRestoreOnlyTheFpSide) {
    // Main switches with coop_jump_fp, the other side with plain coop_jump:
    // main gets its state back every time; the other side inherits main's.
    fp_side side;
    side.use_fp_jump = false;
    g_fp = &side;
    coop::stack s(64 * 1024);
    coop_ctx ctx = coop_make(s.top(), s.size(), fp_entry);
    set_fp_control(FE_DOWNWARD, false);
    const fp_control mine = read_fp_control();
    for (int i = 0; i < 100; ++i) {
        coop_transfer t = coop_jump_fp(ctx, nullptr);
        ctx = t.ctx;
        EXPECT_EQ(read_fp_control(), mine);
    }
    // after its first entry the other side runs with main's state
    EXPECT_EQ(side.mismatches, 99);
}

// ---------------------------------------------------------------- misuse

void returning_entry(coop_transfer) {}

TEST(ContextDeathTest, ReturningEntryAbortsWithAMessage) {
    EXPECT_DEATH(
        {
            coop::stack s(64 * 1024);
            coop_ctx ctx = coop_make(s.top(), s.size(), returning_entry);
            coop_jump(ctx, nullptr);
        },
        "coop: a context's entry function returned");
}

} // namespace
