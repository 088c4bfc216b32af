/* tests/check/consumers/context_only.c — a C program that uses only the
 * context layer (coop/context.h): a ping-pong between two contexts. It must
 * link against libcoop.a with a C compiler alone, no C++ runtime, and run.
 * Exits 0 when every value came back. */
#include <coop/context.h>

#include <stdio.h>
#include <stdlib.h>

static char stack_mem[64 * 1024];

static void echo(coop_transfer t) {
    for (;;) t = coop_jump(t.ctx, (void*)((char*)t.data + 1));
}

int main(void) {
    coop_ctx c = coop_make(stack_mem + sizeof stack_mem, sizeof stack_mem, echo);
    if (!c) return 1;
    char* p = 0;
    for (int i = 0; i < 1000; ++i) {
        coop_transfer t = coop_jump(c, p);
        c = t.ctx;
        if ((char*)t.data != p + 1) {
            fprintf(stderr, "context_only: round trip %d returned the wrong value\n", i);
            return 1;
        }
        p = (char*)t.data;
    }
    printf("context_only: 1000 round trips\n");
    return 0;
}
