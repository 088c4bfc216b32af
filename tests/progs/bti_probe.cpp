// tests/progs/bti_probe.cpp — proves that AArch64 BTI is enforced for a
// program and that coop works under enforcement (tests/check/bti.sh).
//
//   bti_probe switch   coroutines (plain and FP-preserving, nested) and the
//                      raw C ABI called through function pointers, so every
//                      indirect branch into coop must land on a pad
//   bti_probe nopad    an indirect call to a function without a landing pad:
//                      dies of SIGILL where BTI is enforced, returns 7 where not
//   bti_probe forge    overwrites the saved continuation of a suspended raw
//                      context with an unsigned address and resumes it: dies
//                      where PAC authenticates it, runs the forged code where not
//
// On other architectures both modes just report that there is nothing to do.
#include <coop/context.h>
#include <coop/coroutine.hpp>
#include <coop/stack.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstring>

#if defined(__aarch64__)
#  include "../../arch/aarch64/offsets.h"
#endif

#if defined(__aarch64__)
// A function that deliberately starts without `bti c`.
asm(".text\n"
    ".p2align 2\n"
    ".globl coop_probe_no_pad\n"
    ".type coop_probe_no_pad, %function\n"
    "coop_probe_no_pad:\n"
    "    mov x0, #7\n"
    "    ret\n"
    ".size coop_probe_no_pad, .-coop_probe_no_pad\n");
extern "C" int coop_probe_no_pad();
#endif

namespace {

// Indirect calls into the C ABI (blr on AArch64): the entry pads are checked.
coop_ctx (*volatile p_make)(void*, size_t, void (*)(coop_transfer)) = &coop_make;
coop_transfer (*volatile p_jump)(coop_ctx, void*) = &coop_jump;
coop_transfer (*volatile p_jump_fp)(coop_ctx, void*) = &coop_jump_fp;

void raw_entry(coop_transfer t) {
    long n = 0;
    for (;;) {
        ++n;
        t = (n % 2 ? p_jump : p_jump_fp)(t.ctx, reinterpret_cast<void*>(n));
    }
}

#if defined(__aarch64__)
void bounce_entry(coop_transfer t) {
    for (;;) t = coop_jump(t.ctx, nullptr);
}
#endif

extern "C" [[noreturn]] void coop_probe_forged_target() {
    static const char msg[] = "bti_probe: forged continuation ran (PAC not enforced)\n";
    ssize_t r = ::write(1, msg, sizeof msg - 1);
    (void)r;
    ::_exit(0);
}

int run_forge() {
#if defined(__aarch64__)
    coop::stack s(64 * 1024);
    coop_ctx c = coop_make(s.top(), s.size(), &bounce_entry);
    c = coop_jump(c, nullptr).ctx;     // now suspended inside coop_jump on its stack
    void** slot = reinterpret_cast<void**>(static_cast<char*>(c) + COOP_A64_X30);
    *slot = reinterpret_cast<void*>(&coop_probe_forged_target);   // not signed
    coop_jump(c, nullptr);
    std::printf("bti_probe: forged context came back?\n");
    return 3;
#else
    std::printf("bti_probe: not AArch64, nothing to probe\n");
    return 0;
#endif
}

int run_switch() {
    long sum = 0;
    {
        coop::stack s(64 * 1024);
        coop_ctx c = p_make(s.top(), s.size(), &raw_entry);
        for (int i = 0; i < 1000; ++i) {
            coop_transfer t = (i % 3 ? p_jump : p_jump_fp)(c, nullptr);
            c = t.ctx;
            sum += reinterpret_cast<long>(t.data);
        }
        // the raw context is simply abandoned with its stack
    }
    for (bool fp : {false, true}) {
        coop::coroutine_options o;
        o.preserve_fp_env = fp;
        coop::coroutine inner([](coop::yielder& y) {
            for (long i = 0;; ++i) y.yield(reinterpret_cast<void*>(i));
        }, o);
        coop::coroutine outer([&](coop::yielder& y) {
            for (int i = 0; i < 500; ++i) y.yield(inner.resume());
        }, o);
        for (int i = 0; i < 500; ++i) sum += reinterpret_cast<long>(outer.resume());
    }
    std::printf("bti_probe: switch ok (%ld)\n", sum);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "switch";
    if (std::strcmp(mode, "switch") == 0) return run_switch();
    if (std::strcmp(mode, "forge") == 0) return run_forge();
    if (std::strcmp(mode, "nopad") == 0) {
#if defined(__aarch64__)
        int (*volatile f)() = &coop_probe_no_pad;
        int r = f();
        std::printf("bti_probe: call without landing pad returned %d (BTI not enforced)\n", r);
        return 0;
#else
        std::printf("bti_probe: not AArch64, nothing to probe\n");
        return 0;
#endif
    }
    std::fprintf(stderr, "usage: bti_probe switch|nopad|forge\n");
    return 2;
}
