/* The control window's register semantics at the fixed address (SPEC 2): reads of
 * 1/2/4/8 bytes at offsets 0..7 and wrapping ones, and command writes of every shape.
 * Each write group is announced on stdout; the host logs the cmds it receives. */
#include <bdemu.h>
#include <stdio.h>

#define C8(o) (*(volatile uint8_t *)(bdemu__control + (o)))
#define C16(o) (*(volatile uint16_t *)(bdemu__control + (o)))
#define C32(o) (*(volatile uint32_t *)(bdemu__control + (o)))
#define C64(o) (*(volatile uint64_t *)(bdemu__control + (o)))

int main(void)
{
    bdemu_init_fixed();
    for (int o = 0; o < 8; o++)
        printf("read o=%d: %02x %04x %08x %016llx\n", o, C8(o), C16(o), C32(o), (unsigned long long)C64(o));
    /* offsets elsewhere in the page fold onto the same register */
    printf("read o=4080+3: %016llx\n", (unsigned long long)C64(4080 + 3));
    printf("read o=4090: %08x\n", C32(4090));
    fflush(stdout);
    C64(8) = 0x1111111111111111ULL;                 /* 1 call */
    C32(8) = 0x22222222;                            /* stages the low half */
    C32(12) = 0x33333333;                           /* 1 call: 0x3333333322222222 */
    for (int i = 0; i < 8; i++)
        C8(8 + i) = (uint8_t)(0x40 + i);            /* 1 call, after the 8th: 0x4746454443424140 */
    C64(0) = 0x5555555555555555ULL;                 /* 1 call each, at other offsets */
    C64(16) = 0x6666666666666666ULL;
    C64(4088) = 0x7777777777777777ULL;
    for (int i = 0; i < 4; i++)
        C16(2 * i) = (uint16_t)(0x8880 + i);        /* 1 call: 0x8883888288818880 */
    C32(4) = 0x99999999;                            /* (o + n) % 8 == 0: 1 call, 0x9999999988818880 */
    printf("writes done\n");
    return 0;
}
