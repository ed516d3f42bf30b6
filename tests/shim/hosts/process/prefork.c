/* prefork — the Apache-prefork / pre-forked worker pattern: the parent listens, forks 3 workers
 * that each run a blocking accept() loop on the shared listener, and only supervises. Every
 * connection is accepted (and its TLS session created) in a worker; the parent never touches one.
 * Workers report each request through a pipe (one fixed-size record, atomic), the parent counts 9,
 * then shuts the listener down (every worker's accept() returns EINVAL at once), and reaps them.
 * Proves that sessions accepted in forked children work, end cleanly, and that the parent's view of
 * its listener and its children is the kernel's. */
#include "../host.h"

#define WORKERS 3
#define CLIENTS 9

struct rec {
  int worker;
  int client;  /* from the request line */
  int ok;      /* the reply was written and the close returned 0 */
};

static void worker(int w, int lfd, int rep) {
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) _exit(errno == EINVAL ? 0 : 10 + errno % 100); /* the listener was shut down */
    char req[256], reply[300];
    read_line(fd, req, sizeof(req));
    struct rec r = {.worker = w, .client = -1};
    sscanf(req, "client %d", &r.client);
    int n = snprintf(reply, sizeof(reply), "worker reply to %s", req);
    r.ok = write_all(fd, reply, (size_t)n) == 0;
    r.ok &= close(fd) == 0;
    if (write(rep, &r, sizeof(r)) != sizeof(r)) _exit(3);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: prefork PORT");
  int lfd = listen_on(atoi(argv[1]));
  int p[2];
  if (pipe(p)) die("pipe");
  pid_t kids[WORKERS];
  for (int w = 0; w < WORKERS; w++) {
    kids[w] = fork();
    if (kids[w] < 0) die("fork");
    if (kids[w] == 0) {
      close(p[0]);
      worker(w, lfd, p[1]);
    }
  }
  close(p[1]);
  ready();
  int served[CLIENTS] = {0}, ok = 0, got = 0, per_worker[WORKERS] = {0};
  while (got < CLIENTS) {
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    if (poll(&pf, 1, 10000) <= 0) break;
    struct rec r;
    if (read(p[0], &r, sizeof(r)) != sizeof(r)) break;
    got++;
    if (r.client >= 0 && r.client < CLIENTS) served[r.client]++;
    if (r.worker >= 0 && r.worker < WORKERS) per_worker[r.worker]++;
    ok += r.ok;
  }
  OBS("served %d requests, %d written and closed without error", got, ok);
  for (int c = 0; c < CLIENTS; c++) OBS("client %d served %d time(s)", c, served[c]);
  int busy = 0;
  for (int w = 0; w < WORKERS; w++) busy += per_worker[w] > 0;
  OBS("workers that served: %s", busy > 0 ? "at least one" : "none");
  OBS("shutdown listener: %s", RET(shutdown(lfd, SHUT_RDWR)));
  for (int w = 0; w < WORKERS; w++) {
    int st;
    if (waitpid(kids[w], &st, 0) < 0) die("waitpid");
    if (WIFEXITED(st)) OBS("worker %d exit %d", w, WEXITSTATUS(st));
    else OBS("worker %d killed by signal %d", w, WTERMSIG(st));
  }
  OBS("close listener: %s", RET(close(lfd)));
  return 0;
}
