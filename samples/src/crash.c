/* crash.c - ends the process in a chosen way.
 *
 * Usage: crash MODE [N]
 *   segv    store through a NULL pointer             -> SIGSEGV
 *   ill     execute an undefined instruction         -> SIGILL
 *   abort   abort()                                  -> SIGABRT
 *   div     integer division by zero (volatile)      -> SIGFPE on x86/mips;
 *           aarch64, arm and riscv64 do not trap and print the quotient
 *   kill    kill(getpid(), SIGTERM)                  -> SIGTERM
 *   raise   raise(SIGUSR1)                           -> SIGUSR1 (10; 16 on MIPS)
 *   tgkill  tgkill(getpid(), gettid(), SIGHUP)       -> SIGHUP
 *   exit N  exit(N)
 * One line naming the mode is printed (and flushed) first.  An unknown or
 * missing mode prints a usage line to stderr and exits 2.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One undefined instruction per ISA (none of them a breakpoint encoding). */
static void undefined_instruction(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("ud2");
#elif defined(__aarch64__)
    __asm__ volatile(".inst 0x00000000");        /* udf #0 */
#elif defined(__arm__) && defined(__thumb__)
    __asm__ volatile(".inst.n 0xde00");          /* udf #0 (Thumb) */
#elif defined(__arm__)
    __asm__ volatile(".inst 0xe7f000f0");        /* udf #0 (ARM) */
#elif defined(__riscv)
    __asm__ volatile(".4byte 0x00000000");       /* all-zero: defined illegal */
#elif defined(__mips__)
    __asm__ volatile(".word 0x00000035");        /* SPECIAL funct 0x35: reserved */
#else
#error "no undefined instruction for this ISA"
#endif
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";

    printf("crash: mode=%s\n", mode);
    fflush(stdout);

    if (!strcmp(mode, "segv")) {
        int *volatile p = NULL;   /* volatile: the compiler cannot prove it NULL */
        *p = 42;
    } else if (!strcmp(mode, "ill")) {
        undefined_instruction();
    } else if (!strcmp(mode, "abort")) {
        abort();
    } else if (!strcmp(mode, "div")) {
        volatile int a = 42, b = 0;
        int q = a / b;
        printf("crash: 42 / 0 = %d (no trap)\n", q);
        return 0;
    } else if (!strcmp(mode, "kill")) {
        kill(getpid(), SIGTERM);
    } else if (!strcmp(mode, "raise")) {
        raise(SIGUSR1);
    } else if (!strcmp(mode, "tgkill")) {
        syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGHUP);
    } else if (!strcmp(mode, "exit")) {
        exit(argc > 2 ? atoi(argv[2]) : 0);
    } else {
        fprintf(stderr, "usage: crash segv|ill|abort|div|kill|raise|tgkill|exit N\n");
        return 2;
    }
    printf("crash: still alive after mode=%s\n", mode);
    return 1;
}
