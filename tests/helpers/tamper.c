/* Helper of the anti-tamper tests, built statically (`cc -static`) by the test: no dynamic
 * loader, so no LD_PRELOAD can ever apply to it, and every call below is a raw system call.
 *
 *   tamper ids                   prints "uid=R euid=E"
 *   tamper read PATH             open(2) + read, prints the content
 *   tamper unlink PATH           unlink(2)
 *   tamper exec PROG [ARGS...]   execv(2) of PROG
 *   tamper clone3-into DIR       clone3(CLONE_INTO_CGROUP) into the cgroup DIR (an O_PATH fd)
 *
 * Prints "OK ..." and exits 0 on success, "ERR <errno name> ..." and exits 1 on failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ENOSYS: return "ENOSYS";
    default: return "errno";
    }
}

static int fail(const char *what) {
    printf("ERR %s %s\n", name(errno), what);
    fflush(stdout);
    return 1;
}

struct clone_args_v2 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "ids")) {
        printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
        return 0;
    }
    if (argc < 3) return 2;
    if (!strcmp(mode, "read")) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) return fail("open");
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n < 0) return fail("read");
        buf[n] = 0;
        printf("OK read %s", buf);
        return 0;
    }
    if (!strcmp(mode, "unlink")) {
        if (unlink(argv[2]) < 0) return fail("unlink");
        printf("OK unlink\n");
        return 0;
    }
    if (!strcmp(mode, "exec")) {
        execv(argv[2], argv + 2);
        return fail("exec");
    }
    if (!strcmp(mode, "clone3-into")) {
        int dir = open(argv[2], O_PATH | O_DIRECTORY);
        if (dir < 0) return fail("open");
        struct clone_args_v2 a;
        memset(&a, 0, sizeof a);
        a.flags = 0x200000000ULL; /* CLONE_INTO_CGROUP */
        a.exit_signal = SIGCHLD;
        a.cgroup = (uint64_t)dir;
        long pid = syscall(__NR_clone3, &a, sizeof a);
        if (pid < 0) return fail("clone3");
        if (pid == 0) _exit(0);
        waitpid((pid_t)pid, NULL, 0);
        printf("OK clone3\n");
        return 0;
    }
    return 2;
}
