/* targets.c — SLI_CLIENT_TARGETS: which connects become TLS clients. A target HOST:PORT matches
 * every address HOST resolves to — at start, and again each time the host itself resolves HOST with
 * getaddrinfo (so a client that falls back from a refused first address to the next one still gets
 * TLS), or with gethostbyname* — and IPv4 addresses match in either form (10.0.0.5 and
 * ::ffff:10.0.0.5). */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shim.h"

static shim_target targets[32];
int shim_n_targets;
static pthread_mutex_t add_lock = PTHREAD_MUTEX_INITIALIZER;

/* norm writes `sa` as an IPv6 address (IPv4 as ::ffff:a.b.c.d); returns 0 if it is not inet. */
static int norm(const struct sockaddr *sa, socklen_t len, struct sockaddr_in6 *out) {
  memset(out, 0, sizeof(*out));
  out->sin6_family = AF_INET6;
  if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    out->sin6_port = s4->sin_port;
    out->sin6_addr.s6_addr[10] = out->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&out->sin6_addr.s6_addr[12], &s4->sin_addr, 4);
    return 1;
  }
  if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    out->sin6_port = s6->sin6_port;
    out->sin6_addr = s6->sin6_addr;
    return 1;
  }
  return 0;
}

/* add_addr records an address of target `t` (any port in `sa`; the target's port is used). */
static void add_addr(shim_target *t, const struct sockaddr *sa, socklen_t len) {
  struct sockaddr_in6 a;
  if (!norm(sa, len, &a)) return;
  a.sin6_port = htons(t->port);
  pthread_mutex_lock(&add_lock);
  int n = atomic_load(&t->n_addrs);
  int dup = 0;
  for (int i = 0; i < n && !dup; i++)
    dup = memcmp(&t->addrs[i].sin6_addr, &a.sin6_addr, 16) == 0;
  if (!dup && n < TARGET_ADDRS) {
    t->addrs[n] = a;
    atomic_store(&t->n_addrs, n + 1); /* readers see the address before the count */
  }
  pthread_mutex_unlock(&add_lock);
}

const shim_target *shim_target_match(const struct sockaddr *sa, socklen_t len) {
  struct sockaddr_in6 a;
  if (!sa || !norm(sa, len, &a)) return NULL;
  for (int i = 0; i < shim_n_targets; i++) {
    shim_target *t = &targets[i];
    if (htons(t->port) != a.sin6_port) continue;
    int n = atomic_load(&t->n_addrs);
    for (int j = 0; j < n; j++)
      if (memcmp(&t->addrs[j].sin6_addr, &a.sin6_addr, 16) == 0) return t;
  }
  return NULL;
}

int targets_parse(const char *value) {
  char buf[4096];
  snprintf(buf, sizeof(buf), "%s", value);
  for (char *save, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    if (shim_n_targets == 32) {
      shim_log(LOG_ERR_, "SLI_CLIENT_TARGETS: more than 32 targets");
      return -1;
    }
    shim_target *t = &targets[shim_n_targets];
    char *eq = strchr(tok, '=');
    if (eq) *eq = 0;
    char *colon = strrchr(tok, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || !end || *end || port <= 0 || port > 65535) {
      shim_log(LOG_ERR_, "SLI_CLIENT_TARGETS: '%s' is not HOST:PORT[=SERVERNAME]", tok);
      return -1;
    }
    *colon = 0;
    char *host = tok;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
      host[hl - 1] = 0;
      host++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res;
    int e = real.getaddrinfo ? real.getaddrinfo(host, NULL, &hints, &res)
                             : getaddrinfo(host, NULL, &hints, &res);
    if (e) {
      shim_log(LOG_ERR_, "SLI_CLIENT_TARGETS: cannot resolve '%s': %s", host, gai_strerror(e));
      return -1;
    }
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->port = (uint16_t)port;
    const char *env_sn = shim_setting("SLI_SERVERNAME");
    snprintf(t->servername, sizeof(t->servername), "%s",
             eq ? eq + 1 : (env_sn && *env_sn) ? env_sn : host);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) add_addr(t, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    shim_n_targets++;
  }
  return 0;
}

/* getaddrinfo: when the host resolves a target's name, the addresses it gets are that target's
 * too (DNS may answer differently now than at start, or give several addresses). */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  ENSURE(getaddrinfo);
  int r = real.getaddrinfo(node, service, hints, res);
  if (r != 0 || !node || !shim_n_targets || !res) return r;
  for (int i = 0; i < shim_n_targets; i++) {
    shim_target *t = &targets[i];
    if (strcasecmp(t->host, node) != 0) continue;
    for (struct addrinfo *ai = *res; ai; ai = ai->ai_next)
      if (ai->ai_addr) add_addr(t, ai->ai_addr, ai->ai_addrlen);
  }
  return r;
}

/* The older resolvers: the addresses of a hostent for `name`. */
static void learn_hostent(const char *name, const struct hostent *h) {
  if (!h || !name || !shim_n_targets) return;
  for (int i = 0; i < shim_n_targets; i++) {
    shim_target *t = &targets[i];
    int match = strcasecmp(t->host, name) == 0;
    for (char **a = h->h_aliases; !match && a && *a; a++) match = strcasecmp(t->host, *a) == 0;
    if (!match && h->h_name) match = strcasecmp(t->host, h->h_name) == 0;
    if (!match) continue;
    for (char **p = h->h_addr_list; p && *p; p++) {
      if (h->h_addrtype == AF_INET) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        memcpy(&sa.sin_addr, *p, 4);
        add_addr(t, (struct sockaddr *)&sa, sizeof(sa));
      } else if (h->h_addrtype == AF_INET6) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
        memcpy(&sa.sin6_addr, *p, 16);
        add_addr(t, (struct sockaddr *)&sa, sizeof(sa));
      }
    }
  }
}

#define NEXT(fn) static __typeof__(fn) *real_##fn; \
  if (!real_##fn) real_##fn = (__typeof__(fn) *)dlsym(RTLD_NEXT, #fn)

struct hostent *gethostbyname(const char *name) {
  NEXT(gethostbyname);
  struct hostent *h = real_gethostbyname(name);
  learn_hostent(name, h);
  return h;
}

struct hostent *gethostbyname2(const char *name, int af) {
  NEXT(gethostbyname2);
  struct hostent *h = real_gethostbyname2(name, af);
  learn_hostent(name, h);
  return h;
}

int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                    struct hostent **result, int *h_errnop) {
  NEXT(gethostbyname_r);
  int r = real_gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
  if (r == 0 && result) learn_hostent(name, *result);
  return r;
}

int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf, size_t buflen,
                     struct hostent **result, int *h_errnop) {
  NEXT(gethostbyname2_r);
  int r = real_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
  if (r == 0 && result) learn_hostent(name, *result);
  return r;
}
