/* common.c — helpers shared by the subcommands: TLS flags onto a config, exit codes, sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* --flag -> SLI_* setting: the rows of SLI_SETTING_MAP (api/sli.h), the names the shim reads. */
static const struct {
  const char *flag, *option, *value, *help;
} tls_flags[] = {
#define X(id, name, flag, value, help) {flag, name, value, help},
    SLI_SETTING_MAP(X)
#undef X
};
#define N_TLS_FLAGS (sizeof(tls_flags) / sizeof(tls_flags[0]))

/* unlocks_keys: the settings applied before all others (the password of the keys after them). */
static int unlocks_keys(const char *option) {
  return !strcmp(option, "SLI_KEY_PASSWORD_FILE") || !strcmp(option, "SLI_PASSWORD_FILE");
}

int cli_take_tls_flag(cli_tls_opts *o, int argc, char **argv, int *i) {
  for (size_t k = 0; k < N_TLS_FLAGS; k++) {
    if (strcmp(argv[*i], tls_flags[k].flag) != 0) continue;
    int takes_value = tls_flags[k].value[0] != 0;
    if (o->n >= 32) { /* said, never dropped */
      fprintf(stderr, "sli: at most 32 TLS flags\n");
      return -1;
    }
    if (takes_value && *i + 1 >= argc) return -1;
    o->names[o->n] = tls_flags[k].option;
    o->values[o->n++] = takes_value ? argv[++*i] : "1";
    return 1;
  }
  return 0;
}

int cli_apply_tls_flags(const cli_tls_opts *o, sli_config *cfg) {
  for (int pass = 0; pass < 2; pass++) { /* key passwords first, then the command line's order */
    for (int k = 0; k < o->n; k++) {
      if ((pass == 0) != unlocks_keys(o->names[k])) continue;
      if (!strcmp(o->names[k], "SLI_INSECURE") && !strcmp(o->values[k], "1"))
        fprintf(stderr, "sli: WARNING: --insecure: the server's certificate is NOT verified\n");
      if (!strcmp(o->names[k], "SLI_KEY")) cli_check_key_mode(NULL, o->values[k]);
      int rc = sli_config_set_option(cfg, o->names[k], o->values[k]);
      if (rc) {
        const char *m = sli_config_error(cfg);
        fprintf(stderr, "sli: %s: %s\n", sli_err_name(rc), m ? m : sli_strerror(rc));
        return rc;
      }
    }
  }
  return 0;
}

void cli_print_tls_flags(FILE *f) {
  fprintf(f, "TLS settings (in parentheses: the same setting for the shim or an SLI_CONFIG file):\n");
  for (size_t k = 0; k < N_TLS_FLAGS; k++)
    fprintf(f, "  %s%s%s  (%s%s)\n      %s\n", tls_flags[k].flag, tls_flags[k].value[0] ? " " : "",
            tls_flags[k].value, tls_flags[k].option, tls_flags[k].value[0] ? "" : "=1",
            tls_flags[k].help);
}

int cli_exit_code(int code) {
  switch (sli_error_category(code)) {
    case SLI_ECAT_OK: return EXIT_OK;
    case SLI_ECAT_CONFIG: case SLI_ECAT_USAGE: return EXIT_CONFIG;
    case SLI_ECAT_VERIFY: return EXIT_VERIFY;
    case SLI_ECAT_CLOSED: case SLI_ECAT_ALERT: case SLI_ECAT_PROTO: return EXIT_TLS;
    case SLI_ECAT_IO: return code == SLI_E_TIMEOUT ? EXIT_TLS : EXIT_FAIL;
    case SLI_ECAT_CRYPTO: return EXIT_CRYPTO;
    default: return EXIT_FAIL;
  }
}

int cli_error(const char *cmd, int code, const char *msg) {
  fprintf(stderr, "sli %s: %s: %s\n", cmd, sli_err_name(code), msg ? msg : sli_strerror(code));
  return cli_exit_code(code);
}

int cli_is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

static int split_addr(const char *addr, char *host, size_t cap, char *port, size_t pcap) {
  const char *colon;
  if (addr[0] == '[') {
    const char *rb = strchr(addr, ']');
    if (!rb || rb[1] != ':') return -1;
    snprintf(host, cap, "%.*s", (int)(rb - addr - 1), addr + 1);
    colon = rb + 1;
  } else {
    colon = strrchr(addr, ':');
    if (!colon) return -1;
    snprintf(host, cap, "%.*s", (int)(colon - addr), addr);
  }
  snprintf(port, pcap, "%s", colon + 1);
  return port[0] ? 0 : -1;
}

static int listen_on(const char *addr, int *out_port, int reuseport);

int cli_listen(const char *addr, int *out_port) { return listen_on(addr, out_port, 0); }

int cli_listen_shared(const char *addr, int *out_port) { return listen_on(addr, out_port, 1); }

static int listen_on(const char *addr, int *out_port, int reuseport) {
  char host[256], port[32];
  if (split_addr(addr, host, sizeof(host), port, sizeof(port))) {
    fprintf(stderr, "sli: '%s' is not HOST:PORT\n", addr);
    return -1;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *res;
  int e = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (e) {
    fprintf(stderr, "sli: cannot resolve '%s': %s\n", addr, gai_strerror(e));
    return -1;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 512)) {
    fprintf(stderr, "sli: cannot listen on '%s': %s\n", addr, strerror(errno));
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return -1;
  }
  freeaddrinfo(res);
  if (out_port) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
  }
  return fd;
}

int cli_connect(const char *addr, char *out_host, size_t host_cap) {
  char host[256], port[32];
  if (split_addr(addr, host, sizeof(host), port, sizeof(port))) {
    fprintf(stderr, "sli: '%s' is not HOST:PORT\n", addr);
    return -1;
  }
  if (out_host) snprintf(out_host, host_cap, "%s", host);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res, *ai;
  int e = getaddrinfo(host, port, &hints, &res);
  if (e) {
    fprintf(stderr, "sli: cannot resolve '%s': %s\n", addr, gai_strerror(e));
    return -1;
  }
  int fd = -1, err = 0;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    err = errno;
    if (fd >= 0) close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) fprintf(stderr, "sli: cannot connect to '%s': %s\n", addr, strerror(err));
  return fd;
}

static void print_time(const char *label, long long t, const char *indent) {
  time_t tt = (time_t)t;
  struct tm tm;
  char buf[64];
  gmtime_r(&tt, &tm);
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  printf("%s%-12s %s\n", indent, label, buf);
}

void cli_print_cert(const sli_cert *c, const char *indent) {
  printf("%s%-12s %s\n", indent, "subject:", sli_cert_subject(c));
  printf("%s%-12s %s\n", indent, "issuer:", sli_cert_issuer(c));
  print_time("not before:", (long long)sli_cert_not_before(c), indent);
  print_time("not after:", (long long)sli_cert_not_after(c), indent);
  long long now = (long long)time(NULL);
  const char *state = now < sli_cert_not_before(c)  ? "NO (not yet valid)"
                      : now > sli_cert_not_after(c) ? "NO (expired)"
                                                    : "yes";
  printf("%s%-12s %s\n", indent, "valid now:", state);
  printf("%s%-12s", indent, "SANs:");
  for (size_t i = 0; i < sli_cert_san_count(c); i++)
    printf("%s%s", i ? ", " : " ", sli_cert_san(c, i));
  printf("%s\n", sli_cert_san_count(c) ? "" : " (none)");
  printf("%s%-12s %s\n", indent, "SHA-256:", sli_cert_fingerprint_sha256(c));
}
