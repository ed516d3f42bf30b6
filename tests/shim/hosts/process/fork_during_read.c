/* fork_during_read MODE — a thread is blocked in read() on a connection when another thread forks
 * (a threaded log receiver that runs a helper, redis BGSAVE while a client waits): the child never
 * touches the connection (MODE "exit": it _exit()s at once; "exec": it execs /bin/true). The
 * client is an idle keep-alive connection that leaves after the fork: the one read() that spans
 * the fork returns 0 and the server closes. The connection was the server's alone before and after
 * the fork, so the peer must see a clean end (through the shim: close_notify), exactly as with a
 * server that never forked. */
#include "../host.h"

static int fd;
static size_t total;
static const char *end;

static void *reader(void *arg) {
  char buf[4096];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      end = r == 0 ? "EOF" : errname(errno);
      break;
    }
    total += (size_t)r;
  }
  return arg;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: fork_during_read PORT MODE");
  int lfd = listen_on(atoi(argv[1]));
  const char *mode = argv[2];
  ready();
  fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  pthread_t th;
  if (pthread_create(&th, NULL, reader, NULL)) die("pthread_create");
  usleep(100 * 1000); /* the reader is blocked: the client leaves at ~300 ms */
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    if (!strcmp(mode, "exec")) execl("/bin/true", "true", (char *)NULL);
    _exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  OBS("child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  pthread_join(th, NULL);
  OBS("reader: %zu bytes, then %s", total, end);
  OBS("close %s", RET(close(fd)));
  return 0;
}
