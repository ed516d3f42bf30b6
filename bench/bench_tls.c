/* bench_tls.c — handshakes/s and bulk MB/s of three servers against the same client, in one run:
 * an sli server (libsli.so.1, fd transport), `openssl s_server`, and a bare BoringSSL loop (the
 * ceiling); and handshakes/s of an sli server whose key is behind the private-key callback
 * (sli_config_set_private_key_cb, answered at once with sli_key_sign: the cost of the hook). The client is a bare BoringSSL client (this program's own private copy). TLS 1.3,
 * ECDSA P-256, X25519, AES-128-GCM everywhere. Loopback only; bounded counts.
 *
 * usage: bench_tls CERT KEY [RUNS] [HANDSHAKES] [BULK_MIB] */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sli.h"

static const char *cert_file, *key_file;
static int handshakes = 300, bulk_mib = 512;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 128)) return -1;
  socklen_t l = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return fd;
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  for (int i = 0; i < 200; i++) {
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) return fd;
    usleep(10000);
  }
  return -1;
}

/* ---- servers: each accepts `n` connections; mode 0 handshake+drain, mode 1 same (bulk) ---- */
typedef struct srv {
  int lfd, n;
  SSL_CTX *bare;
  sli_ctx *sli;
} srv;

static int accept_nodelay(int lfd) {
  int fd = accept(lfd, NULL, NULL), one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

static void *sli_server(void *arg) {
  srv *s = arg;
  char *buf = malloc(1 << 16);
  for (int i = 0; i < s->n; i++) {
    int fd = accept_nodelay(s->lfd);
    sli_conn *c;
    if (sli_conn_new_fd(&c, s->sli, fd, NULL, 0) == 0) {
      while (sli_conn_read(c, buf, 1 << 16) > 0) {
      }
      sli_conn_free(c);
    }
    close(fd);
  }
  free(buf);
  return NULL;
}

static void *bare_server(void *arg) {
  srv *s = arg;
  char *buf = malloc(1 << 16);
  for (int i = 0; i < s->n; i++) {
    int fd = accept_nodelay(s->lfd);
    SSL *ssl = SSL_new(s->bare);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1)
      while (SSL_read(ssl, buf, 1 << 16) > 0) {
      }
    SSL_free(ssl);
    close(fd);
  }
  free(buf);
  return NULL;
}

/* ---- the one client ---- */
static SSL_CTX *client_ctx;

static int client_run(int port, int n, size_t bytes) {
  static char chunk[16384];
  for (int i = 0; i < n; i++) {
    int fd = dial(port);
    if (fd < 0) return -1;
    SSL *ssl = SSL_new(client_ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) != 1) {
      ERR_print_errors_fp(stderr);
      return -1;
    }
    for (size_t sent = 0; sent < bytes;) {
      int w = SSL_write(ssl, chunk, sizeof(chunk));
      if (w <= 0) return -1;
      sent += (size_t)w;
    }
    SSL_shutdown(ssl);
    shutdown(fd, SHUT_WR);
    /* wait for the server to finish reading and close */
    char b;
    while (read(fd, &b, 1) > 0) {
    }
    SSL_free(ssl);
    close(fd);
  }
  return 0;
}

