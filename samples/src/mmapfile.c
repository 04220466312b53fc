/* mmapfile.c - file-backed mmap as a dynamic loader uses it.
 *
 * Usage: mmapfile DIR
 * Writes DIR/mm.dat (pages 'A', 'B', 'C', then 100 bytes of 'D'), then maps it
 * with offsets (MAP_PRIVATE), writes into a private copy (the file keeps its
 * bytes), maps over part of an existing mapping (MAP_FIXED), changes
 * protections (mprotect), maps the short last page (zero-filled after EOF),
 * stores through MAP_SHARED (the file sees them after msync and munmap, and a
 * write(2) in between is kept) and checks the errors of bad requests. Prints results only, never addresses;
 * errors by name. Exit status 0 when every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
static int failures;

static void check(const char *name, int ok)
{
    printf("%s: %s\n", name, ok ? "ok" : "FAILED");
    failures += !ok;
}

static const char *err_name(int e)
{
    switch (e) {
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EEXIST: return "EEXIST";
    default: return "other";
    }
}

static int all(const char *p, size_t n, char c)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != c)
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/mm.dat", argc > 1 ? argv[1] : ".");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    static char page[PAGE];
    for (int i = 0; i < 3; i++) {
        memset(page, 'A' + i, PAGE);
        if (write(fd, page, PAGE) != PAGE)
            return 1;
    }
    memset(page, 'D', 100);
    if (write(fd, page, 100) != 100)
        return 1;

    /* Offsets: two pages from offset 4096 are 'B' then 'C'. */
    char *p = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, PAGE);
    check("offset map", p != MAP_FAILED && all(p, PAGE, 'B') && all(p + PAGE, PAGE, 'C'));

    /* MAP_PRIVATE is a copy: writing it leaves the file alone. */
    char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int copied = q != MAP_FAILED;
    if (copied) {
        q[0] = 'z';
        char first = 0;
        copied = pread(fd, &first, 1, 0) == 1 && first == 'A' && q[0] == 'z' && q[1] == 'A';
    }
    check("private copy", copied);

    /* The short last page: 100 file bytes, then zeros up to the page end. */
    char *t = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 3 * PAGE);
    check("tail page", t != MAP_FAILED && all(t, 100, 'D') && all(t + 100, PAGE - 100, 0));

    /* MAP_FIXED replaces the middle page of an anonymous mapping, nothing else. */
    char *r = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fixed = r != MAP_FAILED;
    if (fixed) {
        memset(r, 'x', 3 * PAGE);
        char *m = mmap(r + PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 2 * PAGE);
        fixed = m == r + PAGE && all(r, PAGE, 'x') && all(r + PAGE, PAGE, 'C') && all(r + 2 * PAGE, PAGE, 'x');
    }
    check("fixed over existing", fixed);

    /* mprotect: the file page becomes writable (still a private copy), then read-only again. */
    int prot = fixed && mprotect(r + PAGE, PAGE, PROT_READ | PROT_WRITE) == 0;
    if (prot) {
        r[PAGE] = 'w';
        prot = r[PAGE] == 'w' && mprotect(r, 3 * PAGE, PROT_READ) == 0 && r[2 * PAGE] == 'x';
    }
    check("mprotect", prot);

    /* MAP_SHARED: stores reach the file after msync, and after munmap; pwrite in between stays. */
    char *s = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PAGE);
    int shared = s != MAP_FAILED;
    if (shared) {
        char got[2] = {0, 0};
        s[0] = 's';
        shared = msync(s, 2 * PAGE, MS_SYNC) == 0 && pread(fd, got, 1, PAGE) == 1 && got[0] == 's';
        shared = shared && pwrite(fd, "W", 1, PAGE + 10) == 1;
        s[PAGE + 1] = 't';
        shared = shared && munmap(s, 2 * PAGE) == 0 && pread(fd, got, 2, 2 * PAGE) == 2 &&
                 got[0] == 'C' && got[1] == 't' && pread(fd, got, 1, PAGE + 10) == 1 && got[0] == 'W';
    }
    check("shared stores reach the file", shared);

    /* MAP_FIXED_NOREPLACE refuses an occupied range. */
    errno = 0;
    void *n = mmap(r, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("noreplace over existing: %s\n", n == MAP_FAILED ? err_name(errno) : "mapped");

    /* Bad requests. */
    errno = 0;
    n = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 100);
    printf("unaligned offset: %s\n", n == MAP_FAILED ? err_name(errno) : "mapped");
    errno = 0;
    n = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, 999, 0);
    printf("bad fd: %s\n", n == MAP_FAILED ? err_name(errno) : "mapped");
    int wfd = open(path, O_WRONLY);
    errno = 0;
    n = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, wfd, 0);
    printf("write-only fd: %s\n", n == MAP_FAILED ? err_name(errno) : "mapped");
    errno = 0;
    n = mmap(NULL, 0, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("zero length: %s\n", n == MAP_FAILED ? err_name(errno) : "mapped");

    /* munmap of the middle page leaves its neighbours. */
    int unmapped = fixed && munmap(r + PAGE, PAGE) == 0 && r[0] == 'x' && r[2 * PAGE] == 'x';
    check("munmap middle", unmapped);

    close(wfd);
    close(fd);
    unlink(path);
    return failures != 0;
}
