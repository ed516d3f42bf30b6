/* fork_after_read — a server that reads the request, forks a handler for the response and closes
 * its own copy at once (inetd-like daemons, pre-threading servers). The parent's close must not end
 * the session and the child must not reuse the parent's keys: the wire oracle checks the sequence
 * numbers, the peer checks the reply and a clean end. */
#include "../host.h"

int main(int argc, char **argv) {
  if (argc < 2) die("usage: fork_after_read PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  char req[256];
  read_line(fd, req, sizeof(req));
  OBS("request: %s", req);
  pid_t pid = fork();
  if (pid == 0) {
    usleep(100 * 1000); /* the parent has closed its copy by now */
    char reply[300];
    int n = snprintf(reply, sizeof(reply), "reply to %s", req);
    OBS("child write: %s", RET(write(fd, reply, (size_t)n)));
    OBS("child close: %s", RET(close(fd)));
    _exit(0);
  }
  OBS("parent close: %s", RET(close(fd)));
  int st;
  waitpid(pid, &st, 0);
  OBS("child exit: %d", WEXITSTATUS(st));
  return 0;
}
