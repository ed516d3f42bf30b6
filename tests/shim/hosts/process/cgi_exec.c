/* cgi_exec MODE CONNS — a program exec'd with the connection as its stdin and stdout, the way CGI
 * servers and inetd run handlers. The handler is `/bin/sh -c 'read l; echo "got $l"; echo done'`.
 *   close: fork per connection; the child dup2()s the connection onto 0 and 1 and execs; the parent
 *          closes its copy at once and waits for the child (classic CGI / forking inetd);
 *   keep:  as python's http.server CGI handler: the parent keeps its copy while the child runs,
 *          waits for it, then throws away whatever the client sent that the script did not read
 *          (select with a zero timeout + read(1) until not readable), shutdown(SHUT_WR), close;
 *   vfork: as close, with vfork() instead of fork() (busybox httpd starts its CGIs so): the child
 *          only dup2()s and execs;
 *   stderr: as close, the child puts the connection on 0, 1 and 2 (inetd's "wait"/"nowait" services
 *          and many CGI launchers send stderr to the client too); the script also writes a line
 *          to stderr;
 *   fd3:   as close, but the connection is given to the program at fd 3 (systemd's Accept=yes
 *          services get their connection as fd 3 with LISTEN_FDS=1; the script uses <&3 >&3);
 *   inetd: no fork: the server itself dup2()s the connection onto 0 and 1 and becomes the shell
 *          (inetd's "nowait" child after its fork, or a program started by tcpserver).
 * The exec'd program never heard of TLS: its output must arrive as TLS records (never plaintext),
 * with no reused nonce, and the peer must get the reply and a clean end. */
#include "../host.h"

static const char *script = "read l; echo \"got $l\"; echo done";
static const char *script2 = "read l; echo \"got $l\"; echo \"to stderr\" >&2; echo done";
static const char *script3 = "read l <&3; echo \"got $l\" >&3; echo done >&3";

/* exec_fd3 gives the program the connection at fd 3 only (0, 1, 2 stay the server's). */
static void exec_fd3(int fd) {
  if (fd != 3 && dup2(fd, 3) != 3) _exit(126);
  if (fd != 3) close(fd);
  setenv("LISTEN_FDS", "1", 1);
  execl("/bin/sh", "sh", "-c", script3, (char *)NULL);
  _exit(127);
}

static void exec_handler(int fd, int with_stderr) {
  if (dup2(fd, 0) != 0 || dup2(fd, 1) != 1) _exit(126);
  if (with_stderr && dup2(fd, 2) != 2) _exit(126);
  if (fd > 2) close(fd);
  execl("/bin/sh", "sh", "-c", with_stderr ? script2 : script, (char *)NULL);
  _exit(127);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: cgi_exec PORT MODE [CONNS]");
  int lfd = listen_on(atoi(argv[1]));
  const char *mode = argv[2];
  int conns = argc > 3 ? atoi(argv[3]) : 1;
  ready();
  for (int i = 0; i < conns; i++) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");
    if (!strcmp(mode, "inetd")) {
      OBS("conn %d: exec the handler in place", i);
      close(lfd);
      exec_handler(fd, 0);
    }
    pid_t pid;
    if (!strcmp(mode, "vfork")) {
      pid = vfork();
      if (pid == 0) {
        if (dup2(fd, 0) != 0 || dup2(fd, 1) != 1) _exit(126);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
      }
    } else {
      pid = fork();
      if (pid == 0) {
        close(lfd);
        if (!strcmp(mode, "fd3")) exec_fd3(fd);
        exec_handler(fd, !strcmp(mode, "stderr"));
      }
    }
    if (pid < 0) die("fork");
    if (strcmp(mode, "keep")) OBS("conn %d: parent close %s", i, RET(close(fd)));
    int st;
    if (waitpid(pid, &st, 0) < 0) die("waitpid");
    OBS("conn %d: handler exit %d", i, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    if (!strcmp(mode, "keep")) {
      /* throw away additional data (http.server's run_cgi, bug #427345) */
      size_t drained = 0;
      char c;
      for (;;) {
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        struct timeval tv = {0, 0};
        int s = select(fd + 1, &rs, NULL, NULL, &tv);
        if (s <= 0) break;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0) {
          OBS("conn %d: drain read %s", i, RET(r));
          break;
        }
        drained++;
      }
      OBS("conn %d: drained %zu bytes", i, drained);
      OBS("conn %d: shutdown(SHUT_WR) %s", i, RET(shutdown(fd, SHUT_WR)));
      OBS("conn %d: close %s", i, RET(close(fd)));
    }
  }
  return 0;
}
