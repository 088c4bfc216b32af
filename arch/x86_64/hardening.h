/* arch/x86_64/hardening.h — CET landing pads and the object notes, shared
 * by the x86-64 .S files (switch.S: the C ABI; fiber.S: the coroutine
 * layer's trampoline). Preprocessed assembly only.
 *
 * Every indirect-branch target starts with ENDBR when the build asks for IBT
 * (-fcf-protection=branch|full). A jump back to a caller's return address
 * uses JMP_BACK (notrack), because return sites are not endbr64 landing
 * pads. Shadow stacks (SHSTK) are not handled: a context switch would have
 * to switch shadow stacks too (rstorssp/saveprevssp), so SHSTK is never
 * claimed in the property note.
 */
#ifndef COOP_ARCH_X86_64_HARDENING_H
#define COOP_ARCH_X86_64_HARDENING_H

#if defined(__CET__) && (__CET__ & 1)
#  define ENDBR endbr64                     /* IBT landing pad */
#  define JMP_BACK notrack jmp              /* return sites are not landing pads */
#  define COOP_IBT 1
#else
#  define ENDBR
#  define JMP_BACK jmp
#  define COOP_IBT 0
#endif

/* End of every .S file: no executable stack, and under IBT the GNU property
   note that says this object is IBT-clean (GNU_PROPERTY_X86_FEATURE_1_IBT).
   The linker keeps a feature only if every object claims it. */
#if defined(__APPLE__)
#  define COOP_OBJECT_NOTES
#elif COOP_IBT
#  define COOP_OBJECT_NOTES                                                          \
        .section .note.GNU-stack,"",@progbits;                                      \
        .section .note.gnu.property,"a";                                            \
        .p2align 3;                                                                 \
        .long 4;                    /* name size */                                 \
        .long 16;                   /* descriptor size */                           \
        .long 5;                    /* NT_GNU_PROPERTY_TYPE_0 */                    \
        .asciz "GNU";                                                               \
        .long 0xc0000002;           /* GNU_PROPERTY_X86_FEATURE_1_AND */            \
        .long 4;                    /* data size */                                 \
        .long 1;                    /* IBT */                                       \
        .p2align 3
#else
#  define COOP_OBJECT_NOTES .section .note.GNU-stack,"",@progbits
#endif

#endif
