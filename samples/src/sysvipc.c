/* sysvipc.c - System V shared memory, semaphores and message queues between a process and its child.
 *
 * Usage: sysvipc
 * Each check prints one line "name: ok" (never an id, address or pid), in order:
 *   shm: a private segment attached before fork is shared with the child; IPC_STAT's
 *        size, mode, creator and attach count; /proc/self/maps lists it shared; shmdt
 *        unmaps it; a keyed segment is found again by its key (EEXIST, ENOENT otherwise);
 *        SHM_RDONLY cannot be made writable; IPC_RMID'd memory stays until detached.
 *   sem: SETVAL/GETVAL/SETALL/GETALL, IPC_STAT's nsems, IPC_NOWAIT and a timed wait
 *        fail with EAGAIN, a ping-pong between the processes on two semaphores (each
 *        side blocks in semop), GETPID names the child, IPC_RMID.
 *   sem: a set whose first operation that cannot go on has IPC_NOWAIT fails with
 *        EAGAIN and applies nothing; one whose first such operation waits waits (for
 *        the child), though a later one has IPC_NOWAIT.
 *   msg: messages from the child received by type (a blocking receive waits for
 *        the child), MSG_NOERROR truncation, E2BIG, ENOMSG, IPC_STAT counts.
 *   info: IPC_INFO, SHM_INFO, SEM_INFO and MSG_INFO limits and usage; SHM_STAT,
 *        SEM_STAT and MSG_STAT find each object at an index at most the highest
 *        index they give, with its fields; an index beyond it is EINVAL.
 * Exit status 0 when every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY 0x62646d75 /* "bdmu" */
#define ROUNDS 20

union semun { int val; struct semid_ds *buf; unsigned short *array; struct seminfo *info; };

static int failures;

static void check(const char *name, int ok)
{
    printf("%s: %s\n", name, ok ? "ok" : "FAILED");
    fflush(stdout);
    failures += !ok;
}

static int wait_child(pid_t pid)
{
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void pause_ms(int ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

static int maps_has(const char *needle)
{
    char line[512];
    int found = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        found |= strstr(line, needle) != NULL && strstr(line, "rw-s") != NULL;
    fclose(f);
    return found;
}

static void test_shm(void)
{
    int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600);
    char *p = shmat(id, NULL, 0);
    check("shm get and attach", id >= 0 && p != (void *)-1);
    pid_t pid = fork();
    if (pid == 0) {
        strcpy(p, "stored by the child");
        _exit(0);
    }
    check("shm child's store seen", wait_child(pid) == 0 && strcmp(p, "stored by the child") == 0);
    struct shmid_ds ds;
    check("shm IPC_STAT", shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_segsz == 10000
          && (ds.shm_perm.mode & 0777) == 0600 && ds.shm_cpid == getpid() && ds.shm_nattch == 1
          && ds.shm_perm.__key == IPC_PRIVATE);
    check("shm in maps", maps_has("/SYSV00000000"));
    ds.shm_perm.mode = 0640;
    check("shm IPC_SET", shmctl(id, IPC_SET, &ds) == 0 && shmctl(id, IPC_STAT, &ds) == 0
          && (ds.shm_perm.mode & 0777) == 0640);
    check("shmdt", shmdt(p) == 0 && !maps_has("/SYSV00000000") && shmctl(id, IPC_STAT, &ds) == 0
          && ds.shm_nattch == 0);
    check("shmdt not attached", shmdt(p) == -1 && errno == EINVAL);

    int keyed = shmget(KEY, 4096, IPC_CREAT | IPC_EXCL | 0600);
    check("shm keyed", keyed >= 0 && shmget(KEY, 4096, 0) == keyed && shmctl(keyed, IPC_STAT, &ds) == 0
          && ds.shm_perm.__key == KEY);
    check("shm EEXIST", shmget(KEY, 4096, IPC_CREAT | IPC_EXCL | 0600) == -1 && errno == EEXIST);
    check("shm ENOENT", shmget(KEY + 1, 4096, 0) == -1 && errno == ENOENT);
    check("shm EINVAL size", shmget(KEY, 8192, 0) == -1 && errno == EINVAL);
    char *ro = shmat(keyed, NULL, SHM_RDONLY);
    check("shm read-only", ro != (void *)-1 && ro[0] == 0
          && mprotect(ro, 4096, PROT_READ | PROT_WRITE) == -1 && errno == EACCES);
    shmdt(ro);

    char *q = shmat(keyed, NULL, 0);
    check("shm IPC_RMID while attached", q != (void *)-1 && shmctl(keyed, IPC_RMID, NULL) == 0);
    strcpy(q, "still here");
    check("shm removed still mapped", strcmp(q, "still here") == 0 && shmdt(q) == 0);
    check("shm removed is gone", shmctl(keyed, IPC_STAT, &ds) == -1 && errno == EINVAL);
    check("shm bad id", shmctl(-1, IPC_STAT, &ds) == -1 && errno == EINVAL);
    shmctl(id, IPC_RMID, NULL);
}

static int sem_add(int id, int num, int delta)
{
    struct sembuf op = { num, delta, 0 };
    return semop(id, &op, 1);
}

static void test_sem(void)
{
    int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    union semun arg;
    check("sem get", id >= 0);
    arg.val = 5;
    check("sem SETVAL GETVAL", semctl(id, 0, SETVAL, arg) == 0 && semctl(id, 0, GETVAL) == 5);
    unsigned short values[2] = { 3, 4 }, back[2] = { 0, 0 };
    arg.array = values;
    int set = semctl(id, 0, SETALL, arg);
    arg.array = back;
    check("sem SETALL GETALL", set == 0 && semctl(id, 0, GETALL, arg) == 0 && back[0] == 3 && back[1] == 4);
    struct semid_ds ds;
    arg.buf = &ds;
    check("sem IPC_STAT", semctl(id, 0, IPC_STAT, arg) == 0 && ds.sem_nsems == 2
          && (ds.sem_perm.mode & 0777) == 0600);
    struct sembuf take = { 0, -4, IPC_NOWAIT };
    check("sem IPC_NOWAIT", semop(id, &take, 1) == -1 && errno == EAGAIN);
    struct timespec brief = { 0, 50000000 };
    take.sem_flg = 0;
    check("sem timed out", semtimedop(id, &take, 1, &brief) == -1 && errno == EAGAIN);

    arg.val = 0;
    semctl(id, 0, SETVAL, arg);
    semctl(id, 1, SETVAL, arg);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < ROUNDS; i++)
            if (sem_add(id, 0, -1) != 0 || sem_add(id, 1, 1) != 0)
                _exit(1);
        _exit(0);
    }
    int ok = 1;
    for (int i = 0; i < ROUNDS && ok; i++)
        ok = sem_add(id, 0, 1) == 0 && sem_add(id, 1, -1) == 0;
    check("sem ping-pong", ok && wait_child(pid) == 0);
    check("sem GETPID", semctl(id, 0, GETPID) == pid);
    check("sem GETNCNT GETZCNT", semctl(id, 0, GETNCNT) == 0 && semctl(id, 0, GETZCNT) == 0);
    check("sem IPC_RMID", semctl(id, 0, IPC_RMID) == 0 && sem_add(id, 0, 1) == -1 && errno == EINVAL);
}