static pid_t start_openssl(int port, int naccept) {
  pid_t pid = fork();
  if (pid == 0) {
    char acc[64], na[16];
    snprintf(acc, sizeof(acc), "127.0.0.1:%d", port);
    snprintf(na, sizeof(na), "%d", naccept);
    int devnull = open("/dev/null", 1);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execlp("openssl", "openssl", "s_server", "-accept", acc, "-cert", cert_file, "-key", key_file,
           "-quiet", "-naccept", na, "-tls1_3", (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* kind: 0 sli, 1 openssl s_server, 2 bare BoringSSL, 3 sli with its key by callback (sctx is then
 * that context). Returns ops/s or MB/s. */
static double measure(int kind, int bulk, sli_ctx *sctx, SSL_CTX *bctx) {
  int n = bulk ? 1 : handshakes;
  size_t bytes = bulk ? (size_t)bulk_mib << 20 : 0;
  int port;
  srv s = {.n = n, .bare = bctx, .sli = sctx};
  pthread_t th;
  pid_t pid = 0;
  if (kind == 1) {
    int probe = listen_any(&port);
    close(probe);
    pid = start_openssl(port, n);
    /* wait until it listens, without consuming an accept */
    for (int i = 0; i < 300; i++) {
      char path[64];
      snprintf(path, sizeof(path), "/proc/net/tcp");
      FILE *f = fopen(path, "r");
      char line[256], want[32];
      snprintf(want, sizeof(want), ":%04X 00000000:0000 0A", port);
      int found = 0;
      while (f && fgets(line, sizeof(line), f))
        if (strstr(line, want)) found = 1;
      if (f) fclose(f);
      if (found) break;
      usleep(10000);
    }
  } else {
    s.lfd = listen_any(&port);
    pthread_create(&th, NULL, kind == 0 || kind == 3 ? sli_server : bare_server, &s);
  }
  double t0 = now();
  int rc = client_run(port, n, bytes);
  double dt = now() - t0;
  if (kind == 1) {
    int st;
    waitpid(pid, &st, 0);
  } else {
    pthread_join(th, NULL);
    close(s.lfd);
  }
  if (rc) return -1;
  return bulk ? (double)bytes / (1 << 20) / dt : n / dt;
}

/* sign_now: the private-key callback of kind 3, answering at once. */
static int sign_now(sli_conn *c, const sli_cert *cert, const uint8_t *in, size_t len, void *arg) {
  uint8_t sig[512];
  size_t n = sizeof(sig);
  if (sli_key_sign(arg, sig, &n, in, len)) return SLI_E_INTERNAL;
  return sli_conn_private_key_done(c, sig, n);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_tls CERT KEY [RUNS] [HANDSHAKES] [BULK_MIB]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  cert_file = argv[1];
  key_file = argv[2];
  int runs = argc > 3 ? atoi(argv[3]) : 5;
  if (argc > 4) handshakes = atoi(argv[4]);
  if (argc > 5) bulk_mib = atoi(argv[5]);

  sli_config *cfg = sli_config_new();
  sli_ctx *sctx;
  if (sli_config_set_keypair_file(cfg, cert_file, key_file, NULL) ||
      sli_config_set_session_resumption(cfg, 0) || sli_ctx_new_server(&sctx, cfg, 0)) {
    fprintf(stderr, "sli: %s\n", sli_config_error(cfg));
    return 1;
  }
  sli_config *acfg = sli_config_new();
  sli_ctx *actx;
  sli_key *key;
  if (sli_key_load_file(&key, key_file, NULL, NULL, 0) ||
      sli_config_add_cert_file_async_key(acfg, cert_file) ||
      sli_config_set_private_key_cb(acfg, sign_now, key) ||
      sli_config_set_session_resumption(acfg, 0) || sli_ctx_new_server(&actx, acfg, 0)) {
    fprintf(stderr, "sli (key by callback): %s\n", sli_last_error());
    return 1;
  }
  SSL_CTX *bctx = SSL_CTX_new(TLS_method());
  SSL_CTX_set_min_proto_version(bctx, TLS1_3_VERSION);
  SSL_CTX_set_options(bctx, SSL_OP_NO_TICKET);
  if (!SSL_CTX_use_certificate_chain_file(bctx, cert_file) ||
      !SSL_CTX_use_PrivateKey_file(bctx, key_file, SSL_FILETYPE_PEM))
    return 1;
  client_ctx = SSL_CTX_new(TLS_method());
  SSL_CTX_set_min_proto_version(client_ctx, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);

  const char *names[4] = {"sli server", "openssl s_server", "bare BoringSSL", "sli, key by callback"};
  double hs[4][64], bw[4][64];
  if (runs > 64) runs = 64;
  for (int r = 0; r < runs; r++) {
    for (int k = 0; k < 4; k++) { /* interleaved, so drift hits all alike */
      hs[k][r] = measure(k, 0, k == 3 ? actx : sctx, bctx);
      bw[k][r] = k == 3 ? 0 : measure(k, 1, sctx, bctx);
    }
  }
  printf("| server | handshakes/s (median of %d, %d each) | bulk MB/s (median of %d, %d MiB each) |\n",
         runs, handshakes, runs, bulk_mib);
  printf("|---|---|---|\n");
  double med_hs[4], med_bw[4];
  for (int k = 0; k < 4; k++) {
    qsort(hs[k], (size_t)runs, sizeof(double), cmp);
    qsort(bw[k], (size_t)runs, sizeof(double), cmp);
    med_hs[k] = hs[k][runs / 2];
    med_bw[k] = bw[k][runs / 2];
    if (k == 3)
      printf("| %s | %.0f (%.0f–%.0f) | — |\n", names[k], med_hs[k], hs[k][0], hs[k][runs - 1]);
    else
      printf("| %s | %.0f | %.0f |\n", names[k], med_hs[k], med_bw[k]);
  }
  printf("\nsli / openssl s_server handshakes: %.2fx; sli / bare BoringSSL bulk: %.2fx; "
         "key by callback / own key handshakes: %.2fx (sli server %.0f–%.0f)\n",
         med_hs[0] / med_hs[1], med_bw[0] / med_bw[2], med_hs[3] / med_hs[0], hs[0][0],
         hs[0][runs - 1]);
  return 0;
}
