/* POSIX per-process timers: a periodic CLOCK_MONOTONIC timer with SIGEV_SIGNAL (SIGUSR1 and a
 * sigev_value) expires three times; an absolute CLOCK_REALTIME one-shot wakes sigsuspend; a
 * timer created with no sigevent sends SIGALRM; a SIGEV_NONE timer only counts down; a
 * SIGEV_THREAD_ID timer runs its handler in the thread it names; bad timer ids fail with
 * EINVAL. The output holds counts and checks, never times, so it is the same on every run. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000L

static volatile sig_atomic_t usr1_good, usr1_bad, usr2_good, usr2_bad, alrm_good, alrm_bad;
static volatile long handler_tid;

static void on_usr1(int signo, siginfo_t *info, void *context)
{
    (void)signo; (void)context;
    if (info->si_code == SI_TIMER && info->si_value.sival_int == 42)
        usr1_good++;
    else
        usr1_bad++;
}

static void on_usr2(int signo, siginfo_t *info, void *context)
{
    (void)signo; (void)context;
    handler_tid = syscall(SYS_gettid);
    if (info->si_code == SI_TIMER && info->si_value.sival_ptr == (void *)&usr2_good)
        usr2_good++;
    else
        usr2_bad++;
}

static void on_alrm(int signo, siginfo_t *info, void *context)
{
    (void)signo; (void)context;
    if (info->si_code == SI_TIMER)
        alrm_good++;
    else
        alrm_bad++;
}

static void install(int signo, void (*handler)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
}

static void periodic(void)
{
    /* SIGUSR1 only comes in sigsuspend: one expiry per wait, however late the loop runs (it
     * stays blocked afterwards, so an expiry left pending at timer_delete never runs) */
    sigset_t blocked, during;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigprocmask(SIG_BLOCK, &blocked, &during);
    sigdelset(&during, SIGUSR1);
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGUSR1;
    event.sigev_value.sival_int = 42;
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &event, &timer) != 0) {
        printf("periodic: timer_create failed: %s\n", strerror(errno));
        return;
    }
    struct itimerspec spec = {{0, 30 * MS}, {0, 30 * MS}}, old;
    int set = timer_settime(timer, 0, &spec, &old);
    printf("periodic: settime %d, old value was disarmed: %s\n", set,
           old.it_value.tv_sec == 0 && old.it_value.tv_nsec == 0 ? "yes" : "no");
    while (usr1_good + usr1_bad < 3)
        sigsuspend(&during);
    struct itimerspec now;
    int got = timer_gettime(timer, &now);
    printf("periodic: %d good expirations, %d bad; gettime %d, interval %ld ms, armed %s\n",
           usr1_good, usr1_bad, got, (long)(now.it_interval.tv_sec * 1000 + now.it_interval.tv_nsec / MS),
           (now.it_value.tv_sec > 0 || now.it_value.tv_nsec > 0) && now.it_value.tv_sec == 0 ? "yes" : "no");
    struct itimerspec off = {{0, 0}, {0, 0}};
    set = timer_settime(timer, 0, &off, &old);
    printf("periodic: disarm %d, old interval %ld ms\n", set,
           (long)(old.it_interval.tv_sec * 1000 + old.it_interval.tv_nsec / MS));
    printf("periodic: delete %d\n", timer_delete(timer));
    errno = 0;
    printf("periodic: gettime after delete %d %s\n", timer_gettime(timer, &now), strerror(errno));
}

