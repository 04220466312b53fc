/* signalfd.c - blocked signals read from a signalfd, seen by poll, select and epoll.
 *
 * Usage: signalfd
 * Each check prints one line "name: ok" (never a pid), in order: an empty
 * non-blocking signalfd gives EAGAIN and is not readable; raise() makes it readable
 * and read returns SIGUSR1 with SI_TKILL and our pid, then it is empty again;
 * sigqueue's value reaches ssi_int; two pending signals are read at once; select
 * sees it; epoll_wait and a blocking read wait for a signal a forked child sends;
 * changing the mask of an existing signalfd; bad arguments (EINVAL).
 * Exit status 0 when every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(const char *name, int ok)
{
    printf("%s: %s\n", name, ok ? "ok" : "FAILED");
    fflush(stdout);
    failures += !ok;
}

static int readable(int fd)
{
    struct pollfd p = { fd, POLLIN, 0 };
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* A child that sends `sig` to us after 100 ms. */
static pid_t send_later(int sig)
{
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        struct timespec t = { 0, 100000000 };
        nanosleep(&t, NULL);
        kill(parent, sig);
        _exit(0);
    }
    return pid;
}

int main(void)
{
    sigset_t mask;
    struct signalfd_siginfo info[2];
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    check("signalfd", fd >= 0);
    check("empty", read(fd, info, sizeof info) == -1 && errno == EAGAIN && !readable(fd));

    raise(SIGUSR1);
    check("readable after raise", readable(fd));
    ssize_t got = read(fd, info, sizeof info);
    check("read SIGUSR1", got == sizeof info[0] && info[0].ssi_signo == SIGUSR1
          && info[0].ssi_code == SI_TKILL && info[0].ssi_pid == (unsigned)getpid());
    check("consumed", !readable(fd) && read(fd, info, sizeof info) == -1 && errno == EAGAIN);

    union sigval value = { .sival_int = 42 };
    sigqueue(getpid(), SIGUSR2, value);
    got = read(fd, info, sizeof info);
    check("sigqueue value", got == sizeof info[0] && info[0].ssi_signo == SIGUSR2
          && info[0].ssi_code == SI_QUEUE && info[0].ssi_int == 42);

    raise(SIGUSR2);
    raise(SIGUSR1);
    fd_set set;
    FD_ZERO(&set);
    FD_SET(fd, &set);
    struct timeval zero = { 0, 0 };
    check("select", select(fd + 1, &set, NULL, NULL, &zero) == 1 && FD_ISSET(fd, &set));
    got = read(fd, info, sizeof info);
    check("two at once", got == 2 * sizeof info[0] && info[0].ssi_signo == SIGUSR1
          && info[1].ssi_signo == SIGUSR2);

    int ep = epoll_create1(0);
    struct epoll_event event = { .events = EPOLLIN, .data.u64 = 7 }, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &event);
    check("epoll empty", epoll_wait(ep, &out, 1, 0) == 0);
    pid_t child = send_later(SIGUSR1);
    check("epoll waits for the child's signal", epoll_wait(ep, &out, 1, 5000) == 1 && out.data.u64 == 7
          && read(fd, info, sizeof info) == sizeof info[0] && info[0].ssi_signo == SIGUSR1);
    waitpid(child, NULL, 0);

    int blocking = signalfd(-1, &mask, 0);
    child = send_later(SIGUSR2);
    check("blocking read waits", read(blocking, info, sizeof info) == sizeof info[0]
          && info[0].ssi_signo == SIGUSR2);
    waitpid(child, NULL, 0);

    sigset_t only2;
    sigemptyset(&only2);
    sigaddset(&only2, SIGUSR2);
    check("new mask", signalfd(fd, &only2, 0) == fd);
    raise(SIGUSR1);
    sigset_t pending;
    sigpending(&pending);
    check("other signals stay", !readable(fd) && sigismember(&pending, SIGUSR1));
    sigwaitinfo(&mask, NULL);

    check("short buffer", read(fd, info, 8) == -1 && errno == EINVAL);
    check("not a signalfd", signalfd(ep, &mask, 0) == -1 && errno == EINVAL);
    check("bad flags", signalfd(-1, &mask, 0x1234) == -1 && errno == EINVAL);
    return failures != 0;
}
