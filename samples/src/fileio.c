/* fileio.c - exercises the common file-system syscalls.
 *
 * Usage: fileio [DIR]   (default ".")
 * Works in DIR/bdemu_fileio.d (created and removed again).  Every line it
 * prints is deterministic: sizes and results only, never times, inode
 * numbers or absolute paths.  Errors are printed by name, not by number,
 * because errno values differ between ISAs (e.g. MIPS).  Exit status 0 when
 * every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

/* Prints "name: ok" or "name: FAILED (ERRNAME)". */
static void check(const char *name, int ok)
{
    if (ok) {
        printf("%s: ok\n", name);
    } else {
        printf("%s: FAILED (errno %d)\n", name, errno);
        failures++;
    }
}

static const char *errname(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    default: return "other";
    }
}

/* Expects a call to fail with a given errno; prints the errno's name. */
static void check_err(const char *name, int ret, int want)
{
    int e = errno;

    printf("%s: ret=%d errno=%s\n", name, ret, ret < 0 ? errname(e) : "0");
    if (ret >= 0 || e != want)
        failures++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists a directory, sorted by name, skipping "." and "..". */
static void list_dir(const char *path)
{
    char *names[32];
    int n = 0;
    DIR *d = opendir(path);
    struct dirent *de;

    check("opendir", d != NULL);
    if (!d)
        return;
    while ((de = readdir(d)) != NULL && n < 32) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    printf("readdir: %d entries\n", n);
    for (int i = 0; i < n; i++) {
        printf("  %s\n", names[i]);
        free(names[i]);
    }
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : ".";
    char dir[4096], file[4200], file2[4200], sub[4200], buf[256];
    const char *text = "0123456789abcdefghijklmnopqrstuvwxyz\n";
    size_t len = strlen(text);
    struct stat st;
    ssize_t n;
    int fd, fd2, p[2];
    off_t off;

    umask(022);   /* file modes printed below must not depend on the caller */
    snprintf(dir, sizeof dir, "%s/bdemu_fileio.d", base);
    snprintf(file, sizeof file, "%s/data.txt", dir);
    snprintf(file2, sizeof file2, "%s/renamed.txt", dir);
    snprintf(sub, sizeof sub, "%s/subdir", dir);

    /* Directories. */
    check("mkdir", mkdir(dir, 0755) == 0);
    check_err("mkdir again", mkdir(dir, 0755), EEXIST);
    check("mkdir subdir", mkdir(sub, 0700) == 0);

    /* Create, write, seek, pread, read. */
    fd = open(file, O_CREAT | O_EXCL | O_RDWR | O_TRUNC, 0644);
    check("open O_CREAT|O_EXCL", fd >= 0);
    check_err("open O_EXCL again", open(file, O_CREAT | O_EXCL | O_RDWR, 0644), EEXIST);
    n = write(fd, text, len);
    printf("write: %zd\n", n);
    off = lseek(fd, 0, SEEK_CUR);
    printf("lseek SEEK_CUR: %lld\n", (long long)off);
    off = lseek(fd, 10, SEEK_SET);
    printf("lseek SEEK_SET 10: %lld\n", (long long)off);
    n = read(fd, buf, 5);
    printf("read 5: %zd \"%.*s\"\n", n, n > 0 ? (int)n : 0, buf);
    off = lseek(fd, -3, SEEK_END);
    printf("lseek SEEK_END -3: %lld\n", (long long)off);
    n = pread(fd, buf, 4, 32);
    printf("pread 4 @32: %zd \"%.*s\"\n", n, n > 0 ? (int)n : 0, buf);
    off = lseek(fd, 0, SEEK_CUR);
    printf("offset after pread: %lld\n", (long long)off);
    n = pwrite(fd, "XY", 2, 0);
    printf("pwrite 2 @0: %zd\n", n);

    /* fstat / stat: sizes and types only. */
    check("fstat", fstat(fd, &st) == 0);
    printf("fstat: size=%lld regular=%d\n", (long long)st.st_size, S_ISREG(st.st_mode));
    check("ftruncate 20", ftruncate(fd, 20) == 0);
    check("close", close(fd) == 0);
    check_err("close again", close(fd), EBADF);
    check("stat", stat(file, &st) == 0);
    printf("stat: size=%lld mode=%03o\n", (long long)st.st_size, (unsigned)(st.st_mode & 0777));
    check("stat dir", stat(sub, &st) == 0 && S_ISDIR(st.st_mode));

    /* Append mode and read the whole file back. */
    fd = open(file, O_WRONLY | O_APPEND);
    check("open O_APPEND", fd >= 0);
    printf("append write: %zd\n", write(fd, "+tail\n", 6));
    close(fd);
    fd = open(file, O_RDONLY);
    n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("read all: %zd \"%s\"\n", n, strtok(buf, "\n"));
    close(fd);

    /* rename, access, readdir. */
    check("rename", rename(file, file2) == 0);
    check_err("stat old name", stat(file, &st), ENOENT);
    check("access F_OK", access(file2, F_OK) == 0);
    check("access R_OK|W_OK", access(file2, R_OK | W_OK) == 0);
    check_err("access missing", access(file, F_OK), ENOENT);
    list_dir(dir);

    /* dup / dup2: write through a duplicate, read back. */
    fd = open(file2, O_RDWR);
    fd2 = dup(fd);
    check("dup", fd2 > fd);
    check("dup2", dup2(fd, 100) == 100);
    lseek(fd2, 0, SEEK_SET);
    write(100, "DUP", 3);   /* shares the offset with fd and fd2 */
    printf("offset via fd after dup2 write: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
    pread(fd2, buf, 6, 0);
    printf("pread after dup write: \"%.6s\"\n", buf);
    close(100);
    close(fd2);
    close(fd);

    /* pipe */
    check("pipe", pipe(p) == 0);
    printf("pipe write: %zd\n", write(p[1], "through the pipe", 16));
    close(p[1]);
    n = read(p[0], buf, sizeof buf);
    printf("pipe read: %zd \"%.*s\"\n", n, n > 0 ? (int)n : 0, buf);
    printf("pipe read at EOF: %zd\n", read(p[0], buf, sizeof buf));
    close(p[0]);

    /* /proc/self/exe and getcwd */
    n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        printf("readlink /proc/self/exe: ok basename=%s\n",
               strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf);
    } else {
        printf("readlink /proc/self/exe: FAILED\n");
        failures++;
    }
    check("getcwd", getcwd(buf, sizeof buf) != NULL && buf[0] == '/');

    /* Clean-up, including an rmdir that must fail while not empty. */
    check_err("rmdir non-empty", rmdir(dir), ENOTEMPTY);
    check("unlink", unlink(file2) == 0);
    check_err("unlink again", unlink(file2), ENOENT);
    check("rmdir subdir", rmdir(sub) == 0);
    check("rmdir", rmdir(dir) == 0);
    check_err("stat removed dir", stat(dir, &st), ENOENT);

    printf("fileio: %d failures\n", failures);
    return failures ? 1 : 0;
}
