/*
 * bdemu.h - guest side of the bdemu backdoor device (ABI version 1). Header-only.
 *
 * The device (see docs/backdoor.md):
 *   control window, 1 page: reads (any offset, folded modulo 8) return
 *     DATA_SIZE, the size of the data window; a write that completes the
 *     8-byte CMD register (offset 8, or any offset with (o + n) % 8 == 0)
 *     calls the host synchronously with CMD and the data window.
 *   data window, DATA_SIZE bytes of RAM shared with the host, zero copy.
 *
 * Finding it:
 *   bdemu_init()              sysfs: /sys/bus/pci/devices/0000:00:04.0/resource0,1
 *                             (vendor 0x1af4, device 0x1004); uses open + mmap.
 *   bdemu_init_fixed()        the fixed address BDEMU_CONTROL_ADDR: no syscalls.
 *   bdemu_init_usermode(base) the seed's user-mode files BASE-control (2 pages:
 *                             a write at page 0 offset 8 stages, page 1 offset 8
 *                             calls) and BASE-data (bdemu --backdoor-path BASE).
 *
 * Instruction interface, no set-up needed: BDEMU_I8(i) and BDEMU_I8_V32(i, v)
 * return the host's 32-bit answer.
 *   x86, x86-64: CPUID with EAX = 0x40001000 | type << 8 | i8, ECX = v32;
 *                EAX = answer, EBX = ECX = EDX = 0. CPUID 0x40000000 returns
 *                EAX = 0x40001000 and "bdemu-bdoor1" in EBX, ECX, EDX.
 *   AArch64:     `udf #0xbd01` (instruction word 0x0000bd01, permanently
 *                undefined) with w0 = 0x40001000 | type << 8 | i8, w1 = v32;
 *                x0 = answer, x1 = x2 = x3 = 0; the same signature leaf
 *                (w0 = 0x40000000). Like gem5's m5ops (function in an
 *                unallocated encoding) it traps without any per-instruction
 *                hook; unlike them it uses an encoding the architecture
 *                guarantees never to allocate, and one encoding only: the
 *                request travels in registers, as with CPUID.
 *   ARM (32-bit): A32 `udf #0xbd01` (word 0xe7fbd0f1); Thumb code uses the
 *                T32 `udf.w #0xbd01` (halfwords 0xf7fb 0xad01) and stays in
 *                Thumb. r0 = 0x40001000 | type << 8 | i8, r1 = v32; r0 =
 *                answer, r1 = r2 = r3 = 0; signature leaf as on AArch64.
 *   MIPS32 (o32): `syscall 0xbd01` (word 0x002f404c) with v0 = 0x40001000 |
 *                type << 8 | i8, a0 = v32; v0 = answer, v1 = a0 = a1 = 0;
 *                signature in v1, a0, a1. A syscall with a code no libc
 *                uses: it is the one MIPS exception for which Unicorn
 *                reports the pc, and Linux (without bdemu) just answers
 *                ENOSYS. The leaf values are no Linux syscall number.
 *   RISC-V 64:   the word 0xbd00007b (major opcode custom-3, which the ISA
 *                reserves for non-standard extensions and compilers never
 *                emit) with a0 = 0x40001000 | type << 8 | i8, a1 = v32;
 *                a0 = answer, a1 = a2 = a3 = 0; the same signature leaf.
 *   type 0 calls on_backdoor_i8(i8), type 1 on_backdoor_i8_v32(i8, v32);
 *   types 2..15 are invalid and end the run (exit 125).
 */
#ifndef BDEMU_H
#define BDEMU_H

#include <stdint.h>
#include <stddef.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>

#define BDEMU_VENDOR 0x1af4
#define BDEMU_DEVICE 0x1004
#define BDEMU_CLASS 0x050000
#define BDEMU_SYSFS_DIR "/sys/bus/pci/devices/0000:00:04.0"
#define BDEMU_PAGE_SIZE 4096

