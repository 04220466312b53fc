/* threads.c - POSIX threads: create, join, a mutex, a condition variable, thread ids.
 *
 * Usage: threads [N]   (N workers, default 4, at most 16)
 * Each worker adds its share to a mutex-protected total, then the workers
 * hand a token round a ring through one condition variable; then the main
 * thread spins, without a syscall, on a flag one more thread sets (only
 * preemption lets that thread run on a single CPU). Prints results
 * only (never ids). Exit status 0 when every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_WORKERS 16
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static long total;
static int turn, rounds = 3, workers;
static long tids[MAX_WORKERS];
static char order[MAX_WORKERS * 3 + 1];
static volatile int flag;

static void *set_flag(void *arg)
{
    (void)arg;
    sched_yield(); /* let the main thread start spinning first */
    flag = 1;
    return NULL;
}

static void *work(void *arg)
{
    int me = (int)(long)arg;
    long sum = 0;
    for (long i = 0; i < 100000; i++)
        sum += i % (me + 2);
    tids[me] = syscall(SYS_gettid);
    pthread_mutex_lock(&lock);
    total += sum;
    pthread_mutex_unlock(&lock);
    for (int r = 0; r < rounds; r++) {
        pthread_mutex_lock(&lock);
        while (turn % workers != me)
            pthread_cond_wait(&turn_changed, &lock);
        order[turn++] = (char)('a' + me);
        pthread_cond_broadcast(&turn_changed);
        pthread_mutex_unlock(&lock);
    }
    return (void *)(long)(me * 10);
}

int main(int argc, char **argv)
{
    workers = argc > 1 ? atoi(argv[1]) : 4;
    if (workers < 1 || workers > MAX_WORKERS)
        return 2;
    pthread_t threads[MAX_WORKERS];
    for (int i = 0; i < workers; i++)
        if (pthread_create(&threads[i], NULL, work, (void *)(long)i) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    long returned = 0;
    for (int i = 0; i < workers; i++) {
        void *value;
        pthread_join(threads[i], &value);
        returned += (long)value;
    }
    long expected = 0;
    for (int me = 0; me < workers; me++)
        for (long i = 0; i < 100000; i++)
            expected += i % (me + 2);
    int distinct = 1;
    for (int i = 0; i < workers; i++) {
        distinct &= tids[i] != getpid() && tids[i] > 0;
        for (int j = 0; j < i; j++)
            distinct &= tids[i] != tids[j];
    }
    pthread_t setter;
    long spins = 0;
    pthread_create(&setter, NULL, set_flag, NULL);
    while (!flag)
        spins++;
    pthread_join(setter, NULL);
    printf("workers: %d\n", workers);
    printf("spin wait: %s\n", flag ? "ok" : "FAILED");
    printf("total: %s\n", total == expected ? "ok" : "FAILED");
    printf("joined values: %ld\n", returned);
    printf("ring order: %s\n", order);
    printf("thread ids distinct: %s\n", distinct ? "yes" : "no");
    return !(total == expected && distinct);
}
