/* sockio.c - ioctls on pipes and sockets, and recvmmsg's timeout.
 *
 * Usage: sockio
 * 1. FIONREAD: the bytes a pipe, a stream socket and a datagram socket hold.
 * 2. FIONBIO: sets and clears O_NONBLOCK on a pipe and a socket (a read then fails with
 *    EAGAIN instead of blocking).
 * 3. FIOCLEX / FIONCLEX: set and clear FD_CLOEXEC.
 * 4. recvmmsg with a 1 s timeout and 3 datagrams queued: all 3, and the time left (written
 *    back to the timeout) below 1 s (on 64-bit ISAs: musl's 32-bit recvmmsg keeps it).
 * 5. recvmmsg with a zero timeout: the first datagram only (Linux checks the timeout after
 *    each datagram).
 * 6. recvmmsg with a 5 s timeout, 1 datagram queued and 2 more sent by a child 100 ms later:
 *    it waits for them and returns 3.
 * Exit status 0 when every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(const char *what, int ok)
{
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
    failures += !ok;
}

static int available(int fd)
{
    int count = -1;
    if (ioctl(fd, FIONREAD, &count) != 0)
        return -1;
    return count;
}

static void nonblocking(const char *what, int reader, int writer)
{
    int on = 1, off = 0;
    char byte;
    int set = ioctl(reader, FIONBIO, &on);
    int flagged = (fcntl(reader, F_GETFL) & O_NONBLOCK) != 0;
    errno = 0;
    long got = read(reader, &byte, 1);
    int error = errno;
    int cleared = ioctl(reader, FIONBIO, &off);
    int unflagged = (fcntl(reader, F_GETFL) & O_NONBLOCK) == 0;
    write(writer, "x", 1);
    long later = read(reader, &byte, 1);
    printf("%s FIONBIO: set %d, O_NONBLOCK %d, empty read %ld (%s), cleared %d, O_NONBLOCK %d, read %ld\n",
           what, set, flagged, got, error == EAGAIN ? "EAGAIN" : strerror(error), cleared, !unflagged, later);
    check(what, set == 0 && flagged && got == -1 && error == EAGAIN && cleared == 0 && unflagged && later == 1);
}

static int batch(int fd, int count, struct timespec *timeout, char buffers[][16])
{
    struct mmsghdr messages[4];
    struct iovec vectors[4];
    memset(messages, 0, sizeof messages);
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = buffers[i];
        vectors[i].iov_len = 15;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    return recvmmsg(fd, messages, count, 0, timeout);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    int pipes[2], stream[2], datagram[2];
    pipe(pipes);
    socketpair(AF_UNIX, SOCK_STREAM, 0, stream);
    socketpair(AF_UNIX, SOCK_DGRAM, 0, datagram);

    write(pipes[1], "hello", 5);
    write(stream[1], "sockets", 7);
    send(datagram[1], "one", 3, 0);
    send(datagram[1], "second", 6, 0);
    int in_pipe = available(pipes[0]), in_stream = available(stream[0]), in_datagram = available(datagram[0]);
    printf("FIONREAD: pipe %d, stream %d, datagram %d\n", in_pipe, in_stream, in_datagram);
    check("FIONREAD", in_pipe == 5 && in_stream == 7 && in_datagram == 3);
    char drain[16];
    read(pipes[0], drain, sizeof drain);
    read(stream[0], drain, sizeof drain);
    recv(datagram[0], drain, sizeof drain, 0);
    recv(datagram[0], drain, sizeof drain, 0);
    check("FIONREAD empty", available(pipes[0]) == 0 && available(stream[0]) == 0);

    nonblocking("pipe", pipes[0], pipes[1]);
    nonblocking("socket", stream[0], stream[1]);

    int set = ioctl(pipes[0], FIOCLEX);
    int flag = fcntl(pipes[0], F_GETFD);
    int clear = ioctl(pipes[0], FIONCLEX);
    int after = fcntl(pipes[0], F_GETFD);
    printf("FIOCLEX: %d, FD_CLOEXEC %d; FIONCLEX: %d, FD_CLOEXEC %d\n", set, flag & FD_CLOEXEC, clear,
           after & FD_CLOEXEC);
    check("FIOCLEX", set == 0 && (flag & FD_CLOEXEC) && clear == 0 && !(after & FD_CLOEXEC));

    char buffers[4][16] = {{0}};
    send(datagram[1], "a", 1, 0);
    send(datagram[1], "bb", 2, 0);
    send(datagram[1], "ccc", 3, 0);
    struct timespec second = {1, 0};
    int got = batch(datagram[0], 3, &second, buffers);
    int left = second.tv_sec == 0 && second.tv_nsec > 0;
    printf("recvmmsg 1 s: %d messages '%s' '%s' '%s', time left below 1 s: %s\n", got, buffers[0], buffers[1],
           buffers[2], left ? "yes" : "no");
    /* musl hands a 32-bit ISA's recvmmsg_time64 a copy of the timeout: the time left stays there */
    check("recvmmsg timeout", got == 3 && strcmp(buffers[2], "ccc") == 0 && (left || sizeof(long) == 4));

    memset(buffers, 0, sizeof buffers);
    send(datagram[1], "d", 1, 0);
    send(datagram[1], "ee", 2, 0);
    struct timespec zero = {0, 0};
    got = batch(datagram[0], 2, &zero, buffers);
    printf("recvmmsg zero timeout: %d message(s) '%s'\n", got, buffers[0]);
    check("recvmmsg zero timeout", got == 1 && strcmp(buffers[0], "d") == 0 && available(datagram[0]) == 2);

    recv(datagram[0], drain, sizeof drain, 0);
    memset(buffers, 0, sizeof buffers);
    send(datagram[1], "f", 1, 0);
    pid_t child = fork();
    if (child == 0) {
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
        send(datagram[1], "gg", 2, 0);
        send(datagram[1], "hhh", 3, 0);
        _exit(0);
    }
    struct timespec five = {5, 0};
    got = batch(datagram[0], 3, &five, buffers);
    waitpid(child, NULL, 0);
    printf("recvmmsg waiting: %d messages '%s' '%s' '%s'\n", got, buffers[0], buffers[1], buffers[2]);
    check("recvmmsg waiting", got == 3 && strcmp(buffers[2], "hhh") == 0 && five.tv_sec >= 4);

    printf("%s\n", failures ? "FAILED" : "all ok");
    return failures != 0;
}
