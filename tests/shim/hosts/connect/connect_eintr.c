/* connect_eintr — a blocking connect() interrupted by a signal (a daemon with an alarm or timer
 * handler installed without SA_RESTART). connect returns -1 EINTR but the kernel goes on
 * connecting: the connection is made anyway, and the host goes on with it. The shim must have
 * made it a TLS connection all the same (the landed shim only did so when connect returned 0 or
 * EINPROGRESS, so the request went out in plaintext: the wire oracle fails it).
 *
 * The peer script makes the connect slow: it fills the recorder's accept queue (backlog 0 and one
 * silent connection) before creating SYNC_FILE, so the host's SYN is dropped and retransmitted
 * after 1 s; it frees the queue 0.5 s later. SIGALRM comes 150 ms into the connect.
 * Modes, after the EINTR:
 *   poll        poll(POLLOUT) until connected, SO_ERROR, then the exchange
 *   again_nb    O_NONBLOCK, connect again (EALREADY), poll, connect (0), connect (EISCONN)
 *   again_block connect again, blocking (waits, 0), connect again (EISCONN)
 *   write       write the request at once (a blocking write waits for the connection)
 *   giveup      close the socket (the connect "timed out"), connect a new one, blocking
 *   restart     the handler has SA_RESTART: connect is restarted, returns 0 once connected
 *   sndtimeo    no signal: SO_SNDTIMEO (150 ms) bounds the connect, which then returns -1
 *               EINPROGRESS (the kernel goes on connecting); then as poll
 * usage: host_connect_eintr PORT MODE SYNC_FILE */

#include "client.h"
#include <sys/time.h>

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static void wait_for_file(const char *path) {
  for (int i = 0; i < 500; i++) {
    if (access(path, F_OK) == 0) {
      unlink(path);
      return;
    }
    usleep(10 * 1000);
  }
  die("no %s after 5 s", path);
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage");
  int port = atoi(argv[1]);
  const char *mode = argv[2];
  /* no SA_RESTART, except in mode restart */
  struct sigaction sa = {.sa_handler = on_alarm};
  if (!strcmp(mode, "restart")) sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  struct sockaddr_in a = loopback4("127.0.0.1", port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  wait_for_file(argv[3]);

  struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = 150 * 1000}};
  if (!strcmp(mode, "sndtimeo")) {
    struct timeval tv = {.tv_usec = 150 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  } else {
    setitimer(ITIMER_REAL, &it, NULL);
  }
  int64_t t0 = now_ms();
  OBS("connect: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  if (!strcmp(mode, "restart")) obs_elapsed("connect returned", now_ms() - t0, 400, 4000);
  else obs_elapsed("connect returned", now_ms() - t0, 100, 900);
  OBS("alarms: %d", (int)alarms);

  if (!strcmp(mode, "poll") || !strcmp(mode, "sndtimeo")) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
    obs_elapsed("connected", now_ms() - t0, 400, 4000);
    OBS("SO_ERROR: %s", errname(so_error(fd)));
  } else if (!strcmp(mode, "again_nb")) {
    set_nonblock(fd, 1);
    OBS("connect again: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
    OBS("connect once connected: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
    OBS("connect once more: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
    set_nonblock(fd, 0);
  } else if (!strcmp(mode, "again_block")) {
    OBS("connect again: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
    obs_elapsed("connected", now_ms() - t0, 400, 4000);
    OBS("connect once more: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  } else if (!strcmp(mode, "giveup")) {
    OBS("close: %s", RET(close(fd)));
    fd = socket(AF_INET, SOCK_STREAM, 0);
    OBS("connect a new socket: %s", RET(connect(fd, (struct sockaddr *)&a, sizeof(a))));
  } else if (!strcmp(mode, "write") || !strcmp(mode, "restart")) {
    /* a naive client: ignores the EINTR and writes; the kernel waits for the connection */
  } else {
    die("mode %s", mode);
  }
  exchange(fd, mode);
  return 0;
}
