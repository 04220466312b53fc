/* shm.c - memory shared between a process and the child it forks.
 *
 * Usage: shm DIR
 * Steps (each prints one line, never an address):
 *   1. MAP_SHARED|MAP_ANONYMOUS: the parent sees what the child stored.
 *   2. MAP_PRIVATE|MAP_ANONYMOUS: it does not (copy on write).
 *   3. MAP_SHARED of DIR/shm.dat: the child's store is in the file at once
 *      (pread, no msync), and the parent's pwrite is in the mapping at once.
 *   4. futex ping-pong on shared words: each round the parent stores a
 *      counter and wakes the child, which answers on another word; each word
 *      has one writer. Raw futex calls without FUTEX_PRIVATE_FLAG.
 *   5. a futex wait with a timeout on a shared word nobody changes: ETIMEDOUT.
 *   6. /proc/self/maps marks the shared mapping 's', the private one 'p'.
 *   7. file locks between the processes: the child sees the parent's record
 *      lock (F_GETLK, with its pid), is refused it (F_SETLK), then waits for
 *      it (F_SETLKW) until the parent unlocks; the same with flock(2).
 * Exit status 0 when every step passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define ROUNDS 100

static int failures;

static void check(const char *name, int ok)
{
    printf("%s: %s\n", name, ok ? "ok" : "FAILED");
    fflush(stdout);
    failures += !ok;
}

/* Forks; the child runs `body` and exits with its result. Returns the child's exit status. */
static int in_child(int (*body)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(body(arg));
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static int store_pages(void *arg)
{
    char *p = arg;
    memset(p, 'c', PAGE);
    p[PAGE] = 'd';
    return 0;
}

/* 32-bit ISAs: musl's timespec has a 64-bit time_t, which only futex_time64 reads. */
#if defined(SYS_futex_time64) && UINTPTR_MAX == 0xffffffffu
#define FUTEX_NUMBER SYS_futex_time64
#else
#define FUTEX_NUMBER SYS_futex
#endif

static long futex(volatile uint32_t *word, int op, uint32_t value, const struct timespec *timeout)
{
    return syscall(FUTEX_NUMBER, word, op, value, timeout, NULL, 0);
}

static int answer(void *arg)
{
    volatile uint32_t *words = arg;
    for (uint32_t i = 1; i <= ROUNDS; i++) {
        uint32_t seen;
        while ((seen = __atomic_load_n(&words[0], __ATOMIC_ACQUIRE)) != i)
            futex(&words[0], FUTEX_WAIT, seen, NULL);
        __atomic_store_n(&words[1], i, __ATOMIC_RELEASE);
        futex(&words[1], FUTEX_WAKE, 1, NULL);
    }
    return 0;
}

static int ping_pong(volatile uint32_t *words)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(answer((void *)words));
    if (pid < 0)
        return 0;
    uint32_t answered = 0;
    for (uint32_t i = 1; i <= ROUNDS; i++) {
        __atomic_store_n(&words[0], i, __ATOMIC_RELEASE);
        futex(&words[0], FUTEX_WAKE, 1, NULL);
        uint32_t seen;
        while ((seen = __atomic_load_n(&words[1], __ATOMIC_ACQUIRE)) != i)
            futex(&words[1], FUTEX_WAIT, seen, NULL);
        answered++;
    }
    int status = -1;
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
           answered == ROUNDS;
}

static int lock_fd = -1;

static int set_lock(int fd, int command, short type)
{
    struct flock lock = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    return fcntl(fd, command, &lock);
}

/* Runs in the child while the parent holds the write lock, then unlocks 100 ms later. */
static int contend(void *arg)
{
    int fd = open((const char *)arg, O_RDWR);
    struct flock probe = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1};
    int seen = fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type == F_WRLCK && probe.l_pid == getppid() &&
               probe.l_start == 0 && probe.l_len == 10;
    int refused = set_lock(fd, F_SETLK, F_WRLCK) == -1 && (errno == EAGAIN || errno == EACCES);
    int waited = set_lock(fd, F_SETLKW, F_WRLCK) == 0;
    int flocked = flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK && flock(fd, LOCK_EX) == 0;
    return (seen ? 0 : 1) | (refused ? 0 : 2) | (waited ? 0 : 4) | (flocked ? 0 : 8);
}

static int locks(const char *path)
{
    lock_fd = open(path, O_RDWR);
    if (lock_fd < 0 || set_lock(lock_fd, F_SETLK, F_WRLCK) != 0 || flock(lock_fd, LOCK_EX) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0)
        _exit(contend((void *)path));
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    set_lock(lock_fd, F_SETLK, F_UNLCK);
    nanosleep(&pause, NULL);
    flock(lock_fd, LOCK_UN);
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* The perms column of the /proc/self/maps line holding `address`: its 4th letter. */
static char sharing_of(const void *address)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    char found = '?';
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo <= (unsigned long)address &&
            (unsigned long)address < hi)
            found = perms[3];
    }
    if (maps)
        fclose(maps);
    return found;
}

int main(int argc, char **argv)
{
    char *shared = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    check("anonymous shared",
          shared != MAP_FAILED && in_child(store_pages, shared) == 0 && shared[0] == 'c' &&
          shared[PAGE - 1] == 'c' && shared[PAGE] == 'd');

    char *private = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("anonymous private",
          private != MAP_FAILED && (private[0] = 'p') && in_child(store_pages, private) == 0 &&
          private[0] == 'p' && private[PAGE] == 0);

    char path[4096];
    snprintf(path, sizeof path, "%s/shm.dat", argc > 1 ? argv[1] : ".");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static char fill[2 * PAGE];
    memset(fill, 'f', sizeof fill);
    int file_ok = fd >= 0 && write(fd, fill, sizeof fill) == (ssize_t)sizeof fill;
    char *mapped = file_ok ? mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (mapped != MAP_FAILED) {
        char got[2] = {0, 0};
        file_ok = in_child(store_pages, mapped) == 0 && pread(fd, got, 2, PAGE - 1) == 2 && got[0] == 'c' &&
                  got[1] == 'd' && pwrite(fd, "P", 1, PAGE + 1) == 1 && mapped[PAGE + 1] == 'P';
    } else {
        file_ok = 0;
    }
    check("file shared", file_ok);

    volatile uint32_t *words = (volatile uint32_t *)(shared + 64);
    words[0] = words[1] = 0;
    check("futex ping-pong", shared != MAP_FAILED && ping_pong(words));

    struct timespec brief = {0, 50 * 1000 * 1000};
    errno = 0;
    long timed = futex(&words[1], FUTEX_WAIT, words[1], &brief);
    printf("timed wait: %s\n", timed == -1 && errno == ETIMEDOUT ? "ETIMEDOUT" : "other");

    printf("maps: shared %c, private %c\n", sharing_of(shared), sharing_of(private));
    printf("locks: %d\n", locks(path));
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    return failures != 0;
}
