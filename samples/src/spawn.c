/* spawn.c - process creation: fork, pipe, execve, waitpid, signals.
 *
 * Usage: spawn            run all the steps below
 *        spawn child WORD  "child mode" used by the execve step: prints one
 *                          line and exits 3
 * Steps:
 *   1. fork; the child writes to a pipe and exits 7; the parent reads the
 *      message and reports WEXITSTATUS.
 *   2. fork + execve("/proc/self/exe", {argv0, "child", "exec"}); the parent
 *      reports the exit status (3).
 *   3. fork; the child execve()s a missing path and exits 42 if that failed
 *      with ENOENT.
 *   4. fork; the child kills itself with SIGTERM; the parent reports WTERMSIG.
 * Output is deterministic (no pids).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void report(const char *what, pid_t pid)
{
    int status = 0;
    pid_t r = waitpid(pid, &status, 0);

    if (r != pid)
        printf("%s: waitpid failed\n", what);
    else if (WIFEXITED(status))
        printf("%s: exited status=%d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed signal=%d\n", what, WTERMSIG(status));
    else
        printf("%s: other status 0x%x\n", what, status);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int p[2];
    pid_t pid;
    char buf[64];
    ssize_t n;

    if (argc > 2 && !strcmp(argv[1], "child")) {
        printf("spawn child: running, word=%s\n", argv[2]);
        return 3;
    }

    /* 1. fork + pipe */
    printf("spawn: start\n");
    fflush(stdout);   /* nothing buffered may be inherited by a child */
    if (pipe(p) != 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        write(p[1], "hello from child", 16);
        _exit(7);
    }
    close(p[1]);
    n = read(p[0], buf, sizeof buf);
    close(p[0]);
    printf("fork: parent read %zd bytes \"%.*s\"\n", n, n > 0 ? (int)n : 0, buf);
    report("fork", pid);

    /* 2. fork + execve of ourselves */
    pid = fork();
    if (pid == 0) {
        char *args[] = { argv[0], "child", "exec", NULL };
        execve("/proc/self/exe", args, environ);
        printf("execve: failed errno=%d\n", errno);
        fflush(stdout);
        _exit(127);
    }
    report("execve", pid);

    /* 3. execve of a missing file must fail with ENOENT */
    pid = fork();
    if (pid == 0) {
        char *args[] = { "missing", NULL };
        execve("/nonexistent/bdemu-missing", args, environ);
        _exit(errno == ENOENT ? 42 : 1);
    }
    report("execve missing", pid);

    /* 4. a child killed by a signal */
    pid = fork();
    if (pid == 0) {
        kill(getpid(), SIGTERM);
        _exit(1);
    }
    report("sigterm", pid);

    printf("spawn: done\n");
    return 0;
}
