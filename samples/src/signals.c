/* Signal delivery to guest handlers: raise + handler, SA_SIGINFO fields, a blocked signal
 * delivered when unblocked, SA_RESETHAND, SA_NODEFER-free masking inside a handler. */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t count, last_signo, last_code, nested_blocked;

static void plain(int signo)
{
    count++;
    last_signo = signo;
}

static void with_info(int signo, siginfo_t *info, void *context)
{
    (void)context;
    count++;
    last_signo = info->si_signo;
    last_code = info->si_code;
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    nested_blocked = sigismember(&now, signo);
}

static sigjmp_buf recover;
static volatile void *fault_address;

static void on_segv(int signo, siginfo_t *info, void *context)
{
    (void)context;
    fault_address = info->si_addr;
    siglongjmp(recover, signo);
}

static char *read_only_page;
static volatile int segv_returns;

/* Makes the faulting store possible and returns: the store runs again and succeeds. */
static void on_segv_fix(int signo)
{
    (void)signo;
    segv_returns++;
    mprotect(read_only_page, 4096, PROT_READ | PROT_WRITE);
}

/* Fixes nothing: on Linux the store faults again forever. */
static void on_segv_return(int signo)
{
    (void)signo;
    if (segv_returns++ == 0)
        printf("segv handler returned\n");
}

static char alt_stack[65536];
static volatile int on_alt_stack;

static void on_altstack_signal(int signo)
{
    char here;
    (void)signo;
    on_alt_stack = &here >= alt_stack && &here < alt_stack + sizeof alt_stack;
}

static void on_alarm(int signo)
{
    count++;
    last_signo = signo;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    if (argc > 1 && strcmp(argv[1], "segv-loop") == 0) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv_return;
        sigaction(SIGSEGV, &sa, NULL);
        *(volatile int *)16 = 1;
        printf("not reached\n");
        return 0;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = plain;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("raise: count=%d signo_is_usr1=%d\n", (int)count, last_signo == SIGUSR1);

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = with_info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    kill(getpid(), SIGUSR2);
    printf("siginfo: count=%d signo_is_usr2=%d code_is_user=%d blocked_inside=%d\n", (int)count,
           last_signo == SIGUSR2, last_code == SI_USER, (int)nested_blocked);

    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR1);
    printf("blocked: count=%d\n", (int)count);
    sigset_t pending;
    sigpending(&pending);
    printf("pending: usr1=%d\n", sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: count=%d\n", (int)count);
    sigprocmask(SIG_BLOCK, NULL, &old);
    printf("mask restored: usr1_blocked=%d\n", sigismember(&old, SIGUSR1));

    /* sigsuspend: SIGUSR1 blocked and pending, delivered while suspended; the mask comes back. */
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR1);
    sigset_t wait_mask;
    sigemptyset(&wait_mask);
    int rc = sigsuspend(&wait_mask);
    sigset_t after;
    sigprocmask(SIG_BLOCK, NULL, &after);
    printf("sigsuspend: rc=%d count=%d usr1_still_blocked=%d\n", rc, (int)count, sigismember(&after, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);

    /* alarm + pause, then setitimer. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    rc = pause();
    printf("alarm: rc=%d count=%d signo_is_alrm=%d\n", rc, (int)count, last_signo == SIGALRM);
    struct itimerval timer = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &timer, NULL);
    int before = count;
    while (count == before)
        ;
    printf("setitimer: fired=%d\n", count == before + 1);

    /* A SIGSEGV handler that siglongjmps out. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    int caught = sigsetjmp(recover, 1);
    if (!caught) {
        *(volatile int *)16 = 1;
        printf("not reached\n");
    }
    printf("segv: caught=%d addr_is_16=%d\n", caught == SIGSEGV, fault_address == (void *)16);
    caught = sigsetjmp(recover, 1);
    if (!caught)
        *(volatile int *)32 = 1;
    printf("segv again: caught=%d addr_is_32=%d\n", caught == SIGSEGV, fault_address == (void *)32);

    /* A handler that returns re-runs the faulting instruction. */
    read_only_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv_fix;
    sigaction(SIGSEGV, &sa, NULL);
    *(volatile char *)(read_only_page + 100) = 42;
    printf("segv fixed: handler_runs=%d value=%d\n", (int)segv_returns, read_only_page[100]);

    /* SA_ONSTACK runs the handler on the sigaltstack. */
    stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_altstack_signal;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    printf("altstack: on_it=%d\n", (int)on_alt_stack);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = plain;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGHUP, &sa, NULL);
    raise(SIGHUP);
    struct sigaction now;
    sigaction(SIGHUP, NULL, &now);
    printf("resethand: count=%d reset=%d\n", (int)count, now.sa_handler == SIG_DFL);
    raise(SIGHUP);
    printf("not reached\n");
    return 0;
}
