/* exec_other_conn MODE — a server holding a second connection B while it forks and execs a CGI
 * handler for connection A (the child dup2()s A onto 0 and 1 and execs /bin/sh; B, like every fd
 * a C server accepts without SOCK_CLOEXEC, is inherited by the handler, which never uses it).
 * B goes on being served by the server; the kernel way, the handler's copy of B changes nothing but
 * the moment B's FIN leaves (after both closed it). MODE says what B is doing during the fork/exec:
 *   serial:  nothing (a keep-alive connection of a single-threaded server): served before, and
 *            after the handler exits;
 *   reading: a thread is blocked in read(B), waiting for the request that comes after the CGI;
 *   writing: a thread is inside one blocking write() of 16 MiB on B (bytes i % 251) to a peer that
 *            does not read yet, and finishes it after the CGI (the host checks that the write was
 *            still in progress when it forked);
 *   written: the same with 256 KiB, which the buffers take whole: the write is over before the
 *            fork, and nobody uses B again until the server closes it — the session must still
 *            end with close_notify (the last process holding it ends it).
 * Through the shim A's session goes with the handler and B's must stay the server's: its bytes,
 * its end, and no record of B ever sent by anyone else (the wire oracle checks the nonces). */
#include <stdatomic.h>

#include "../host.h"

static const char *script = "read l; echo \"got $l\"; echo done";

#define BIG (16 << 20)
static int bfd;
static atomic_int writing_done;
static const char *tres = "";
static char tbuf[300];

static void *reader(void *arg) {
  char req[256];
  struct timeval tv = {3, 0}; /* a client timeout, as daemons have: bounds the test too */
  setsockopt(bfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  read_line(bfd, req, sizeof(req));
  int n = snprintf(tbuf, sizeof(tbuf), "reply on B to %s", req);
  tres = write_all(bfd, tbuf, (size_t)n) ? "write failed" : "reply written";
  snprintf(tbuf, sizeof(tbuf), "%s", req[0] ? "request read" : "no request (EOF or error)");
  return arg;
}

static size_t big = BIG;

static void *writer(void *arg) {
  unsigned char *buf = malloc(big);
  if (!buf) die("malloc");
  for (size_t i = 0; i < big; i++) buf[i] = (unsigned char)(i % 251);
  ssize_t w = write(bfd, buf, big);
  atomic_store(&writing_done, 1);
  tres = (size_t)w == big ? (big == BIG ? "one write of 16 MiB returned all" : "one write of 256 KiB returned all")
         : w < 0  ? "write failed"
                  : "write returned less";
  free(buf);
  return arg;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: exec_other_conn PORT MODE");
  int lfd = listen_on(atoi(argv[1]));
  const char *mode = argv[2];
  ready();
  bfd = accept(lfd, NULL, NULL);
  if (bfd < 0) die("accept B");
  pthread_t th;
  char req[256];
  if (!strcmp(mode, "serial")) {
    read_line(bfd, req, sizeof(req));
    int n = snprintf(tbuf, sizeof(tbuf), "reply on B to %s", req);
    OBS("B: first request read, reply write %s", RET(write(bfd, tbuf, (size_t)n)));
  } else if (!strcmp(mode, "written")) {
    big = 256 << 10;
    writer(NULL); /* over before the fork */
    OBS("B: %s before the fork", tres);
  } else if (pthread_create(&th, NULL, !strcmp(mode, "reading") ? reader : writer, NULL)) {
    die("pthread_create");
  }
  int afd = accept(lfd, NULL, NULL);
  if (afd < 0) die("accept A");
  if (!strcmp(mode, "writing")) {
    usleep(200 * 1000);
    OBS("B: the writer is inside its write() at the fork: %s",
        atomic_load(&writing_done) ? "no" : "yes");
  }
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    close(lfd);
    if (dup2(afd, 0) != 0 || dup2(afd, 1) != 1) _exit(126);
    close(afd);
    execl("/bin/sh", "sh", "-c", script, (char *)NULL);
    _exit(127);
  }
  OBS("A: parent close %s", RET(close(afd)));
  int st;
  if (waitpid(pid, &st, 0) < 0) die("waitpid");
  OBS("A: handler exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  if (!strcmp(mode, "serial")) {
    ssize_t r = read_line(bfd, req, sizeof(req));
    OBS("B: second request: %s", r > 0 ? "read" : "none (EOF or error)");
    int n = snprintf(tbuf, sizeof(tbuf), "reply on B to %s", req);
    OBS("B: reply write %s", RET(write(bfd, tbuf, (size_t)n)));
  } else if (strcmp(mode, "written")) {
    pthread_join(th, NULL);
    if (!strcmp(mode, "reading")) OBS("B: %s, %s", tbuf, tres);
    else OBS("B: %s", tres);
  }
  OBS("B: close %s", RET(close(bfd)));
  return 0;
}
