/* The instruction interface: `backdoor_insn calls` (i8 and i8_v32 calls, the host answers
 * i8 + 1 and i8 ^ v32), `sig` (the signature leaf), `leaves` (x86: CPUID leaves 0 and 1),
 * `invalid T` (a type-T request: types 2..15 end the run with status 125). */
#include <bdemu.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BDEMU_HAVE_INSN
int main(void)
{
    printf("no instruction interface on this ISA yet\n");
    return 1;
}
#else
int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "calls";
    if (!strcmp(mode, "calls")) {
        int ok = 0;
        for (int i = 0; i < 256; i++)
            ok += BDEMU_I8(i) == (uint32_t)i + 1;
        for (int i = 0; i < 256; i++)
            ok += BDEMU_I8_V32(i, 0xdead0000u + i * 77) == ((uint32_t)i ^ (0xdead0000u + i * 77));
        printf("insn: calls=512 ok=%d\n", ok);
        return ok != 512;
    }
    if (!strcmp(mode, "sig")) {
        uint32_t regs[4] = {0x40000000u, 0, 0, 0};
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("cpuid" : "+a"(regs[0]), "=b"(regs[1]), "=c"(regs[2]), "=d"(regs[3]));
#elif defined(__aarch64__)
        register uint64_t x0 __asm__("x0") = regs[0];
        register uint64_t x1 __asm__("x1"), x2 __asm__("x2"), x3 __asm__("x3");
        __asm__ __volatile__(".inst 0x0000bd01" : "+r"(x0), "=r"(x1), "=r"(x2), "=r"(x3));
        regs[0] = x0; regs[1] = x1; regs[2] = x2; regs[3] = x3;
#elif defined(__riscv)
        register uint64_t a0 __asm__("a0") = regs[0];
        register uint64_t a1 __asm__("a1"), a2 __asm__("a2"), a3 __asm__("a3");
        __asm__ __volatile__(".insn 0xbd00007b" : "+r"(a0), "=r"(a1), "=r"(a2), "=r"(a3));
        regs[0] = a0; regs[1] = a1; regs[2] = a2; regs[3] = a3;
#elif defined(__arm__)
        register uint32_t r0 __asm__("r0") = regs[0];
        register uint32_t r1 __asm__("r1"), r2 __asm__("r2"), r3 __asm__("r3");
#if defined(__thumb__)
        __asm__ __volatile__(".inst.w 0xf7fbad01" : "+r"(r0), "=r"(r1), "=r"(r2), "=r"(r3));
#else
        __asm__ __volatile__(".inst 0xe7fbd0f1" : "+r"(r0), "=r"(r1), "=r"(r2), "=r"(r3));
#endif
        regs[0] = r0; regs[1] = r1; regs[2] = r2; regs[3] = r3;
#elif defined(__mips__)
        register uint32_t v0 __asm__("$2") = regs[0];
        register uint32_t v1 __asm__("$3"), a0 __asm__("$4"), a1 __asm__("$5");
        __asm__ __volatile__(".word 0x002f404c" : "+r"(v0), "=r"(v1), "=r"(a0), "=r"(a1));
        regs[0] = v0; regs[1] = v1; regs[2] = a0; regs[3] = a1;
#endif
        char sig[13];
        memcpy(sig, regs + 1, 12);
        sig[12] = 0;
        printf("sig: max=%#x %s\n", regs[0], sig);
        return 0;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (!strcmp(mode, "leaves")) {
        for (uint32_t leaf = 0; leaf < 2; leaf++) {
            uint32_t a = leaf, b, c = 0, d;
            __asm__ __volatile__("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
            printf("leaf %u: %08x %08x %08x %08x\n", leaf, a, b, c, d);
        }
        return 0;
    }
#endif
    if (!strcmp(mode, "invalid")) {
        int type = argc > 2 ? atoi(argv[2]) : 2;
        printf("asking type %d\n", type);
        fflush(stdout);
        BDEMU_INSN(type, 7, 0);
        printf("still running\n");
        return 0;
    }
    printf("unknown mode %s\n", mode);
    return 2;
}
#endif
