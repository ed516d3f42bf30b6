/* fork_while_serving — a threaded server that forks while its threads are serving (redis BGSAVE,
 * a threaded daemon that runs helpers, a supervisor thread that respawns something): 4 connections,
 * each served by its own thread for 20 request/reply round trips, while the main thread forks 20
 * children that end at once (alternately exit(0) and _exit(0)) and reaps them. The children touch
 * no connection. Proves that forking never disturbs sessions in use by other threads (no deadlock
 * in the fork handlers, no session lost to a child that never used it, no close_notify from an
 * exiting child), and the peer sees every reply and a clean end. */
#include "../host.h"

#define CONNS 4
#define ROUNDS 20
#define FORKS 20

struct job {
  int fd;
  int id;
  int ok;
};

static void *serve(void *arg) {
  struct job *j = arg;
  char req[256], reply[300];
  for (int r = 0; r < ROUNDS; r++) {
    if (read_line(j->fd, req, sizeof(req)) <= 0) break;
    int c, k;
    if (sscanf(req, "client %d round %d", &c, &k) == 2) j->id = c;
    int n = snprintf(reply, sizeof(reply), "served %s", req);
    if (write_all(j->fd, reply, (size_t)n)) break;
    j->ok++;
  }
  if (close(j->fd)) j->ok = -1;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: fork_while_serving PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  struct job jobs[CONNS];
  pthread_t th[CONNS];
  for (int i = 0; i < CONNS; i++) {
    jobs[i] = (struct job){.fd = accept(lfd, NULL, NULL), .id = -1};
    if (jobs[i].fd < 0) die("accept");
    if (pthread_create(&th[i], NULL, serve, &jobs[i])) die("pthread_create");
  }
  int exits = 0;
  for (int f = 0; f < FORKS; f++) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      if (f % 2) _exit(7);
      exit(7);
    }
    int st;
    if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7) exits++;
    usleep(3000);
  }
  OBS("forked %d children, %d exited with 7", FORKS, exits);
  for (int i = 0; i < CONNS; i++) pthread_join(th[i], NULL);
  for (int id = 0; id < CONNS; id++)
    for (int i = 0; i < CONNS; i++)
      if (jobs[i].id == id) OBS("client %d: %d round trips, close %s", id, jobs[i].ok,
                                jobs[i].ok < 0 ? "failed" : "0");
  return 0;
}
