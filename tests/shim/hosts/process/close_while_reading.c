/* close_while_reading MODE FILE — one thread is inside a blocking call on a connection while
 * another thread ends the fd (a worker blocked on a client while the main thread times the client
 * out or shuts the server down), then reuses the number at once:
 *   close:    a thread blocks in read(); the main thread close()s the fd after ~200 ms and opens
 *             FILE, which gets the same number. On Linux close() does not wake a read() in
 *             progress: the call keeps the socket alive and returns the data the peer sends at
 *             ~400 ms; when it returns the last reference goes and the peer sees the end.
 *   dup2:     the same, but the main thread dup2()s FILE over the fd instead of close + open.
 *   shutdown: the main thread calls shutdown(SHUT_RDWR) after ~200 ms, which wakes the reader with
 *             0 (end of input), then close()s and reopens the number.
 *   writing:  a thread is inside one blocking write() of 16 MiB (bytes i % 251) to a peer that
 *             reads only after ~500 ms; the main thread close()s the fd at ~200 ms and reuses the
 *             number. The write goes on, returns the full count, and the peer gets every byte and
 *             a clean end.
 * Through the shim the connection must outlive the close for the call in progress exactly as the
 * kernel's file does (the landed shim freed it under the reader: heap-use-after-free under ASan, or
 * a hang), and the reused number must be the new file. */
#include "../host.h"

#define BIG (16 << 20)

static int cfd;
static char got[128];
static const char *rr;
static int64_t t_read;
static volatile int call_done;

static void *reader(void *arg) {
  char buf[100];
  ssize_t r = read(cfd, buf, sizeof(buf) - 1);
  int e = errno;
  t_read = now_ms();
  rr = ret(r, e);
  if (r > 0) snprintf(got, sizeof(got), "'%.*s'", (int)r, buf);
  return arg;
}

static void *writer(void *arg) {
  unsigned char *buf = malloc(BIG);
  if (!buf) die("malloc");
  for (size_t i = 0; i < BIG; i++) buf[i] = (unsigned char)(i % 251);
  ssize_t w = write(cfd, buf, BIG);
  int e = errno;
  t_read = now_ms();
  __atomic_store_n(&call_done, 1, __ATOMIC_SEQ_CST);
  rr = w == BIG ? "all 16 MiB" : ret(w, e);
  free(buf);
  return arg;
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage: close_while_reading PORT MODE FILE");
  int lfd = listen_on(atoi(argv[1]));
  const char *mode = argv[2], *path = argv[3];
  ready();
  cfd = accept(lfd, NULL, NULL);
  if (cfd < 0) die("accept");
  int fd = cfd, writing = !strcmp(mode, "writing");
  int64_t t0 = now_ms();
  pthread_t th;
  if (pthread_create(&th, NULL, writing ? writer : reader, NULL)) die("pthread_create");
  usleep(200 * 1000);
  if (writing) OBS("writer inside its write() at the close: %s",
                   __atomic_load_n(&call_done, __ATOMIC_SEQ_CST) ? "no" : "yes");
  int nfd;
  if (!strcmp(mode, "dup2")) {
    int tmp = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    OBS("dup2 a file over the fd: %s", RET(dup2(tmp, fd)));
    close(tmp);
    nfd = fd;
  } else {
    if (!strcmp(mode, "shutdown")) OBS("shutdown(SHUT_RDWR): %s", RET(shutdown(fd, SHUT_RDWR)));
    OBS("close: %s", RET(close(fd)));
    nfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    OBS("open gets the closed number: %s", nfd == fd ? "yes" : "no");
  }
  OBS("file write: %s", RET(write(nfd, "file text", 9)));
  pthread_join(th, NULL);
  if (writing) {
    OBS("writer: write returned %s", rr);
    obs_elapsed("writer returned after", t_read - t0, 400, 8000);
  } else {
    OBS("reader: read returned %s %s", rr, got);
    if (!strcmp(mode, "shutdown")) obs_elapsed("reader returned after", t_read - t0, 150, 1500);
    else obs_elapsed("reader returned after", t_read - t0, 100, 3000); /* the data comes ~400 ms after
                                                                          the connect; accept may be late */
  }
  char buf[32] = {0};
  lseek(nfd, 0, SEEK_SET);
  OBS("file read back: %s '%s'", RET(read(nfd, buf, sizeof(buf) - 1)), buf);
  close(nfd);
  unlink(path);
  return 0;
}
