/* arch/asm.h — assembler macros shared by every .S file under arch/: symbol
 * names, symbol types and sizes, visibility and local labels for ELF and
 * Mach-O. Included by the .S files only (preprocessed assembly).
 */
#ifndef COOP_ARCH_ASM_H
#define COOP_ARCH_ASM_H

#if defined(__APPLE__)
#  define SYM(name) _##name                 /* Mach-O prefixes C symbols with _ */
#  define FUNC_TYPE(name)                   /* no .type on Mach-O */
#  define FUNC_SIZE(name)                   /* no .size on Mach-O */
#  define HIDDEN(name) .private_extern SYM(name)
#  define L(name) L##name                   /* Mach-O assembler-local label */
#else
#  define SYM(name) name
#  define FUNC_TYPE(name) .type name, %function   /* '%' form: accepted by ELF gas on every target */
#  define FUNC_SIZE(name) .size name, .-name
#  define HIDDEN(name) .hidden name
#  define L(name) .L##name                  /* ELF assembler-local label */
#endif

#endif
