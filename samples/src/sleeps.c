/* sleeps.c - sleeps cut short by a signal handler.
 *
 * Usage: sleeps
 * Linux ends nanosleep() and clock_nanosleep() with EINTR when a handler runs, even one
 * installed with SA_RESTART (signal(7)), and a relative sleep writes the time left to `rem`;
 * an absolute one (TIMER_ABSTIME) leaves `rem` alone.
 * 1. nanosleep(2 s), SIGALRM after 100 ms (no SA_RESTART): EINTR, rem between 1 and 2 s.
 * 2. the same under SA_RESTART: still EINTR.
 * 3. nanosleep with rem NULL: EINTR.
 * 4. clock_nanosleep(CLOCK_MONOTONIC, relative 2 s): returns EINTR, rem between 1 and 2 s.
 * 5. clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME): returns EINTR, rem untouched.
 * 6. a second thread's nanosleep(2 s), pthread_kill(SIGUSR1) from main: EINTR, rem set.
 * 7. a second thread's nanosleep(2 s) while main (SIGALRM blocked) waits in pthread_join:
 *    the process-directed SIGALRM ends it: EINTR, rem set.
 * Exit status 0 when every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int failures;
static volatile sig_atomic_t handled;

static void check(const char *what, int ok)
{
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
    failures += !ok;
}

static void on_signal(int signal)
{
    (void)signal;
    handled++;
}

static void handle(int signal, int flags)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    action.sa_flags = flags;
    sigaction(signal, &action, NULL);
}

static void alarm_in_ms(long ms)
{
    struct itimerval timer = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    setitimer(ITIMER_REAL, &timer, NULL);
}

static double seconds(const struct timespec *t)
{
    return t->tv_sec + t->tv_nsec / 1e9;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return seconds(&t);
}

/* The sleep ended early, by a handler, and left between 1 and 2 s of its 2 s. */
static int cut_short(double started, int handled_before, const struct timespec *rem)
{
    double slept = now() - started;
    return slept < 1.0 && handled > handled_before && seconds(rem) > 1.0 && seconds(rem) < 2.0;
}

static const struct timespec two_seconds = {2, 0};

static void sleep_interrupted(const char *what, int flags)
{
    handle(SIGALRM, flags);
    struct timespec rem = {-1, -1};
    int before = handled;
    double started = now();
    alarm_in_ms(100);
    int result = nanosleep(&two_seconds, &rem);
    int error = errno;
    printf("%s: result %d, errno %s\n", what, result, error == EINTR ? "EINTR" : strerror(error));
    check(what, result == -1 && error == EINTR && cut_short(started, before, &rem));
}

struct sleeper {
    int result;
    int error;
    struct timespec rem;
    double slept;
};

static void *sleep_two_seconds(void *arg)
{
    struct sleeper *s = arg;
    double started = now();
    s->result = nanosleep(&two_seconds, &s->rem);
    s->error = errno;
    s->slept = now() - started;
    return NULL;
}

static void thread_interrupted(const char *what, struct sleeper *s)
{
    printf("%s: result %d, errno %s\n", what, s->result, s->error == EINTR ? "EINTR" : strerror(s->error));
    check(what, s->result == -1 && s->error == EINTR && s->slept < 1.0 && seconds(&s->rem) > 1.0
          && seconds(&s->rem) < 2.0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    sleep_interrupted("nanosleep", 0);
    sleep_interrupted("nanosleep under SA_RESTART", SA_RESTART);

    handle(SIGALRM, 0);
    int before = handled;
    double started = now();
    alarm_in_ms(100);
    int result = nanosleep(&two_seconds, NULL);
    int error = errno;
    check("nanosleep without rem", result == -1 && error == EINTR && now() - started < 1.0
          && handled > before);

    struct timespec rem = {-1, -1};
    before = handled;
    started = now();
    alarm_in_ms(100);
    result = clock_nanosleep(CLOCK_MONOTONIC, 0, &two_seconds, &rem);
    printf("clock_nanosleep: returned %s\n", result == EINTR ? "EINTR" : strerror(result));
    check("clock_nanosleep", result == EINTR && cut_short(started, before, &rem));

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 2;
    rem.tv_sec = 12345;
    rem.tv_nsec = 678;
    before = handled;
    started = now();
    alarm_in_ms(100);
    result = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, &rem);
    printf("clock_nanosleep absolute: returned %s\n", result == EINTR ? "EINTR" : strerror(result));
    check("clock_nanosleep absolute", result == EINTR && now() - started < 1.0 && handled > before
          && rem.tv_sec == 12345 && rem.tv_nsec == 678);

    handle(SIGUSR1, 0);
    struct sleeper killed = {0};
    pthread_t thread;
    pthread_create(&thread, NULL, sleep_two_seconds, &killed);
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    pthread_kill(thread, SIGUSR1);
    pthread_join(thread, NULL);
    thread_interrupted("thread nanosleep, pthread_kill", &killed);

    struct sleeper alarmed = {0};
    sigset_t alarm;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    pthread_create(&thread, NULL, sleep_two_seconds, &alarmed);
    pthread_sigmask(SIG_BLOCK, &alarm, NULL);
    alarm_in_ms(100);
    pthread_join(thread, NULL);
    thread_interrupted("thread nanosleep, process SIGALRM", &alarmed);

    printf("%s\n", failures ? "FAILED" : "all ok");
    return failures != 0;
}
