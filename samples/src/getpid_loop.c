/* getpid_loop.c - a syscall micro-benchmark.
 *
 * Usage: getpid_loop [N]   (default 1000000)
 * Calls syscall(SYS_getpid) N times and checks that the pid never changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000000ul;
    long first = syscall(SYS_getpid);
    unsigned long changed = 0;

    for (unsigned long i = 0; i < n; i++)
        changed += syscall(SYS_getpid) != first;
    printf("getpid_loop: %lu calls, %lu mismatches\n", n, changed);
    return changed ? 1 : 0;
}