struct message { long type; char text[32]; };

static void test_msg(void)
{
    int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    check("msg get", id >= 0);
    pid_t pid = fork();
    if (pid == 0) {
        pause_ms(100);
        for (long type = 1; type <= 3; type++) {
            struct message m = { type, "" };
            snprintf(m.text, sizeof m.text, "message %ld", type);
            if (msgsnd(id, &m, strlen(m.text) + 1, 0) != 0)
                _exit(1);
        }
        _exit(0);
    }
    struct message m;
    ssize_t got = msgrcv(id, &m, sizeof m.text, 2, 0);
    check("msg by type (waits)", got == 10 && m.type == 2 && strcmp(m.text, "message 2") == 0);
    check("msg child", wait_child(pid) == 0);
    struct msqid_ds ds;
    check("msg IPC_STAT", msgctl(id, IPC_STAT, &ds) == 0 && ds.msg_qnum == 2 && ds.msg_cbytes == 20
          && ds.msg_lspid == pid && ds.msg_qbytes > 0);
    check("msg E2BIG", msgrcv(id, &m, 4, 0, 0) == -1 && errno == E2BIG);
    got = msgrcv(id, &m, 4, -3, MSG_NOERROR);
    check("msg MSG_NOERROR", got == 4 && m.type == 1 && memcmp(m.text, "mess", 4) == 0);
    got = msgrcv(id, &m, sizeof m.text, 0, 0);
    check("msg next", got == 10 && m.type == 3);
    check("msg ENOMSG", msgrcv(id, &m, sizeof m.text, 0, IPC_NOWAIT) == -1 && errno == ENOMSG);
    m.type = 0;
    check("msg bad type", msgsnd(id, &m, 1, 0) == -1 && errno == EINVAL);
    m.type = 1;
    check("msg IPC_RMID", msgctl(id, IPC_RMID, NULL) == 0 && msgsnd(id, &m, 1, 0) == -1 && errno == EINVAL);
}

static void test_sem_nowait_mixed(void)
{
    int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    unsigned short values[2] = { 1, 0 }, back[2] = { 9, 9 };
    union semun arg = { .array = values }, out = { .array = back };
    struct sembuf set[2] = { { 0, -1, 0 }, { 1, -1, IPC_NOWAIT } };
    check("sem mixed IPC_NOWAIT fails whole", semctl(id, 0, SETALL, arg) == 0 && semop(id, set, 2) == -1
          && errno == EAGAIN && semctl(id, 0, GETALL, out) == 0 && back[0] == 1 && back[1] == 0);
    values[0] = 0;
    values[1] = 1;
    semctl(id, 0, SETALL, arg);
    pid_t pid = fork();
    if (pid == 0) {
        pause_ms(100);
        _exit(sem_add(id, 0, 1) != 0);
    }
    int done = semop(id, set, 2);
    check("sem mixed IPC_NOWAIT waits", done == 0 && wait_child(pid) == 0 && semctl(id, 0, GETALL, out) == 0
          && back[0] == 0 && back[1] == 0);
    semctl(id, 0, IPC_RMID);
}