/* The control page; the data window starts BDEMU_PAGE_SIZE after it. */
#if defined(__x86_64__) || defined(__aarch64__)
#define BDEMU_CONTROL_ADDR 0x7ffe00000000ULL
#elif defined(__i386__)
#define BDEMU_CONTROL_ADDR 0xaf000000UL
#elif defined(__arm__)
#define BDEMU_CONTROL_ADDR 0xae000000UL
#elif defined(__mips__) && !defined(__mips64)
#define BDEMU_CONTROL_ADDR 0x6f000000UL
#elif defined(__riscv) && __riscv_xlen == 64
/* RISC-V 64: below the stack, in the Sv39 user address space. */
#define BDEMU_CONTROL_ADDR 0x3fe8000000ULL
#endif
/* Other ISAs: no fixed address yet (bdemu_init_fixed() returns -1). */

static volatile uint8_t *bdemu__control;
static void *bdemu__data;
static int bdemu__two_pages;

static inline uint64_t bdemu_data_size(void)
{
    return bdemu__control ? *(volatile uint64_t *)bdemu__control : 0;
}

static inline void *bdemu_data(void) { return bdemu__data; }

/* Store CMD at `at`. A 32-bit guest makes two 4-byte stores in address order, so the
 * second one completes CMD and calls the host once (compilers may store the halves of a
 * volatile uint64_t in either order). */
static inline void bdemu__store_cmd(volatile uint8_t *at, uint64_t cmd)
{
#if UINTPTR_MAX == 0xffffffffu
    volatile uint32_t *word = (volatile uint32_t *)at;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word[0] = (uint32_t)(cmd >> 32);
    word[1] = (uint32_t)cmd;
#else
    word[0] = (uint32_t)cmd;
    word[1] = (uint32_t)(cmd >> 32);
#endif
#else
    *(volatile uint64_t *)at = cmd;
#endif
}

/* Call the host: on_backdoor(cmd, data) runs before this returns. */
static inline void bdemu_call(uint64_t cmd)
{
    bdemu__store_cmd(bdemu__control + 8, cmd);
    if (bdemu__two_pages)
        bdemu__store_cmd(bdemu__control + BDEMU_PAGE_SIZE + 8, cmd);
}

static inline void *bdemu__map(const char *path, size_t size)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return NULL;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static inline int bdemu__attach(const char *control, size_t control_size, const char *data)
{
    volatile uint8_t *c = (volatile uint8_t *)bdemu__map(control, control_size);
    if (!c)
        return -1;
    uint64_t size = *(volatile uint64_t *)c;
    void *d = bdemu__map(data, (size_t)size);
    if (!d) {
        munmap((void *)c, control_size);
        return -1;
    }
    bdemu__control = c;
    bdemu__data = d;
    bdemu__two_pages = control_size > BDEMU_PAGE_SIZE;
    return 0;
}

/* Find the device in sysfs and map both windows. 0 on success, -1 if absent. */
static inline int bdemu_init(void)
{
    return bdemu__attach(BDEMU_SYSFS_DIR "/resource0", BDEMU_PAGE_SIZE, BDEMU_SYSFS_DIR "/resource1");
}

/* Use the seed's user-mode files BASE-control and BASE-data. */
static inline int bdemu_init_usermode(const char *base)
{
    char control[4096], data[4096];
    size_t n = 0;
    while (base[n] && n < sizeof(control) - 16) {
        control[n] = data[n] = base[n];
        n++;
    }
    const char *cs = "-control", *ds = "-data";
    size_t i;
    for (i = 0; cs[i]; i++) control[n + i] = cs[i];
    control[n + i] = 0;
    for (i = 0; ds[i]; i++) data[n + i] = ds[i];
    data[n + i] = 0;
    return bdemu__attach(control, 2 * BDEMU_PAGE_SIZE, data);
}

/* Use the windows at BDEMU_CONTROL_ADDR: no syscalls. Only valid under bdemu. */
static inline int bdemu_init_fixed(void)
{
#ifdef BDEMU_CONTROL_ADDR
    bdemu__control = (volatile uint8_t *)(uintptr_t)BDEMU_CONTROL_ADDR;
    bdemu__data = (void *)(uintptr_t)(BDEMU_CONTROL_ADDR + BDEMU_PAGE_SIZE);
    bdemu__two_pages = 0;
    return 0;
#else
    return -1;
#endif
}

