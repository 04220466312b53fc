/* The control window's register semantics at the fixed address (SPEC 2): reads of
 * 1/2/4/8 bytes at offsets 0..7 and wrapping ones, and command writes of every shape.
 * Each write group is announced on stdout; the host logs the cmds it receives. */
#include <bdemu.h>
#include <stdio.h>

#define C8(o) (*(volatile uint8_t *)(bdemu__control + (o)))
#define C16(o) (*(volatile uint16_t *)(bdemu__control + (o)))
#define C32(o) (*(volatile uint32_t *)(bdemu__control + (o)))
#define C64(o) (*(volatile uint64_t *)(bdemu__control + (o)))
#if defined(__mips__)
/* MIPS raises an address error on unaligned loads (Linux then emulates them in the kernel,
 * which bdemu cannot: Unicorn does not report the faulting pc). Unaligned reads go through
 * packed types, which the compiler turns into lwl/lwr and byte loads, as MIPS code must. */
struct bdemu_u16 { uint16_t v; } __attribute__((packed));
struct bdemu_u32 { uint32_t v; } __attribute__((packed));
struct bdemu_u64 { uint64_t v; } __attribute__((packed));
#define R16(o) (((volatile struct bdemu_u16 *)(bdemu__control + (o)))->v)
#define R32(o) (((volatile struct bdemu_u32 *)(bdemu__control + (o)))->v)
#define R64(o) (((volatile struct bdemu_u64 *)(bdemu__control + (o)))->v)
#else
#define R16 C16
#define R32 C32
#define R64 C64
#endif
/* A 64-bit command store: one 8-byte store, or two 4-byte ones in address order on 32-bit ISAs. */
#define W64(o, v) bdemu__store_cmd(bdemu__control + (o), (v))

int main(void)
{
    bdemu_init_fixed();
    for (int o = 0; o < 8; o++)
        printf("read o=%d: %02x %04x %08x %016llx\n", o, C8(o), R16(o), R32(o), (unsigned long long)R64(o));
    /* offsets elsewhere in the page fold onto the same register */
    printf("read o=4080+3: %016llx\n", (unsigned long long)R64(4080 + 3));
    printf("read o=4090: %08x\n", R32(4090));
    fflush(stdout);
    W64(8, 0x1111111111111111ULL);                 /* 1 call */
    C32(8) = 0x22222222;                            /* stages the low half */
    C32(12) = 0x33333333;                           /* 1 call: 0x3333333322222222 */
    for (int i = 0; i < 8; i++)
        C8(8 + i) = (uint8_t)(0x40 + i);            /* 1 call, after the 8th: 0x4746454443424140 */
    W64(0, 0x5555555555555555ULL);                 /* 1 call each, at other offsets */
    W64(16, 0x6666666666666666ULL);
    W64(4088, 0x7777777777777777ULL);
    for (int i = 0; i < 4; i++)
        C16(2 * i) = (uint16_t)(0x8880 + i);        /* 1 call: 0x8883888288818880 */
    C32(4) = 0x99999999;                            /* (o + n) % 8 == 0: 1 call, 0x9999999988818880 */
    printf("writes done\n");
    return 0;
}
