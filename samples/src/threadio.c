/* threadio.c - threads that block in I/O and sleeps while other threads go on.
 *
 * Usage: threadio
 * 1. pipe: a reader blocks in read() on an empty pipe; a writer sleeps, then writes.
 * 2. sleep: a thread sleeps in nanosleep() while main computes; the sleeper, once
 *    awake, checks that main's result was ready before it woke.
 * 3. poll: a thread polls a pipe (5 s timeout) that another thread writes after a
 *    sleep; then a poll with a 100 ms timeout on an empty pipe returns 0.
 * 4. select: the same wake-up through select() with a timeout.
 * 5. join: a thread blocks in read() while main joins a computing thread, then
 *    main writes what the reader reads.
 * 6. epoll: epoll_wait() with a timeout, woken by another thread's write.
 * 7. big write: a thread writes 256 KiB into a pipe in one write(); main drains it.
 * 8. waitpid: a thread waits for a child process that sleeps, then exits 7, while
 *    main computes.
 * 9. recv: a thread blocks in recv() on a socket pair; a writer sleeps, then sends.
 * 10. accept: a thread blocks in accept() on a listening AF_UNIX socket while main
 *    computes, then main connects and sends what the accepted socket receives.
 * 11. big send: a thread sends 256 KiB over a socket pair in one send() (more than
 *    the socket buffers hold); main drains it with recv().
 * Only main prints, after the joins, so the output is the same on any scheduler.
 * Exit status 0 when every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(const char *what, int ok)
{
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
    failures += !ok;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

struct channel {
    int fds[2];
    char got[32];
    long count;
    long ready;
    long revents;
};

static void *read_pipe(void *arg)
{
    struct channel *c = arg;
    c->count = read(c->fds[0], c->got, sizeof c->got - 1);
    return NULL;
}

static void *write_later(void *arg)
{
    struct channel *c = arg;
    sleep_ms(50);
    write(c->fds[1], "ping", 4);
    return NULL;
}

static volatile long computed;

static long compute(long n)
{
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += i % 7;
    return sum;
}

static void *sleeper(void *arg)
{
    long *saw = arg;
    sleep_ms(300);
    *saw = computed;
    return NULL;
}

static void *poll_pipe(void *arg)
{
    struct channel *c = arg;
    struct pollfd p = {c->fds[0], POLLIN, 0};
    c->ready = poll(&p, 1, 5000);
    c->revents = p.revents;
    if (c->ready == 1)
        c->count = read(c->fds[0], c->got, sizeof c->got - 1);
    return NULL;
}

static void *select_pipe(void *arg)
{
    struct channel *c = arg;
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(c->fds[0], &readable);
    struct timeval timeout = {5, 0};
    c->ready = select(c->fds[0] + 1, &readable, NULL, NULL, &timeout);
    c->revents = FD_ISSET(c->fds[0], &readable);
    if (c->ready == 1)
        c->count = read(c->fds[0], c->got, sizeof c->got - 1);
    return NULL;
}

static void *compute_thread(void *arg)
{
    *(long *)arg = compute(200000);
    return NULL;
}

static void *epoll_pipe(void *arg)
{
    struct channel *c = arg;
    int ep = epoll_create1(0);
    struct epoll_event want = {.events = EPOLLIN, .data.u64 = 77}, got = {0};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fds[0], &want);
    c->ready = epoll_wait(ep, &got, 1, 5000);
    c->revents = got.data.u64 == 77 && (got.events & EPOLLIN);
    if (c->ready == 1)
        c->count = read(c->fds[0], c->got, sizeof c->got - 1);
    close(ep);
    return NULL;
}

#define BIG (256 * 1024)
static char big[BIG];

static void *write_big(void *arg)
{
    int *fds = arg;
    for (int i = 0; i < BIG; i++)
        big[i] = (char)(i * 7);
    long written = write(fds[1], big, BIG);
    close(fds[1]);
    return (void *)written;
}

static void *wait_child(void *arg)
{
    long *status = arg;
    pid_t child = fork();
    if (child == 0) {
        sleep_ms(100);
        _exit(7);
    }
    int raw = 0;
    pid_t waited = waitpid(child, &raw, 0);
    *status = waited == child && WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    *status += 100 * (computed != 0);  /* main computed while this thread waited */
    return NULL;
}