#define BDEMU_LEAF(type, i8) ((uint32_t)0x40001000u | ((uint32_t)(type) << 8) | (uint8_t)(i8))

#if defined(__x86_64__) || defined(__i386__)
static inline uint32_t bdemu__insn(uint32_t leaf, uint32_t v32)
{
    uint32_t eax = leaf, ebx, ecx = v32, edx;
    __asm__ __volatile__("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx) : : "memory");
    return eax;
}
#define BDEMU_HAVE_INSN 1
#elif defined(__aarch64__)
static inline uint32_t bdemu__insn(uint32_t leaf, uint32_t v32)
{
    register uint64_t x0 __asm__("x0") = leaf;
    register uint64_t x1 __asm__("x1") = v32;
    register uint64_t x2 __asm__("x2");
    register uint64_t x3 __asm__("x3");
    __asm__ __volatile__(".inst 0x0000bd01" : "+r"(x0), "+r"(x1), "=r"(x2), "=r"(x3) : : "memory");
    return (uint32_t)x0;
}
#define BDEMU_HAVE_INSN 1
#elif defined(__riscv) && __riscv_xlen == 64
static inline uint32_t bdemu__insn(uint32_t leaf, uint32_t v32)
{
    register uint64_t a0 __asm__("a0") = leaf;
    register uint64_t a1 __asm__("a1") = v32;
    register uint64_t a2 __asm__("a2");
    register uint64_t a3 __asm__("a3");
    __asm__ __volatile__(".insn 0xbd00007b" : "+r"(a0), "+r"(a1), "=r"(a2), "=r"(a3) : : "memory");
    return (uint32_t)a0;
}
#define BDEMU_HAVE_INSN 1
#elif defined(__arm__)
static inline uint32_t bdemu__insn(uint32_t leaf, uint32_t v32)
{
    register uint32_t r0 __asm__("r0") = leaf;
    register uint32_t r1 __asm__("r1") = v32;
    register uint32_t r2 __asm__("r2");
    register uint32_t r3 __asm__("r3");
#if defined(__thumb__)
    __asm__ __volatile__(".inst.w 0xf7fbad01" : "+r"(r0), "+r"(r1), "=r"(r2), "=r"(r3) : : "memory");
#else
    __asm__ __volatile__(".inst 0xe7fbd0f1" : "+r"(r0), "+r"(r1), "=r"(r2), "=r"(r3) : : "memory");
#endif
    return r0;
}
#define BDEMU_HAVE_INSN 1
#elif defined(__mips__) && !defined(__mips64)
static inline uint32_t bdemu__insn(uint32_t leaf, uint32_t v32)
{
    register uint32_t v0 __asm__("$2") = leaf;
    register uint32_t v1 __asm__("$3");
    register uint32_t a0 __asm__("$4") = v32;
    register uint32_t a1 __asm__("$5");
    __asm__ __volatile__(".word 0x002f404c" : "+r"(v0), "=r"(v1), "+r"(a0), "=r"(a1) : : "memory");
    return v0;
}
#define BDEMU_HAVE_INSN 1
#else
/* No instruction interface on this ISA yet: using it is a compile-time error. */
#define bdemu__insn(leaf, v32) \
    ({ _Static_assert(0, "bdemu: no backdoor instruction interface on this ISA yet"); 0u; })
#endif

/* Type 0: on_backdoor_i8(i8). Type 1: on_backdoor_i8_v32(i8, v32). Both return the answer. */
#define BDEMU_I8(i) bdemu__insn(BDEMU_LEAF(0, (i)), 0)
#define BDEMU_I8_V32(i, v) bdemu__insn(BDEMU_LEAF(1, (i)), (uint32_t)(v))
/* Any (type, i8, v32), for tests of the invalid types 2..15. */
#define BDEMU_INSN(t, i, v) bdemu__insn(BDEMU_LEAF((t), (i)), (uint32_t)(v))

#endif /* BDEMU_H */
