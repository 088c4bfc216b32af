/* tests/check/bti_start.S — program entry for the BTI enforcement check
 * (tests/check/bti.sh), replacing the distribution's start files.
 *
 * Debian's AArch64 crt1.o/crti.o/crtbegin*.o carry no BTI landing pads: a
 * program linked with -z force-bti dies of SIGILL at its first instruction,
 * because the dynamic loader enters _start with an indirect branch, and
 * later when libc calls _init and the .init_array entry frame_dummy through
 * pointers. This file gives such a program what it needs from them, with
 * pads: _start (calls __libc_start_main), __dso_handle and _IO_stdin_used.
 * Linked with -nostartfiles. Everything else a C++ program needs comes from
 * objects compiled with -mbranch-protection=standard, or from shared
 * libraries, which the loader maps unguarded when they lack the BTI note.
 */
        .text
        .globl  _start
        .type   _start, %function
        .p2align 2
_start:
        hint    #34                         /* bti c: entered by the loader's br */
        mov     x29, #0                     /* outermost frame */
        mov     x30, #0
        mov     x5, x0                      /* rtld_fini, from the dynamic loader */
        ldr     x1, [sp]                    /* argc */
        add     x2, sp, #8                  /* argv */
        mov     x6, sp                      /* stack_end */
        adrp    x0, :got:main               /* main, through the GOT (PIE) */
        ldr     x0, [x0, :got_lo12:main]
        mov     x3, #0                      /* init: unused since glibc 2.34 */
        mov     x4, #0                      /* fini: unused */
        bl      __libc_start_main
        brk     #0x3c                       /* not reached */
        .size   _start, .-_start

        .data
        .p2align 3
        .globl  __dso_handle
        .hidden __dso_handle
__dso_handle:
        .quad   __dso_handle                /* identifies this module to __cxa_atexit */

        .section .rodata
        .p2align 2
        .globl  _IO_stdin_used
_IO_stdin_used:
        .long   0x20001                     /* the stdio ABI glibc expects of a program */

        .section .note.GNU-stack,"",%progbits

        .section .note.gnu.property,"a"
        .p2align 3
        .long   4                           /* name size */
        .long   16                          /* descriptor size */
        .long   5                           /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000000                  /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
        .long   4
        .long   3                           /* BTI | PAC */
        .p2align 3
