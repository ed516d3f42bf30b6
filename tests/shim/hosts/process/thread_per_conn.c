/* thread_per_conn — the classic threaded server (one thread per accepted connection, as in many
 * small daemons and thread-pool-less Java-style servers): 8 clients are accepted, each gets its own
 * thread that reads one request line, waits until all 8 threads have their request (so the 8 TLS
 * sessions are provably in use at once), writes the reply and closes. Proves that concurrent
 * sessions in one process stay separate: every peer gets its own reply and a clean end, and the
 * wire oracle sees only TLS records at consecutive sequence numbers on every connection. */
#include "../host.h"

#define N 8

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int arrived;

struct job {
  int fd;
  int id;             /* the client's number, from its request */
  int all_at_once;    /* every thread had its request before any replied */
  char wr[64], cl[64];
};

static void *serve(void *arg) {
  struct job *j = arg;
  char req[256], reply[300];
  read_line(j->fd, req, sizeof(req));
  if (sscanf(req, "client %d", &j->id) != 1) j->id = -1;
  /* wait (bounded) until every connection has been read from */
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 8;
  pthread_mutex_lock(&mu);
  arrived++;
  pthread_cond_broadcast(&cv);
  while (arrived < N && pthread_cond_timedwait(&cv, &mu, &dl) == 0) {}
  j->all_at_once = arrived == N;
  pthread_mutex_unlock(&mu);
  int n = snprintf(reply, sizeof(reply), "thread reply to %s", req);
  snprintf(j->wr, sizeof(j->wr), "%s", RET(write(j->fd, reply, (size_t)n)));
  snprintf(j->cl, sizeof(j->cl), "%s", RET(close(j->fd)));
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: thread_per_conn PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  struct job jobs[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    jobs[i].fd = accept(lfd, NULL, NULL);
    if (jobs[i].fd < 0) die("accept");
    if (pthread_create(&th[i], NULL, serve, &jobs[i])) die("pthread_create");
  }
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  /* report in client order (threads finish in any order) */
  for (int id = 0; id < N; id++)
    for (int i = 0; i < N; i++)
      if (jobs[i].id == id)
        OBS("client %d: concurrent %s, write %s, close %s", id, jobs[i].all_at_once ? "yes" : "no",
            jobs[i].wr, jobs[i].cl);
  return 0;
}