static void test_info(void)
{
    int shm = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0640), sem = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    int msq = msgget(IPC_PRIVATE, IPC_CREAT | 0622);
    char *p = shmat(shm, NULL, 0);
    struct message m = { 5, "hello" };
    check("info objects", shm >= 0 && sem >= 0 && msq >= 0 && p != (void *)-1 && msgsnd(msq, &m, 5, 0) == 0);

    struct shminfo shminfo;
    struct shm_info shm_info;
    struct shmid_ds shmds;
    int top = shmctl(0, IPC_INFO, (struct shmid_ds *)&shminfo), index;
    check("shm IPC_INFO", top >= 0 && shminfo.shmmin == 1 && shminfo.shmmni >= 1 && shminfo.shmmax >= 10000
          && shminfo.shmall >= 3 && shminfo.shmseg >= 1);
    top = shmctl(0, SHM_INFO, (struct shmid_ds *)&shm_info);
    check("shm SHM_INFO", top >= 0 && shm_info.used_ids >= 1 && shm_info.shm_tot >= 3
          && shm_info.shm_rss <= shm_info.shm_tot);
    for (index = 0; index <= top && shmctl(index, SHM_STAT, &shmds) != shm; index++)
        ;
    check("shm SHM_STAT", index <= top && shmds.shm_segsz == 10000 && (shmds.shm_perm.mode & 0777) == 0640
          && shmds.shm_cpid == getpid() && shmds.shm_lpid == getpid() && shmds.shm_nattch == 1
          && shmds.shm_perm.__key == IPC_PRIVATE && shmds.shm_atime >= shmds.shm_ctime && shmds.shm_dtime == 0);
    check("shm SHM_STAT beyond", shmctl(top + 1, SHM_STAT, &shmds) == -1 && errno == EINVAL);

    struct seminfo seminfo;
    struct semid_ds semds;
    union semun arg = { .info = &seminfo };
    top = semctl(0, 0, IPC_INFO, arg);
    check("sem IPC_INFO", top >= 0 && seminfo.semvmx == 32767 && seminfo.semusz == 20
          && seminfo.semaem == 32767 && seminfo.semmni >= 1 && seminfo.semmsl >= 3 && seminfo.semopm >= 1);
    top = semctl(0, 0, SEM_INFO, arg);
    check("sem SEM_INFO", top >= 0 && seminfo.semusz >= 1 && seminfo.semaem >= 3 && seminfo.semvmx == 32767);
    arg.buf = &semds;
    for (index = 0; index <= top && semctl(index, 0, SEM_STAT, arg) != sem; index++)
        ;
    check("sem SEM_STAT", index <= top && semds.sem_nsems == 3 && (semds.sem_perm.mode & 0777) == 0600
          && semds.sem_otime == 0 && semds.sem_ctime > 0);
    check("sem SEM_STAT beyond", semctl(top + 1, 0, SEM_STAT, arg) == -1 && errno == EINVAL);

    struct msginfo msginfo;
    struct msqid_ds msgds;
    top = msgctl(0, IPC_INFO, (struct msqid_ds *)&msginfo);
    check("msg IPC_INFO", top >= 0 && msginfo.msgssz == 16 && msginfo.msgseg == 0xffff && msginfo.msgmax > 0
          && msginfo.msgmnb >= msginfo.msgmax && msginfo.msgmni >= 1);
    top = msgctl(0, MSG_INFO, (struct msqid_ds *)&msginfo);
    check("msg MSG_INFO", top >= 0 && msginfo.msgpool >= 1 && msginfo.msgmap >= 1 && msginfo.msgtql >= 5
          && msginfo.msgssz == 16);
    for (index = 0; index <= top && msgctl(index, MSG_STAT, &msgds) != msq; index++)
        ;
    check("msg MSG_STAT", index <= top && msgds.msg_qnum == 1 && msgds.msg_cbytes == 5
          && (msgds.msg_perm.mode & 0777) == 0622 && msgds.msg_lspid == getpid() && msgds.msg_lrpid == 0);
    check("msg MSG_STAT beyond", msgctl(top + 1, MSG_STAT, &msgds) == -1 && errno == EINVAL);

    shmdt(p);
    shmctl(shm, IPC_RMID, NULL);
    semctl(sem, 0, IPC_RMID);
    msgctl(msq, IPC_RMID, NULL);
}

int main(void)
{
    test_shm();
    test_sem();
    test_sem_nowait_mixed();
    test_msg();
    test_info();
    return failures != 0;
}
