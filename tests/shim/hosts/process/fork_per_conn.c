/* fork_per_conn MODE — the classic fork-per-connection server: accept, fork, the parent closes its
 * copy, the child serves one request and ends by MODE: "close" (close then _exit), "exit" (exit()
 * with the socket still open) or "_exit" (_exit() with it open). The kernel closes what the child
 * left open: the peer sees a clean end in every mode (through the shim: close_notify). */
#include "../host.h"

int main(int argc, char **argv) {
  if (argc < 3) die("usage: fork_per_conn PORT MODE");
  int lfd = listen_on(atoi(argv[1]));
  const char *mode = argv[2];
  ready();
  pid_t kids[3];
  for (int i = 0; i < 3; i++) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");
    pid_t pid = fork();
    if (pid == 0) {
      close(lfd);
      char req[256], reply[300];
      read_line(fd, req, sizeof(req));
      int n = snprintf(reply, sizeof(reply), "served %s", req);
      if (write_all(fd, reply, (size_t)n)) _exit(3);
      if (!strcmp(mode, "close")) {
        close(fd);
        _exit(0);
      }
      if (!strcmp(mode, "exit")) exit(0);
      _exit(0);
    }
    kids[i] = pid;
    OBS("conn %d: parent close %s", i, RET(close(fd)));
  }
  for (int i = 0; i < 3; i++) {
    int st;
    waitpid(kids[i], &st, 0);
    OBS("child %d exit %d", i, WEXITSTATUS(st));
  }
  return 0;
}