static void *recv_socket(void *arg)
{
    struct channel *c = arg;
    c->ready = 1;
    c->revents = 1;
    c->count = recv(c->fds[0], c->got, sizeof c->got - 1, 0);
    return NULL;
}

struct listener {
    int fd;
    char got[32];
    long count;
    long computed_meanwhile;
};

static void *accept_one(void *arg)
{
    struct listener *l = arg;
    int connection = accept(l->fd, NULL, NULL);
    l->computed_meanwhile = computed != 0;  /* main computed while this thread waited */
    l->count = connection < 0 ? -1 : recv(connection, l->got, sizeof l->got - 1, 0);
    if (connection >= 0)
        close(connection);
    return NULL;
}

static void *send_big(void *arg)
{
    int *fds = arg;
    for (int i = 0; i < BIG; i++)
        big[i] = (char)(i * 7);
    long sent = send(fds[1], big, BIG, 0);
    shutdown(fds[1], SHUT_WR);
    return (void *)sent;
}

static long drain(int fd, int through_recv, long *mismatches)
{
    long total = 0, n;
    char chunk[1000];
    *mismatches = 0;
    while ((n = through_recv ? recv(fd, chunk, sizeof chunk, 0) : read(fd, chunk, sizeof chunk)) > 0) {
        for (long i = 0; i < n; i++)
            *mismatches += chunk[i] != (char)((total + i) * 7);
        total += n;
    }
    return total;
}

