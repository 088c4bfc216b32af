/* arch/aarch64/hardening.h — BTI landing pads, PAC signing and the object
 * notes, shared by the AArch64 .S files (switch.S: the C ABI; fiber.S: the
 * coroutine layer's trampoline). Preprocessed assembly only.
 *
 * BTI: `bti c` at every function, `bti j` at every address reached by `br`.
 * Under BTI, `br` may only land on a `bti j` pad and the return site after a
 * `bl` is not one, so BTI builds leave a switch with `ret` (CONTINUE), which
 * BTI does not check, and builds without BTI with `br x30`, which the
 * indirect predictor gets right (see switch.S).
 * PAC: SIGN_LR/AUTH_LR sign and check a saved x30 with sp as the modifier.
 * All of these are hint-space encodings: any assembler and any core accept
 * them, and cores without the feature execute them as NOPs.
 */
#ifndef COOP_ARCH_AARCH64_HARDENING_H
#define COOP_ARCH_AARCH64_HARDENING_H

#define BTI_C hint #34                      /* landing pad for calls (blr) */
#define BTI_J hint #36                      /* landing pad for jumps (br) */
#define PACIASP hint #25                    /* sign x30, key A, modifier sp */
#define AUTIASP hint #29                    /* authenticate x30, key A, modifier sp */
#define PACIA1716 hint #8                   /* sign x17, key A, modifier x16 */

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#  define COOP_BTI 1
#  define ENTRY_PAD BTI_C
#  define JUMP_PAD BTI_J
#  define CONTINUE ret                      /* BTI-safe: ret is not checked */
#else
#  define COOP_BTI 0
#  define ENTRY_PAD BTI_C                   /* still harmless: a NOP without BTI */
#  define JUMP_PAD
#  define CONTINUE br x30                   /* indirect branch: predicted per site */
#endif

#if defined(__ARM_FEATURE_PAC_DEFAULT) && (__ARM_FEATURE_PAC_DEFAULT & 1)
#  define COOP_PAC 1
#  define SIGN_LR PACIASP
#  define AUTH_LR AUTIASP
#else
#  define COOP_PAC 0
#  define SIGN_LR
#  define AUTH_LR
#endif

/* End of every .S file: no executable stack, and under BTI or PAC the GNU
   property note that says what this object is safe for (BTI pads present
   and only BTI-safe branches used; return addresses signed). The linker
   keeps a feature only if every object claims it. */
#if defined(__APPLE__)
#  define COOP_OBJECT_NOTES
#elif COOP_BTI || COOP_PAC
#  define COOP_OBJECT_NOTES                                                          \
        .section .note.GNU-stack,"",%progbits;                                      \
        .section .note.gnu.property,"a";                                            \
        .p2align 3;                                                                 \
        .long 4;                    /* name size */                                 \
        .long 16;                   /* descriptor size */                           \
        .long 5;                    /* NT_GNU_PROPERTY_TYPE_0 */                    \
        .asciz "GNU";                                                               \
        .long 0xc0000000;           /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */        \
        .long 4;                    /* data size */                                 \
        .long (COOP_BTI * 1) | (COOP_PAC * 2); /* BTI = 1, PAC = 2 */               \
        .p2align 3
#else
#  define COOP_OBJECT_NOTES .section .note.GNU-stack,"",%progbits
#endif

#endif
