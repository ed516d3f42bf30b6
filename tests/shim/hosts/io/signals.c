/* signals PORT MODE — signals during blocking calls (item 14 of issue 9): a daemon's timer or a
 * user's Ctrl-C must interrupt a blocking read or write as the kernel does: -1 EINTR (or a partial
 * count) when the handler was installed without SA_RESTART, the call going on under SA_RESTART.
 * A SIGALRM comes 200 ms after the call starts (setitimer); the peer sends its data at ~600 ms.
 * read_eintr / read_restart:  a blocking read, the session already up.
 * read_eintr_handshake:       the same while the peer has not sent its ClientHello yet (the read
 *                             would run the handshake).
 * write_eintr / write_restart: a blocking write of 16 MiB to a peer that does not read; the
 *                             kernel returns the partial count in both cases (bytes were copied);
 *                             a trailer tells the peer how many; the peer checks exactly those
 *                             arrived.
 * thread_kill:                a thread blocked in read() gets SIGINT from pthread_kill (how
 *                             Python delivers KeyboardInterrupt to the main thread's read). */
#include "io.h"

static volatile sig_atomic_t handled;
static void on_signal(int sig) {
  (void)sig;
  handled++;
}

static void handler(int sig, int restart) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sa.sa_flags = restart ? SA_RESTART : 0;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, NULL)) die("sigaction");
}

static void alarm_in(int ms) {
  struct itimerval it = {.it_value = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000}};
  if (setitimer(ITIMER_REAL, &it, NULL)) die("setitimer");
}

static void timed_read(int fd, const char *what, int64_t lo, int64_t hi) {
  char buf[256];
  int64_t t0 = now_ms();
  ssize_t r = read(fd, buf, sizeof(buf));
  int e = errno;
  int64_t ms = now_ms() - t0;
  errno = e;
  OBS("%s: %s%s%.*s", what, RET(r), r > 0 ? ": " : "", chomp(buf, r), buf);
  obs_elapsed("  it returned", ms, lo, hi);
  OBS("  handler ran: %d", (int)handled);
}

static int fd_for_thread;
static void *reader(void *arg) {
  (void)arg;
  timed_read(fd_for_thread, "thread's read, SIGINT by pthread_kill at 200 ms", 100, 1500);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: signals PORT MODE");
  const char *mode = argv[2];
  int restart = strstr(mode, "restart") != NULL;
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int fd = accept_one(lfd);
  if (!strncmp(mode, "read_", 5)) {
    handler(SIGALRM, restart);
    alarm_in(200);
    if (restart) {
      timed_read(fd, "read, SIGALRM at 200 ms with SA_RESTART", 400, 3000);
    } else {
      timed_read(fd, "read, SIGALRM at 200 ms without SA_RESTART", 100, 1500);
      timed_read(fd, "next read", 0, 3000);
    }
  } else if (!strncmp(mode, "write_", 6)) {
    char line[64];
    read_line(fd, line, sizeof(line));
    OBS("request: %.*s", chomp(line, (ssize_t)strlen(line)), line);
    const size_t n = 16 * (size_t)MiB;
    unsigned char *p = big_pattern(14, n);
    handler(SIGALRM, restart);
    alarm_in(200);
    int64_t t0 = now_ms();
    ssize_t r = write(fd, p, n);
    int e = errno;
    int64_t ms = now_ms() - t0;
    OBS("write(16 MiB), peer not reading, SIGALRM at 200 ms%s: %s",
        restart ? " with SA_RESTART" : "", count_class(r, e, n));
    obs_elapsed("  it returned", ms, 100, 1500);
    OBS("  handler ran: %d", (int)handled);
    char trailer[64];
    int m = snprintf(trailer, sizeof(trailer), "\nEND %zd\n", r > 0 ? r : 0);
    OBS("trailer: %s", write_all(fd, trailer, (size_t)m) ? "failed" : "written");
    free(p);
  } else {
    handler(SIGINT, 0);
    fd_for_thread = fd;
    pthread_t th;
    pthread_create(&th, NULL, reader, NULL);
    usleep(200 * 1000);
    pthread_kill(th, SIGINT);
    pthread_join(th, NULL);
    timed_read(fd, "main's read after it", 0, 3000);
  }
  OBS("write: %s", RET(write(fd, "bye\n", 4)));
  OBS("close: %s", RET(close(fd)));
  return 0;
}
