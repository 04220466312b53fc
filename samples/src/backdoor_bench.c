/* Benchmark loops at the fixed address: `backdoor_bench MODE N`, MODE = mmio (N backdoor
 * calls), insn (N instruction-interface calls), loop (the same loop without the call). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bdemu.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "loop";
    long n = argc > 2 ? atol(argv[2]) : 100000;
    bdemu_init_fixed();
    volatile uint64_t *data = bdemu_data();
    uint64_t acc = 0;
    if (!strcmp(mode, "mmio")) {
        for (long i = 0; i < n; i++) {
            data[0] = i;
            bdemu_call(i);
            acc += data[1];
        }
    } else if (!strcmp(mode, "insn")) {
#ifdef BDEMU_HAVE_INSN
        for (long i = 0; i < n; i++) {
            data[0] = i;
            acc += BDEMU_I8_V32(1, i);
            acc += data[1];
        }
#endif
    } else {
        for (long i = 0; i < n; i++) {
            data[0] = i;
            __asm__ __volatile__("" ::: "memory");
            acc += data[1];
        }
    }
    return (int)(acc & 1);
}