static void absolute(void)
{
    sigset_t blocked, during;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR2);
    sigprocmask(SIG_BLOCK, &blocked, &during);
    sigdelset(&during, SIGUSR2);
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGUSR2;
    event.sigev_value.sival_ptr = (void *)&usr2_good;
    timer_t timer;
    timer_create(CLOCK_REALTIME, &event, &timer);
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start);
    struct itimerspec spec = {{0, 0}, {start.tv_sec, start.tv_nsec + 50 * MS}};
    if (spec.it_value.tv_nsec >= 1000 * MS) {
        spec.it_value.tv_sec++;
        spec.it_value.tv_nsec -= 1000 * MS;
    }
    int set = timer_settime(timer, TIMER_ABSTIME, &spec, NULL);
    int suspended = sigsuspend(&during);
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    long waited = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / MS;
    struct itimerspec now;
    timer_gettime(timer, &now);
    printf("absolute: settime %d, sigsuspend %d (%s), %d good, %d bad, not early %s, now disarmed %s\n",
           set, suspended, errno == EINTR ? "EINTR" : "?", usr2_good, usr2_bad, waited >= 45 ? "yes" : "no",
           now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0 ? "yes" : "no");
    timer_delete(timer);
}

static void null_event(void)
{
    timer_t timer;
    int created = timer_create(CLOCK_MONOTONIC, NULL, &timer);
    struct itimerspec spec = {{0, 0}, {0, 20 * MS}};
    timer_settime(timer, 0, &spec, NULL);
    while (alrm_good + alrm_bad < 1)
        pause();
    printf("null sigevent: create %d, SIGALRM %d good, %d bad, overrun %d\n", created, alrm_good, alrm_bad,
           timer_getoverrun(timer));
    timer_delete(timer);
}

static void notify_none(void)
{
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_NONE;
    timer_t timer;
    timer_create(CLOCK_BOOTTIME, &event, &timer);
    struct itimerspec spec = {{0, 0}, {5, 0}}, now;
    timer_settime(timer, 0, &spec, NULL);
    timer_gettime(timer, &now);
    printf("SIGEV_NONE: counting down %s\n", now.it_value.tv_sec == 4 || now.it_value.tv_sec == 5 ? "yes" : "no");
    timer_delete(timer);
}

static volatile long worker_tid;

static void *worker(void *unused)
{
    (void)unused;
    worker_tid = syscall(SYS_gettid);
    while (usr2_good + usr2_bad < 2)
        sched_yield();
    return NULL;
}

static void thread_directed(void)
{
    /* Both threads take SIGUSR2: a process-directed one would run in this (the main) thread */
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigprocmask(SIG_UNBLOCK, &usr2, NULL);
    pthread_t thread;
    pthread_create(&thread, NULL, worker, NULL);
    while (!worker_tid)
        sched_yield();
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = SIGUSR2;
    event.sigev_value.sival_ptr = (void *)&usr2_good;
    event.sigev_notify_thread_id = worker_tid;
    timer_t timer;
    int created = timer_create(CLOCK_MONOTONIC, &event, &timer);
    struct itimerspec spec = {{0, 0}, {0, 20 * MS}};
    timer_settime(timer, 0, &spec, NULL);
    pthread_join(thread, NULL);
    printf("SIGEV_THREAD_ID: create %d, %d good, ran in the target thread %s\n", created, usr2_good,
           handler_tid == worker_tid ? "yes" : "no");
    timer_delete(timer);
}

static void bad_ids(void)
{
    timer_t bogus = (timer_t)(intptr_t)123456;
    struct itimerspec spec = {{0, 0}, {1, 0}}, now;
    errno = 0;
    int r1 = timer_settime(bogus, 0, &spec, NULL);
    int e1 = errno;
    errno = 0;
    int r2 = timer_gettime(bogus, &now);
    int e2 = errno;
    errno = 0;
    int r3 = timer_delete(bogus);
    int e3 = errno;
    errno = 0;
    int r4 = timer_getoverrun(bogus);
    int e4 = errno;
    printf("bad id: settime %d %s, gettime %d %s, delete %d %s, getoverrun %d %s\n", r1, strerror(e1),
           r2, strerror(e2), r3, strerror(e3), r4, strerror(e4));
    timer_t timer;
    errno = 0;
    int r5 = timer_create(99, NULL, &timer);
    printf("bad clock: create %d %s\n", r5, strerror(errno));
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    install(SIGUSR1, on_usr1);
    install(SIGUSR2, on_usr2);
    install(SIGALRM, on_alrm);
    periodic();
    absolute();
    null_event();
    notify_none();
    thread_directed();
    bad_ids();
    return 0;
}
