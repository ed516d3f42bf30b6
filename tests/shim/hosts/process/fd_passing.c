/* fd_passing MODE — the ways a connection's fd can reach another program or process, one per mode.
 * Each serves one connection: reads a line, answers, closes.
 *   getfd:     F_GETFD/F_SETFD and FIOCLEX/FIONCLEX show the host's own FD_CLOEXEC (the shim keeps
 *              the kernel's flag set on TLS fds: the host must not see it);
 *   system:    system("echo ... >&N") with the connection at N (no FD_CLOEXEC, never dup2()ed for
 *              the child): on a plain socket the shell's line reaches the client; through the shim
 *              the fd is closed in the shell (it would get the raw socket) — a documented
 *              difference, failing closed;
 *   spawn:     posix_spawn with a file action dup2(conn, 1): refused (EPERM) through the shim (the
 *              spawned program would get the raw socket) — a documented difference;
 *   scm:       the connection's fd sent to a child process over a Unix socket (SCM_RIGHTS): refused
 *              (EPERM) through the shim — a documented difference; the server answers itself;
 *   stdout:    a daemon that closed fd 1 accepts: the connection is fd 1, and printf() (glibc stdio,
 *              which no interposer sees) must reach the client as TLS;
 *   closefrom: a forked child that closefrom(3)s (closing its copy of the connection) and exits:
 *              the parent's session goes on. */
#include <spawn.h>
#include <sys/ioctl.h>

#include "../host.h"

extern char **environ;

static void answer(int fd, const char *what) {
  char line[256], reply[400];
  read_line(fd, line, sizeof(line));
  int n = snprintf(reply, sizeof(reply), "%s: %s", what, line);
  OBS("reply: %s", RET(write_all(fd, reply, (size_t)n) ? -1 : n));
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: fd_passing PORT MODE");
  const char *mode = argv[2];
  int lfd = listen_on(atoi(argv[1]));
  ready();
  if (!strcmp(mode, "stdout")) {
    close(1);
    int fd = accept(lfd, NULL, NULL); /* the lowest free number: 1 */
    char line[256];
    read_line(fd, line, sizeof(line));
    fprintf(stderr, "accepted on fd %d\n", fd);
    printf("stdout says: %s", line);
    fflush(stdout);
    close(fd);
    return 0;
  }
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  if (!strcmp(mode, "getfd")) {
    OBS("F_GETFD after accept: %d", fcntl(fd, F_GETFD));
    OBS("F_SETFD FD_CLOEXEC: %s, F_GETFD: %d", RET(fcntl(fd, F_SETFD, FD_CLOEXEC)),
        fcntl(fd, F_GETFD));
    OBS("FIONCLEX: %s, F_GETFD: %d", RET(ioctl(fd, FIONCLEX)), fcntl(fd, F_GETFD));
    OBS("FIOCLEX: %s, F_GETFD: %d", RET(ioctl(fd, FIOCLEX)), fcntl(fd, F_GETFD));
    int d = dup(fd);
    OBS("dup's F_GETFD: %d", fcntl(d, F_GETFD));
    int d3 = dup3(fd, 20, O_CLOEXEC);
    OBS("dup3(O_CLOEXEC)'s F_GETFD: %d", fcntl(d3, F_GETFD));
    close(d);
    close(d3);
    answer(fd, "getfd");
  } else if (!strcmp(mode, "system")) {
    char cmd[128];
    char line[256];
    read_line(fd, line, sizeof(line));
    snprintf(cmd, sizeof(cmd), "echo from the shell >&%d 2>/dev/null", fd);
    int st = system(cmd);
    OBS("system: exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    OBS("reply: %s", RET(write(fd, "from the server\n", 16)));
  } else if (!strcmp(mode, "spawn")) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int r = posix_spawn_file_actions_adddup2(&fa, fd, 1);
    OBS("adddup2(conn, 1): %s", r ? errname(r) : "0");
    if (!r) {
      pid_t pid;
      char *args[] = {"sh", "-c", "echo from a spawned program", NULL};
      r = posix_spawn(&pid, "/bin/sh", &fa, NULL, args, environ);
      int st;
      if (!r) waitpid(pid, &st, 0);
      OBS("posix_spawn: %s", r ? errname(r) : "0");
    } else {
      OBS("posix_spawn: not run");
    }
    posix_spawn_file_actions_destroy(&fa);
    answer(fd, "spawn");
  } else if (!strcmp(mode, "scm")) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) die("socketpair");
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    memset(ctl, 0, sizeof(ctl));
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                       .msg_controllen = sizeof(ctl)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    OBS("sendmsg(SCM_RIGHTS, conn): %s", RET(sendmsg(sv[0], &m, 0)));
    close(sv[0]);
    close(sv[1]);
    answer(fd, "scm");
  } else if (!strcmp(mode, "closefrom")) {
    pid_t pid = fork();
    if (pid == 0) {
      closefrom(3);
      _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    OBS("child closefrom(3), exit %d", WEXITSTATUS(st));
    answer(fd, "closefrom");
  } else {
    die("unknown mode %s", mode);
  }
  OBS("close: %s", RET(close(fd)));
  return 0;
}
