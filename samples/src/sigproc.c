/* Signals between processes and threads: a forked child signals its parent, whose blocking read
 * fails with EINTR (or, under SA_RESTART, goes on and reads what the child wrote afterwards);
 * a signal sent to one thread runs there (and ends a blocking read there the same way); a
 * process-directed signal that one thread blocks runs
 * in another thread. With "wait" it waits for a SIGUSR1 from outside (tests/test_signals.py
 * sends it, or SIGTERM, with kill), with "spin" it waits in a loop with no syscall, with "blocked" it
 * holds SIGUSR1 blocked until it shows as pending, with "default" it waits with no handler. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t handled, handled_signo;
static volatile long handled_tid;

static void on_signal(int signo)
{
    handled++;
    handled_signo = signo;
    handled_tid = syscall(SYS_gettid);
}

static void install(int signo, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = flags;
    sigaction(signo, &sa, NULL);
}

/* The child signals the parent while the parent blocks in read(); with `late_data` it then
 * writes to the pipe, which a restarted read gets. */
static void parent_reads_while_child_signals(int signo, int flags, int late_data)
{
    int fds[2];
    pipe(fds);
    install(signo, flags);
    handled = 0;
    pid_t child = fork();
    if (child == 0) {
        usleep(300000);
        kill(getppid(), signo);
        if (late_data) {
            usleep(300000);
            write(fds[1], "late", 4);
        }
        _exit(0);
    }
    char buffer[8] = {0};
    errno = 0;
    ssize_t got = read(fds[0], buffer, 4);
    int error = errno;
    int status;
    waitpid(child, &status, 0);
    printf("%s: read=%d eintr=%d data=%s handled=%d signo_ok=%d child_exit=%d\n",
           late_data ? "restart" : "eintr", (int)got, error == EINTR, got > 0 ? buffer : "-",
           (int)handled, handled_signo == signo, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    close(fds[0]);
    close(fds[1]);
}

static volatile long worker_tid;
static volatile int worker_ready, worker_stop;

static void *worker(void *unblock)
{
    if (unblock) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
    worker_tid = syscall(SYS_gettid);
    worker_ready = 1;
    while (!worker_stop)
        sched_yield();
    return NULL;
}

static void thread_directed(void)
{
    pthread_t thread;
    install(SIGUSR2, 0);
    handled = 0;
    worker_ready = worker_stop = 0;
    pthread_create(&thread, NULL, worker, NULL);
    while (!worker_ready)
        sched_yield();
    pthread_kill(thread, SIGUSR2);
    while (!handled)
        sched_yield();
    worker_stop = 1;
    pthread_join(thread, NULL);
    printf("pthread_kill: handled=%d in_target=%d\n", (int)handled, handled_tid == worker_tid);
}

struct blocked_read {
    int fds[2];
    long got;
    int error;
    char data[8];
};

static void *read_in_thread(void *arg)
{
    struct blocked_read *r = arg;
    worker_tid = syscall(SYS_gettid);
    worker_ready = 1;
    errno = 0;
    r->got = read(r->fds[0], r->data, 4);
    r->error = errno;
    return NULL;
}

/* A thread blocked in read() gets a pthread_kill: the read fails with EINTR, or under
 * SA_RESTART goes on after the handler and reads what main writes afterwards. */
static void thread_read_interrupted(int flags)
{
    struct blocked_read r;
    memset(&r, 0, sizeof r);
    pipe(r.fds);
    install(SIGUSR2, flags);
    handled = 0;
    worker_ready = 0;
    pthread_t thread;
    pthread_create(&thread, NULL, read_in_thread, &r);
    while (!worker_ready)
        sched_yield();
    usleep(200000); /* the thread waits in read() by now */
    pthread_kill(thread, SIGUSR2);
    usleep(200000);
    write(r.fds[1], "late", 4);
    pthread_join(thread, NULL);
    printf("thread read %s: read=%d eintr=%d data=%s handled=%d in_thread=%d\n", flags ? "restart" : "eintr",
           (int)r.got, r.error == EINTR, r.got > 0 ? r.data : "-", (int)handled, handled_tid == worker_tid);
    close(r.fds[0]);
    close(r.fds[1]);
}

static void blocked_here_delivered_there(void)
{
    sigset_t set, pending;
    pthread_t thread;
    install(SIGUSR1, 0);
    handled = 0;
    worker_ready = worker_stop = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_create(&thread, NULL, worker, (void *)1); /* inherits the mask, then unblocks */
    while (!worker_ready)
        sched_yield();
    kill(getpid(), SIGUSR1);
    while (!handled)
        sched_yield();
    sigpending(&pending);
    worker_stop = 1;
    pthread_join(thread, NULL);
    long main_tid = syscall(SYS_gettid);
    printf("process-directed: handled=%d in_worker=%d not_main=%d pending_in_main=%d\n", (int)handled,
           handled_tid == worker_tid, handled_tid != main_tid, sigismember(&pending, SIGUSR1));
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked in main: handled=%d\n", (int)handled);
}

static int wait_from_outside(const char *how)
{
    sigset_t usr1, pending;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    if (strcmp(how, "default") != 0) {
        install(SIGUSR1, 0);
        install(SIGTERM, 0);
    }
    if (strcmp(how, "blocked") == 0)
        sigprocmask(SIG_BLOCK, &usr1, NULL);
    printf("ready\n");
    if (strcmp(how, "spin") == 0) {
        while (!handled)
            ;
    } else if (strcmp(how, "blocked") == 0) {
        do {
            usleep(10000);
            sigpending(&pending);
        } while (!sigismember(&pending, SIGUSR1));
        printf("pending while blocked: handled=%d\n", (int)handled);
        sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    } else {
        while (!handled)
            pause();
    }
    printf("handled: usr1=%d term=%d\n", handled_signo == SIGUSR1, handled_signo == SIGTERM);
    return 3;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1)
        return wait_from_outside(argv[1]);
    parent_reads_while_child_signals(SIGUSR1, 0, 0);
    parent_reads_while_child_signals(SIGUSR2, SA_RESTART, 1);
    thread_directed();
    thread_read_interrupted(0);
    thread_read_interrupted(SA_RESTART);
    blocked_here_delivered_there();
    /* A child killed by a signal: the parent's wait status names it with the guest's number. */
    pid_t child = fork();
    if (child == 0) {
        signal(SIGUSR2, SIG_DFL);
        raise(SIGUSR2);
        _exit(9);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child killed: by_usr2=%d\n", WIFSIGNALED(status) && WTERMSIG(status) == SIGUSR2);

    /* sigwaitinfo takes a blocked SIGUSR1 a child sends, without running the handler;
     * sigtimedwait with nothing pending times out. */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    handled = 0;
    child = fork();
    if (child == 0) {
        usleep(200000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int got = sigwaitinfo(&usr1, &info);
    waitpid(child, &status, 0);
    struct timespec brief = {0, 50000000};
    errno = 0;
    int none = sigtimedwait(&usr1, NULL, &brief);
    printf("sigwaitinfo: usr1=%d si_signo=%d si_code_user=%d handled=%d; sigtimedwait: rc=%d eagain=%d\n",
           got == SIGUSR1, info.si_signo == SIGUSR1, info.si_code == SI_USER, (int)handled, none,
           errno == EAGAIN);
    return 0;
}
