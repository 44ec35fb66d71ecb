/* Test probe for the hard-block tests: tries one access and reports the outcome.
 * Built twice by the tests: dynamically with gcc (io_uring mode included) and statically
 * with musl-gcc (no LD_PRELOAD can ever apply to it).
 *
 *   probe read PATH            open(2) + read
 *   probe openat DIR NAME      openat(2) relative to a directory fd
 *   probe opath PATH           O_PATH, then reopen through /proc/self/fd/N
 *   probe uring PATH           IORING_OP_OPENAT through io_uring (dynamic build only)
 *   probe tcp4 IP PORT         TCP connect over IPv4
 *   probe tcp6 IP6 PORT        TCP connect over IPv6 (also ::ffff:a.b.c.d)
 *   probe udp4 IP PORT         UDP sendto over IPv4
 *
 * Prints "OK ..." and exits 0 on success, "ERR <errno name> ..." and exits 1 on failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef NO_URING
#include <linux/io_uring.h>
#include <sys/mman.h>
#endif

static int fail(const char *what) {
    printf("ERR %s %s\n", errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES" : "errno", what);
    return 1;
}

static int read_fd(int fd, const char *what) {
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) return fail(what);
    buf[n] = 0;
    printf("OK %s %s", what, buf);
    return 0;
}

#ifndef NO_URING
static int uring_open(const char *path) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int ring = syscall(__NR_io_uring_setup, 4, &p);
    if (ring < 0) return fail("io_uring_setup");
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(0, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    char *cq = mmap(0, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) return fail("mmap");
    unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
    unsigned *mask = (unsigned *)(sq + p.sq_off.ring_mask);
    unsigned *array = (unsigned *)(sq + p.sq_off.array);
    unsigned idx = *tail & *mask;
    struct io_uring_sqe *sqe = &sqes[idx];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_OPENAT;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)path;
    sqe->open_flags = O_RDONLY;
    array[idx] = idx;
    __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) return fail("io_uring_enter");
    unsigned *chead = (unsigned *)(cq + p.cq_off.head);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    int res = cqes[*chead & *(unsigned *)(cq + p.cq_off.ring_mask)].res;
    if (res < 0) { errno = -res; return fail("uring-openat"); }
    return read_fd(res, "uring");
}
#endif

static int connect_to(int family, const char *ip, int port, int type) {
    int s = socket(family, type, 0);
    if (s < 0) return fail("socket");
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET; a->sin_port = htons(port);
        inet_pton(AF_INET, ip, &a->sin_addr); len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6; a->sin6_port = htons(port);
        inet_pton(AF_INET6, ip, &a->sin6_addr); len = sizeof *a;
    }
    if (type == SOCK_DGRAM) {
        if (sendto(s, "ping", 4, 0, (struct sockaddr *)&ss, len) < 0) return fail("sendto");
        printf("OK sendto\n");
        return 0;
    }
    if (connect(s, (struct sockaddr *)&ss, len) < 0) return fail("connect");
    printf("OK connect\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 3) { fprintf(stderr, "usage: see source\n"); return 2; }
    const char *m = argv[1];
    if (!strcmp(m, "read")) {
        int fd = open(argv[2], O_RDONLY);
        return fd < 0 ? fail("open") : read_fd(fd, "read");
    }
    if (!strcmp(m, "openat") && argc > 3) {
        int d = open(argv[2], O_RDONLY | O_DIRECTORY);
        if (d < 0) return fail("open-dir");
        int fd = openat(d, argv[3], O_RDONLY);
        return fd < 0 ? fail("openat") : read_fd(fd, "openat");
    }
    if (!strcmp(m, "opath")) {
        int p = open(argv[2], O_PATH);
        if (p < 0) return fail("o_path");
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", p);
        int fd = open(proc, O_RDONLY);
        return fd < 0 ? fail("reopen") : read_fd(fd, "opath");
    }
#ifndef NO_URING
    if (!strcmp(m, "uring")) return uring_open(argv[2]);
#endif
    if (!strcmp(m, "tcp4") && argc > 3) return connect_to(AF_INET, argv[2], atoi(argv[3]), SOCK_STREAM);
    if (!strcmp(m, "tcp6") && argc > 3) return connect_to(AF_INET6, argv[2], atoi(argv[3]), SOCK_STREAM);
    if (!strcmp(m, "udp4") && argc > 3) return connect_to(AF_INET, argv[2], atoi(argv[3]), SOCK_DGRAM);
    fprintf(stderr, "unknown mode %s\n", m);
    return 2;
}