static void wake_through(const char *what, void *(*waiter)(void *))
{
    struct channel c = {0};
    if (waiter == recv_socket)
        socketpair(AF_UNIX, SOCK_STREAM, 0, c.fds);
    else
        pipe(c.fds);
    pthread_t waiting, writer;
    pthread_create(&waiting, NULL, waiter, &c);
    pthread_create(&writer, NULL, write_later, &c);
    pthread_join(writer, NULL);
    pthread_join(waiting, NULL);
    printf("%s: ready %ld, flagged %d, read %ld bytes '%s'\n", what, c.ready, c.revents != 0,
           c.count, c.got);
    check(what, c.ready == 1 && c.revents && c.count == 4 && strcmp(c.got, "ping") == 0);
    close(c.fds[0]);
    close(c.fds[1]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* 1. a blocked reader, a writer that sleeps first */
    struct channel c = {0};
    pipe(c.fds);
    pthread_t reader, writer;
    pthread_create(&reader, NULL, read_pipe, &c);
    pthread_create(&writer, NULL, write_later, &c);
    pthread_join(writer, NULL);
    pthread_join(reader, NULL);
    printf("pipe: read %ld bytes '%s'\n", c.count, c.got);
    check("pipe", c.count == 4 && strcmp(c.got, "ping") == 0);
    close(c.fds[0]);
    close(c.fds[1]);

    /* 2. one thread sleeps, main computes meanwhile */
    long saw = -1;
    pthread_t sleeping;
    pthread_create(&sleeping, NULL, sleeper, &saw);
    long sum = compute(200000);
    computed = sum;
    pthread_join(sleeping, NULL);
    printf("sleep: main computed %ld while the other thread slept; sleeper saw %ld\n", sum, saw);
    check("sleep", saw == sum);

    /* 3. poll woken by another thread's write, then a poll that times out */
    wake_through("poll", poll_pipe);
    struct channel empty = {0};
    pipe(empty.fds);
    long other = 0;
    pthread_t computing;
    pthread_create(&computing, NULL, compute_thread, &other);
    struct pollfd p = {empty.fds[0], POLLIN, 0};
    int timed_out = poll(&p, 1, 100);
    pthread_join(computing, NULL);
    printf("poll timeout: %d, revents %d; the other thread computed %ld\n", timed_out, p.revents, other);
    check("poll timeout", timed_out == 0 && p.revents == 0 && other == sum);
    close(empty.fds[0]);
    close(empty.fds[1]);

    /* 4. select woken by another thread's write */
    wake_through("select", select_pipe);

    /* 5. a blocked reader while main joins another thread */
    struct channel d = {0};
    pipe(d.fds);
    long joined = 0;
    pthread_t blocked, worker;
    pthread_create(&blocked, NULL, read_pipe, &d);
    pthread_create(&worker, NULL, compute_thread, &joined);
    pthread_join(worker, NULL);
    write(d.fds[1], "done", 4);
    pthread_join(blocked, NULL);
    printf("join: worker computed %ld; reader read %ld bytes '%s'\n", joined, d.count, d.got);
    check("join", joined == sum && d.count == 4 && strcmp(d.got, "done") == 0);

    /* 6. epoll_wait woken by another thread's write */
    wake_through("epoll", epoll_pipe);

    /* 7. one large write into a pipe that main drains */
    int fds[2];
    pipe(fds);
    pthread_t big_writer;
    pthread_create(&big_writer, NULL, write_big, fds);
    long mismatches;
    long total = drain(fds[0], 0, &mismatches);
    void *written;
    pthread_join(big_writer, &written);
    close(fds[0]);
    printf("big write: wrote %ld, read %ld, %ld bytes differ\n", (long)written, total, mismatches);
    check("big write", (long)written == BIG && total == BIG && mismatches == 0);

    /* 8. waitpid in one thread while main computes */
    long status = 0;
    pthread_t waiter;
    computed = 0;
    pthread_create(&waiter, NULL, wait_child, &status);
    computed = compute(200000);
    pthread_join(waiter, NULL);
    printf("waitpid: child exit status %ld, main computed meanwhile: %s\n", status % 100,
           status >= 100 ? "yes" : "no");
    check("waitpid", status == 107);

    /* 9. recv woken by another thread's send */
    wake_through("recv", recv_socket);

    /* 10. accept in one thread while main computes, then connects */
    struct listener l = {0};
    struct sockaddr_un where = {.sun_family = AF_UNIX};
    snprintf(where.sun_path, sizeof where.sun_path, "/tmp/bdemu-threadio-%d.sock", (int)getpid());
    unlink(where.sun_path);
    l.fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int bound = bind(l.fd, (struct sockaddr *)&where, sizeof where) == 0 && listen(l.fd, 1) == 0;
    pthread_t acceptor;
    computed = 0;
    pthread_create(&acceptor, NULL, accept_one, &l);
    computed = compute(200000);
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    int connected = connect(client, (struct sockaddr *)&where, sizeof where) == 0;
    send(client, "hello", 5, 0);
    pthread_join(acceptor, NULL);
    close(client);
    close(l.fd);
    unlink(where.sun_path);
    printf("accept: bound %d, connected %d, received %ld bytes '%s', main computed meanwhile: %s\n", bound,
           connected, l.count, l.got, l.computed_meanwhile ? "yes" : "no");
    check("accept", bound && connected && l.count == 5 && strcmp(l.got, "hello") == 0 && l.computed_meanwhile);

    /* 11. one large send over a socket pair that main drains */
    int pair[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
    pthread_t big_sender;
    pthread_create(&big_sender, NULL, send_big, pair);
    long received = drain(pair[0], 1, &mismatches);
    void *sent;
    pthread_join(big_sender, &sent);
    close(pair[0]);
    close(pair[1]);
    printf("big send: sent %ld, received %ld, %ld bytes differ\n", (long)sent, received, mismatches);
    check("big send", (long)sent == BIG && received == BIG && mismatches == 0);

    printf("%s\n", failures ? "FAILED" : "all ok");
    return failures != 0;
}
