/* sockets.c - sockets: AF_UNIX pairs and named sockets, TCP and UDP on the loopback.
 *
 * Usage: sockets DIR    DIR: a writable directory for the AF_UNIX socket files
 * Steps:
 *   1. socketpair(AF_UNIX, SOCK_STREAM): a round trip with write/read and send/recv.
 *   2. sendmsg/recvmsg over a SOCK_DGRAM pair: two iovecs out, three in, and a pipe's
 *      write end passed with SCM_RIGHTS, then written through by the receiver.
 *      Then sendmmsg of two datagrams, epoll_wait for them, recvmmsg of both.
 *   3. AF_UNIX stream socket bound to DIR/srv.sock (by a relative path), a non-blocking
 *      accept (EAGAIN), then a forked client that connects, sends and reads a reply.
 *   4. AF_UNIX datagram sockets with names: recvfrom reports the sender's path.
 *   5. An abstract AF_UNIX name survives bind/getsockname.
 *   6. TCP on 127.0.0.1 port 0: options, getsockname, a forked client echoed by the server.
 *   7. UDP on 127.0.0.1: sendto/recvfrom both ways, then connect/send/recv.
 *   8. TCP over IPv6 (::1) with a non-blocking connect completed by poll.
 * Steps 6-8 need the network: without it their socket() fails and they say why.
 * Output is deterministic (no ports, pids or paths beyond what the step names).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what)
{
    printf("%s: %s\n", what, strerror(errno));
    return -1;
}

static void child_status(const char *what, pid_t pid)
{
    int status = 0;

    if (waitpid(pid, &status, 0) != pid)
        printf("%s: waitpid failed\n", what);
    else if (WIFEXITED(status))
        printf("%s: child exited %d\n", what, WEXITSTATUS(status));
    else
        printf("%s: child status 0x%x\n", what, status);
}

static int int_option(int fd, int level, int name)
{
    int value = -1;
    socklen_t length = sizeof value;

    if (getsockopt(fd, level, name, &value, &length) < 0 || length != sizeof value)
        return -1000 - errno;
    return value;
}

static void pair_round_trip(void)
{
    int sv[2];
    char buf[16] = {0};

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        fail("pair");
        return;
    }
    write(sv[0], "ping", 4);
    ssize_t n = read(sv[1], buf, sizeof buf);
    send(sv[1], "pong", 4, 0);
    char back[16] = {0};
    ssize_t m = recv(sv[0], back, sizeof back, 0);
    printf("pair: read %zd \"%s\", recv %zd \"%s\", type stream=%d\n", n, buf, m, back,
           int_option(sv[0], SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
    close(sv[0]);
    close(sv[1]);
}

static void message_with_fd(void)
{
    int sv[2], p[2];
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } control;

    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0 || pipe(p) < 0) {
        fail("msg");
        return;
    }
    struct iovec out[2] = {{"hel", 3}, {"lo!", 3}};
    struct msghdr msg = {0};
    msg.msg_iov = out;
    msg.msg_iovlen = 2;
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[1], sizeof(int));
    ssize_t sent = sendmsg(sv[0], &msg, 0);
    close(p[1]);

    char a[2] = {0}, b[2] = {0}, rest[8] = {0};
    struct iovec in[3] = {{a, 2}, {b, 2}, {rest, 8}};
    struct msghdr got = {0};
    memset(&control, 0, sizeof control);
    got.msg_iov = in;
    got.msg_iovlen = 3;
    got.msg_control = control.buf;
    got.msg_controllen = sizeof control.buf;
    ssize_t received = recvmsg(sv[1], &got, 0);
    c = CMSG_FIRSTHDR(&got);
    int passed = -1;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(&passed, CMSG_DATA(c), sizeof(int));
    printf("msg: sent %zd, received %zd \"%.2s|%.2s|%s\", flags 0x%x, fd passed=%d\n", sent, received, a, b,
           rest, got.msg_flags, passed >= 0);
    if (passed >= 0) {
        write(passed, "through the passed fd", 21);
        close(passed);
        char buf[32] = {0};
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        printf("msg: pipe got %zd \"%s\", then %zd (EOF)\n", n, buf, read(p[0], buf, sizeof buf));
    }
    close(p[0]);
    close(sv[0]);
    close(sv[1]);
}

static void batches(void)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv) < 0) {
        fail("batch");
        return;
    }
    struct iovec first = {"first", 5}, second = {"second!", 7};
    struct mmsghdr out[2] = {0};
    out[0].msg_hdr.msg_iov = &first;
    out[0].msg_hdr.msg_iovlen = 1;
    out[1].msg_hdr.msg_iov = &second;
    out[1].msg_hdr.msg_iovlen = 1;
    int sent = sendmmsg(sv[0], out, 2, 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = 77}, got = {0};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &event);
    int ready = epoll_wait(ep, &got, 1, 5000);
    char a[16] = {0}, b[16] = {0};
    struct iovec ia = {a, 15}, ib = {b, 15};
    struct mmsghdr in[3] = {0};
    in[0].msg_hdr.msg_iov = &ia;
    in[0].msg_hdr.msg_iovlen = 1;
    in[1].msg_hdr.msg_iov = &ib;
    in[1].msg_hdr.msg_iovlen = 1;
    in[2].msg_hdr.msg_iov = &ib;
    in[2].msg_hdr.msg_iovlen = 1;
    int received = recvmmsg(sv[1], in, 3, 0, NULL);
    printf("batch: sendmmsg %d, epoll %d (data %d), recvmmsg %d: \"%s\" (%u) \"%s\" (%u)\n", sent, ready,
           (int)got.data.u64, received, a, in[0].msg_len, b, in[1].msg_len);
    close(ep);
    close(sv[0]);
    close(sv[1]);
}

static void unix_stream(void)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, "srv.sock");
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 4) < 0) {
        fail("unix stream");
        return;
    }
    struct sockaddr_un name;
    socklen_t length = sizeof name;
    getsockname(s, (struct sockaddr *)&name, &length);
    struct stat st;
    printf("unix stream: bound \"%s\" (length %u), a socket file: %d, cloexec %d\n", name.sun_path,
           (unsigned)length, stat("srv.sock", &st) == 0 && S_ISSOCK(st.st_mode), fcntl(s, F_GETFD) & FD_CLOEXEC);

    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    int r = accept(s, NULL, NULL);
    printf("unix stream: non-blocking accept %d %s\n", r, r < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        char buf[32] = {0};
        if (connect(c, (struct sockaddr *)&addr, sizeof addr) < 0)
            _exit(10 + errno);
        write(c, "hello from the child", 20);
        ssize_t n = read(c, buf, sizeof buf);
        struct sockaddr_un peer;
        socklen_t peer_length = sizeof peer;
        getpeername(c, (struct sockaddr *)&peer, &peer_length);
        _exit(n == 8 && !memcmp(buf, "hi child", 8) && !strcmp(peer.sun_path, "srv.sock") ? 0 : 1);
    }
    struct sockaddr_un client;
    socklen_t client_length = sizeof client;
    int conn = accept(s, (struct sockaddr *)&client, &client_length);
    char buf[32] = {0};
    ssize_t n = conn < 0 ? -1 : read(conn, buf, sizeof buf);
    printf("unix stream: accepted (peer length %u), read %zd \"%s\"\n", (unsigned)client_length, n, buf);
    write(conn, "hi child", 8);
    child_status("unix stream", pid);
    close(conn);
    close(s);
    unlink("srv.sock");
}

static void unix_dgram(void)
{
    struct sockaddr_un server = {.sun_family = AF_UNIX}, client = {.sun_family = AF_UNIX}, from;
    strcpy(server.sun_path, "dgram.sock");
    strcpy(client.sun_path, "client.sock");
    int s = socket(AF_UNIX, SOCK_DGRAM, 0), c = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (bind(s, (struct sockaddr *)&server, sizeof server) < 0 || bind(c, (struct sockaddr *)&client, sizeof client) < 0) {
        fail("unix dgram");
        return;
    }
    sendto(c, "knock", 5, 0, (struct sockaddr *)&server, sizeof server);
    char buf[16] = {0};
    socklen_t length = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &length);
    sendto(s, "who", 3, 0, (struct sockaddr *)&from, length);
    char back[16] = {0};
    ssize_t m = recv(c, back, sizeof back, 0);
    printf("unix dgram: got %zd \"%s\" from \"%s\", reply %zd \"%s\"\n", n, buf, from.sun_path, m, back);
    close(s);
    close(c);
    unlink("dgram.sock");
    unlink("client.sock");
}

static void unix_abstract(void)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX}, name;
    int len = snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "bdemu-sample-%d", (int)getpid());
    socklen_t addr_length = offsetof(struct sockaddr_un, sun_path) + 1 + len, length = sizeof name;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(s, (struct sockaddr *)&addr, addr_length) < 0) {
        fail("abstract");
        return;
    }
    getsockname(s, (struct sockaddr *)&name, &length);
    printf("abstract: same name back: %d\n", length == addr_length && !memcmp(&name, &addr, length));
    close(s);
}

static void tcp_echo(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        fail("tcp: socket");
        return;
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 4) < 0) {
        fail("tcp: bind");
        return;
    }
    socklen_t length = sizeof addr;
    getsockname(s, (struct sockaddr *)&addr, &length);
    char text[INET_ADDRSTRLEN];
    printf("tcp: listening on %s, port assigned %d, reuseaddr %d, keepalive %d, type stream %d, error %d, "
           "rcvbuf>0 %d, acceptconn %d\n",
           inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text), ntohs(addr.sin_port) != 0,
           int_option(s, SOL_SOCKET, SO_REUSEADDR), int_option(s, SOL_SOCKET, SO_KEEPALIVE),
           int_option(s, SOL_SOCKET, SO_TYPE) == SOCK_STREAM, int_option(s, SOL_SOCKET, SO_ERROR),
           int_option(s, SOL_SOCKET, SO_RCVBUF) > 0, int_option(s, SOL_SOCKET, SO_ACCEPTCONN));
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&addr, sizeof addr) < 0)
            _exit(10 + errno);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (int_option(c, IPPROTO_TCP, TCP_NODELAY) != 1)
            _exit(2);
        const char *words[] = {"echo ", "me ", "please"};
        for (int i = 0; i < 3; i++)
            sendto(c, words[i], strlen(words[i]), 0, NULL, 0);
        shutdown(c, SHUT_WR);
        char buf[64] = {0};
        size_t total = 0;
        ssize_t n;
        while ((n = read(c, buf + total, sizeof buf - 1 - total)) > 0)
            total += n;
        _exit(strcmp(buf, "echo me please") ? 3 : 0);
    }
    struct sockaddr_in peer;
    socklen_t peer_length = sizeof peer;
    int conn = accept(s, (struct sockaddr *)&peer, &peer_length);
    if (conn < 0) {
        fail("tcp: accept");
        return;
    }
    socklen_t local_length = sizeof addr;
    struct sockaddr_in local, remote;
    socklen_t remote_length = sizeof remote;
    getsockname(conn, (struct sockaddr *)&local, &local_length);
    getpeername(conn, (struct sockaddr *)&remote, &remote_length);
    char buf[64];
    size_t total = 0;
    ssize_t n;
    while ((n = recvfrom(conn, buf, sizeof buf, 0, NULL, NULL)) > 0) {
        send(conn, buf, n, MSG_NOSIGNAL);
        total += n;
    }
    printf("tcp: accepted from %s (length %u, same as getpeername %d), local port same %d, echoed %zu bytes\n",
           inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text), (unsigned)peer_length,
           remote.sin_port == peer.sin_port, local.sin_port == addr.sin_port, total);
    close(conn);
    child_status("tcp", pid);
    close(s);
}

static void udp_round_trip(void)
{
    int a = socket(AF_INET, SOCK_DGRAM, 0);
    if (a < 0) {
        fail("udp: socket");
        return;
    }
    int b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET}, baddr = {.sin_family = AF_INET}, from;
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    baddr.sin_addr = addr.sin_addr;
    bind(a, (struct sockaddr *)&addr, sizeof addr);
    bind(b, (struct sockaddr *)&baddr, sizeof baddr);
    socklen_t length = sizeof addr;
    getsockname(a, (struct sockaddr *)&addr, &length);
    length = sizeof baddr;
    getsockname(b, (struct sockaddr *)&baddr, &length);
    sendto(b, "datagram", 8, 0, (struct sockaddr *)&addr, sizeof addr);
    char buf[32] = {0};
    length = sizeof from;
    ssize_t n = recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &length);
    sendto(a, "answer", 6, 0, (struct sockaddr *)&from, length);
    char back[32] = {0};
    ssize_t m = recv(b, back, sizeof back, 0);
    printf("udp: got %zd \"%s\", sender port matches %d, reply %zd \"%s\", type dgram %d\n", n, buf,
           from.sin_port == baddr.sin_port, m, back, int_option(a, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM);
    connect(b, (struct sockaddr *)&addr, sizeof addr);
    send(b, "connected", 9, 0);
    memset(buf, 0, sizeof buf);
    n = recv(a, buf, sizeof buf, MSG_PEEK);
    n = recv(a, buf, sizeof buf, 0);
    printf("udp: connected send %zd \"%s\"\n", n, buf);
    close(a);
    close(b);
}

static void tcp6(void)
{
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    if (s < 0) {
        fail("tcp6: socket");
        return;
    }
    struct sockaddr_in6 addr = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t length = sizeof addr;
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 1) < 0 ||
        getsockname(s, (struct sockaddr *)&addr, &length) < 0) {
        fail("tcp6: bind");
        return;
    }
    int c = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&addr, sizeof addr);
    int started = r == 0 || errno == EINPROGRESS;
    struct pollfd p = {.fd = c, .events = POLLOUT};
    int ready = poll(&p, 1, 5000);
    int conn = accept(s, NULL, NULL);
    write(c, "six", 3);
    char buf[8] = {0};
    read(conn, buf, sizeof buf);
    char text[INET6_ADDRSTRLEN];
    printf("tcp6: %s, connect started %d, writable %d, error %d, got \"%s\"\n",
           inet_ntop(AF_INET6, &addr.sin6_addr, text, sizeof text), started, ready == 1 && (p.revents & POLLOUT),
           int_option(c, SOL_SOCKET, SO_ERROR), buf);
    close(conn);
    close(c);
    close(s);
}

int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1]) < 0) {
        fprintf(stderr, "usage: sockets DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pair_round_trip();
    message_with_fd();
    batches();
    unix_stream();
    unix_dgram();
    unix_abstract();
    tcp_echo();
    udp_round_trip();
    tcp6();
    return 0;
}
