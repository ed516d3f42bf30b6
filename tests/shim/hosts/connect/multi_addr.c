/* multi_addr — the textbook client loop (getaddrinfo(3)'s own example, and what most daemons'
 * "connect to host:port" code does): resolve a NAME, try each address in turn, go on to the next
 * when one refuses. The test resolves the name through nss_wrapper to 127.0.0.2 (nothing listens:
 * refused) then 127.0.0.1 (the recorder). The target is configured by that name; the shim must make
 * the connection to the second address TLS too (the landed shim matched the first address only and
 * sent the request in plaintext: the wire oracle fails it).
 * Modes:
 *   block       blocking connects
 *   nonblock    non-blocking connects (poll, SO_ERROR), as event loops do
 *   changed     the name's addresses change after the program started (a DNS update): the hosts
 *               file HOSTS_FILE held only 127.0.0.2 at start; the host rewrites it with both
 *               addresses before resolving, so only a lookup made now knows 127.0.0.1
 *   gethostbyname_changed  the same, resolved with gethostbyname (older daemons)
 * usage: host_multi_addr NAME PORT MODE [HOSTS_FILE] */
#include "client.h"
#include <netdb.h>
#include <sys/stat.h>

/* try_connect connects a new socket to `sa`; returns the fd, or -1 after closing it. */
static int try_connect(const struct sockaddr *sa, socklen_t len, int nb) {
  char ip[64] = "?";
  getnameinfo(sa, len, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST);
  int fd = socket(sa->sa_family, SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) die("socket");
  int r = connect(fd, sa, len);
  int err = r ? errno : 0;
  OBS("connect %s: %s", ip, ret(r, err));
  if (nb && r && err == EINPROGRESS) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    OBS("poll: %s", RET(poll(&p, 1, 5000)));
    OBS("revents: %s", revents_str(p.revents));
    err = so_error(fd);
    OBS("SO_ERROR: %s", errname(err));
  }
  if (!err) return fd;
  close(fd);
  return -1;
}

/* dns_update rewrites the hosts file with both addresses, dated in the future so nss_wrapper
 * (which caches the file by its time) reads it again. */
static void dns_update(const char *path, const char *name) {
  FILE *f = fopen(path, "w");
  if (!f) die("fopen %s", path);
  fprintf(f, "127.0.0.2 %s\n127.0.0.1 %s\n", name, name);
  fclose(f);
  struct timespec ts[2];
  clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec += 10;
  ts[1] = ts[0];
  utimensat(AT_FDCWD, path, ts, 0);
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage");
  const char *name = argv[1], *mode = argv[3];
  int port = atoi(argv[2]);
  int nb = !strcmp(mode, "nonblock");
  int fd = -1;
  if (strstr(mode, "changed")) {
    if (argc < 5) die("usage");
    dns_update(argv[4], name);
  }
  if (!strcmp(mode, "gethostbyname_changed")) {
    struct hostent *h = gethostbyname(name);
    OBS("gethostbyname %s: %s", name, h ? "found" : "not found");
    if (!h) return 1;
    for (char **p = h->h_addr_list; *p && fd < 0; p++) {
      struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
      memcpy(&a.sin_addr, *p, 4);
      fd = try_connect((struct sockaddr *)&a, sizeof(a), 0);
    }
  } else {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int e = getaddrinfo(name, argv[2], &hints, &res);
    OBS("getaddrinfo %s: %s", name, e ? gai_strerror(e) : "0");
    if (e) return 1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
      fd = try_connect(ai->ai_addr, ai->ai_addrlen, nb);
    freeaddrinfo(res);
  }
  if (fd < 0) {
    OBS("no address connected");
    return 1;
  }
  set_nonblock(fd, 0);
  exchange(fd, mode);
  return 0;
}
