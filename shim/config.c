/* config.c — the shim's settings: its own (shim_settings: SLI_SERVER_PORTS, SLI_CLIENT_TARGETS —
 * parsed in targets.c —, SLI_MODE, SLI_LOG...) and every setting of the engine (SLI_SETTING_MAP in
 * api/sli.h, through sli_config_set_option, the same parser the CLI uses), from the environment or
 * an SLI_CONFIG file of NAME=value lines.
 * An invalid configuration is reported once and fails closed (see lifecycle.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim.h"

shim_config cfg;

/* SLI_LOG_TARGET: log lines go to fd 2 ("stderr", the default) or, one datagram each, to a syslog
 * socket ("syslog": /dev/log, which journald and rsyslog read; "syslog:PATH" another, a chroot's).
 * The socket is opened and closed for each line: no descriptor of ours stays in the host, where it
 * could be closed and its number reused for a connection that a later line would then reach. */
static char syslog_path[108]; /* "" : stderr */

static int parse_target(const char *v) {
  if (!strcmp(v, "stderr")) {
    syslog_path[0] = 0;
    return 0;
  }
  const char *path = !strcmp(v, "syslog") ? "/dev/log" : !strncmp(v, "syslog:", 7) ? v + 7 : NULL;
  if (!path || !*path || strlen(path) >= sizeof(syslog_path)) return -1;
  snprintf(syslog_path, sizeof(syslog_path), "%s", path);
  return 0;
}

static void syslog_line(int level, const char *msg) {
  static const int severity[] = {3, 4, 6, 7}; /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", syslog_path);
  char line[1200];
  int n = snprintf(line, sizeof(line), "<%d>sli-preload[%d]: %s", 3 * 8 + severity[level],
                   (int)getpid(), msg); /* facility daemon */
  if (n <= 0 || !real.socket || !real.sendto || !real.close) return;
  int fd = real.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  real.sendto(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1,
              MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&a, sizeof(a));
  real.close(fd);
}

void shim_log(int level, const char *fmt, ...) {
  if (level > cfg.log_level) return;
  static const char *names[] = {"error", "warn", "info", "debug"};
  if (syslog_path[0]) {
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "%s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(msg)) vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    int saved = errno;
    syslog_line(level, msg);
    errno = saved;
    return;
  }
  if (shim_is_tls(2)) return; /* fd 2 is a TLS connection (a daemon that closed stderr): never
                                 write log lines into it */
  char line[1024];
  int n = snprintf(line, sizeof(line), "sli-preload[%d] %s: ", (int)getpid(), names[level]);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof(line)) vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = strlen(line);
  if (len < sizeof(line) - 1) line[len++] = '\n';
  int saved = errno;
  if (real.write) real.write(2, line, len);
  errno = saved;
}

/* shim_failure_logged: at most FAILURES_PER_SECOND failed connections a second are logged, so
 * that a scan cannot flood the host's log; the first line of the next second says how many were
 * left out. Returns 1 to log this one. */
#define FAILURES_PER_SECOND 20
int shim_failure_logged(void) {
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static int64_t second;
  static unsigned shown, hidden;
  if (pthread_mutex_trylock(&mu)) return 1; /* contended (or inherited locked by a fork): log */
  int64_t now = shim_now_ms() / 1000;
  unsigned left_out = 0;
  if (now != second) {
    left_out = hidden;
    second = now;
    shown = hidden = 0;
  }
  int ok = shown < FAILURES_PER_SECOND;
  if (ok) shown++;
  else hidden++;
  pthread_mutex_unlock(&mu);
  if (left_out)
    shim_log(LOG_WARN_, "%u more failed connections in the last second were not logged", left_out);
  return ok;
}

int shim_port_is_tls(uint16_t port) {
  for (int i = 0; i < cfg.n_ports; i++)
    if (cfg.ports[i] == port) return 1;
  return 0;
}

/* One setting, from the environment or the file. Returns 0, or -1 after logging the reason. */
static int apply(sli_config *sc, const char *name, const char *value) {
  if (!strcmp(name, "SLI_SERVER_PORTS")) {
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", value);
    for (char *save, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
      char *end;
      long p = strtol(tok, &end, 10);
      if (*end || p <= 0 || p > 65535 || cfg.n_ports == 64) {
        shim_log(LOG_ERR_, "SLI_SERVER_PORTS: '%s' is not a port number", tok);
        cfg.all_ports = 1;
        return -1;
      }
      cfg.ports[cfg.n_ports++] = (uint16_t)p;
    }
    return 0;
  }
  if (!strcmp(name, "SLI_CLIENT_TARGETS")) return targets_parse(value);
  if (!strcmp(name, "SLI_MODE")) {
    if (strcmp(value, "require") && strcmp(value, "optional")) {
      shim_log(LOG_ERR_, "SLI_MODE: '%s' is not require or optional", value);
      return -1;
    }
    cfg.optional = !strcmp(value, "optional");
    return 0;
  }
  if (!strcmp(name, "SLI_SNIFF_TIMEOUT_MS")) {
    cfg.sniff_timeout_ms = atoi(value);
    return 0;
  }
  if (!strcmp(name, "SLI_RELOAD_SIGNAL")) return shim_reload_signal(value);
  if (!strcmp(name, "SLI_METRICS")) return shim_metrics_setting(value);
  if (!strcmp(name, "SLI_LOG_TARGET")) {
    if (!parse_target(value)) return 0;
    shim_log(LOG_ERR_, "SLI_LOG_TARGET: '%s' is not stderr, syslog or syslog:PATH", value);
    return -1;
  }
  if (!strcmp(name, "SLI_LOG") || !strcmp(name, "SLI_CONFIG") || !strcmp(name, "SLI_SERVERNAME") ||
      !strcmp(name, "SLI_STATE_DIR"))
    return 0; /* handled elsewhere */
  if (!strcmp(name, "SLI_INSECURE") && !strcmp(value, "1"))
    shim_log(LOG_WARN_, "SLI_INSECURE=1: TLS client connections do NOT verify the server "
                        "(insecure: anyone can impersonate it)");
  int rc = sli_config_set_option(sc, name, value);
  if (rc) {
    shim_log(LOG_ERR_, "%s: %s: %s", name, sli_err_name(rc),
             sli_config_error(sc) ? sli_config_error(sc) : sli_strerror(rc));
    return -1;
  }
  return 0;
}

/* The shim's own settings, applied first, in this order (the README's and sli-preload(8)'s tables
 * list the same); SLI_STATE_DIR is read by libsli itself (the default identity's directory). */
static const char *const shim_settings[] = {
    "SLI_LOG",  "SLI_LOG_TARGET",       "SLI_CONFIG",    "SLI_SERVER_PORTS", "SLI_CLIENT_TARGETS",
    "SLI_SERVERNAME", "SLI_MODE", "SLI_SNIFF_TIMEOUT_MS", "SLI_STATE_DIR", "SLI_RELOAD_SIGNAL", "SLI_METRICS", NULL};

/* The engine's settings: SLI_SETTING_MAP (api/sli.h), in its order (key passwords first), applied
 * through sli_config_set_option when a context is first needed. */
static const char *const engine_settings[] = {
#define X(id, name, flag, value, help) name,
    SLI_SETTING_MAP(X)
#undef X
    NULL};

static int in_list(const char *const *list, const char *name) {
  for (int i = 0; list[i]; i++)
    if (!strcmp(list[i], name)) return 1;
  return 0;
}

static int known(const char *name) {
  return in_list(shim_settings, name) || in_list(engine_settings, name);
}

static int parse_level(const char *v) {
  if (!v) return LOG_WARN_;
  if (!strcmp(v, "off")) return -1; /* nothing at all (set for a program whose fd 2 is a connection) */
  if (!strcmp(v, "error")) return LOG_ERR_;
  if (!strcmp(v, "info")) return LOG_INFO_;
  if (!strcmp(v, "debug")) return LOG_DEBUG_;
  return LOG_WARN_;
}

/* Values from the SLI_CONFIG file, overridden by the environment — the environment as it was when
 * the program started: a host may clear it later (nginx's workers get a bare one), and a context
 * made or reloaded then must still see the operator's settings. */
static char *file_names[64], *file_values[64];
static int n_file;
static char **env_snapshot; /* "SLI_NAME=value" copies, NULL-terminated */

static void snapshot_environment(void) {
  extern char **environ;
  size_t n = 0;
  for (char **e = environ; e && *e; e++) n += !strncmp(*e, "SLI_", 4);
  env_snapshot = calloc(n + 1, sizeof(*env_snapshot));
  if (!env_snapshot) return;
  size_t k = 0;
  for (char **e = environ; e && *e && k < n; e++)
    if (!strncmp(*e, "SLI_", 4) && (env_snapshot[k] = strdup(*e))) k++;
}

static const char *lookup(const char *name) {
  size_t len = strlen(name);
  for (char **e = env_snapshot; e && *e; e++)
    if (!strncmp(*e, name, len) && (*e)[len] == '=') return *e + len + 1;
  if (!env_snapshot) { /* out of memory at start: the live environment */
    const char *v = getenv(name);
    if (v) return v;
  }
  for (int i = 0; i < n_file; i++)
    if (!strcmp(file_names[i], name)) return file_values[i];
  return NULL;
}

const char *shim_setting(const char *name) { return lookup(name); }

static int read_config_file(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) {
    shim_log(LOG_ERR_, "SLI_CONFIG: cannot open '%s': %s", path, strerror(errno));
    return -1;
  }
  char line[4096];
  int lineno = 0, bad = 0;
  while (fgets(line, sizeof(line), f)) {
    lineno++;
    line[strcspn(line, "\r\n")] = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') continue;
    char *eq = strchr(p, '=');
    if (eq) *eq = 0;
    if (!eq || !known(p) || n_file == 64) {
      shim_log(LOG_ERR_, "SLI_CONFIG %s line %d: expected NAME=value with a known SLI_* name", path,
               lineno);
      bad = 1;
      continue;
    }
    file_names[n_file] = strdup(p);
    file_values[n_file++] = strdup(eq + 1);
  }
  fclose(f);
  return bad ? -1 : 0;
}

static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static int ctx_failed[2];

static void report_fail_closed(void) {
  static int said;
  if (said++) return;
  shim_log(LOG_ERR_, "invalid configuration: refusing %s and the configured client targets "
                     "(EACCES) rather than serving plaintext",
           cfg.all_ports || !cfg.n_ports ? "every listening port" : "the configured ports");
}

/* shim_ctx returns the server (or client) context, made on first need: when the host first binds,
 * listens on or accepts from a TLS port, or first connects to a target. A program that never does
 * (a shell or CGI script a preloaded daemon runs, perhaps as another user) reads no key and starts
 * no engine. A context that cannot be made fails closed: the ports and targets are refused. */
sli_ctx *shim_ctx(int server) {
  sli_ctx *c = __atomic_load_n(server ? &cfg.server_ctx : &cfg.client_ctx, __ATOMIC_ACQUIRE);
  if (c || !cfg.active) return c;
  pthread_mutex_lock(&ctx_mu);
  c = server ? cfg.server_ctx : cfg.client_ctx;
  if (!c && !ctx_failed[server]) {
    sli_config *sc = shim_engine_config();
    int bad = !sc;
    if (!bad) {
      int rc = server ? sli_ctx_new_server(&c, sc, 0) : sli_ctx_new_client(&c, sc, 0);
      if (rc) {
        shim_log(LOG_ERR_, "%s context: %s: %s", server ? "server" : "client", sli_err_name(rc),
                 sli_config_error(sc) ? sli_config_error(sc) : sli_strerror(rc));
        bad = 1;
        c = NULL;
      }
    }
    sli_config_free(sc);
    if (bad) {
      ctx_failed[server] = 1;
      cfg.fail_closed = 1;
      report_fail_closed();
    } else {
      __atomic_store_n(server ? &cfg.server_ctx : &cfg.client_ctx, c, __ATOMIC_RELEASE);
      shim_reload_note_built();
      shim_metrics_maybe();
    }
  }
  pthread_mutex_unlock(&ctx_mu);
  return c;
}

sli_config *shim_engine_config(void) {
  sli_config *sc = sli_config_new();
  int bad = !sc;
  for (int i = 0; sc && engine_settings[i]; i++) {
    const char *v = lookup(engine_settings[i]);
    if (v && apply(sc, engine_settings[i], v)) bad = 1;
  }
  if (bad) {
    sli_config_free(sc);
    return NULL;
  }
  return sc;
}

/* engine_log: the library's notices and warnings, through the shim's own log (SLI_LOG, never into
 * a TLS connection). */
static void engine_log(int level, const char *message, void *arg) {
  shim_log(level <= SLI_LOG_ERROR ? LOG_ERR_ : level == SLI_LOG_WARN ? LOG_WARN_
           : level <= SLI_LOG_INFO ? LOG_INFO_ : LOG_DEBUG_, "%s", message);
}

/* Runs from the constructor: reads the settings and checks what can be checked without the
 * engine; the contexts (keys, certificates) are made on first need (shim_ctx). */
__attribute__((constructor)) static void shim_init(void) {
  shim_resolve();
  fdtab_init();
  snapshot_environment();
  cfg.log_level = parse_level(lookup("SLI_LOG"));
  cfg.sniff_timeout_ms = 1000;
  cfg.handshake_timeout_ms = 30000;
  int bad = 0;
  const char *file = lookup("SLI_CONFIG");
  if (file && *file && read_config_file(file)) bad = 1;
  cfg.log_level = parse_level(lookup("SLI_LOG"));
  const char *target = lookup("SLI_LOG_TARGET"); /* before anything is logged; checked in apply */
  if (target) parse_target(target);
  sli_set_log_callback(engine_log, SLI_LOG_DEBUG, NULL);
  if (!lookup("SLI_SERVER_PORTS") && !lookup("SLI_CLIENT_TARGETS") && !bad) return; /* inert */
  /* Unknown SLI_* variables are typos that would silently change nothing: refuse them. */
  extern char **environ;
  for (char **e = environ; e && *e; e++) {
    if (strncmp(*e, "SLI_", 4)) continue;
    char name[128];
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
    if (!known(name) && strcmp(name, "SLI_BUILD_DIR")) {
      shim_log(LOG_ERR_, "unknown setting %s", name);
      bad = 1;
    }
  }
  /* the shim's own settings now; the engine's when a context is first needed */
  for (int i = 0; shim_settings[i]; i++) {
    const char *v = lookup(shim_settings[i]);
    if (v && apply(NULL, shim_settings[i], v)) bad = 1;
  }
  const char *hs = lookup("SLI_HANDSHAKE_TIMEOUT");
  if (hs) cfg.handshake_timeout_ms = atoi(hs);
  if (bad) {
    cfg.fail_closed = 1;
    if (!cfg.n_ports) cfg.all_ports = 1;
    report_fail_closed();
    return;
  }
  cfg.active = 1;
  shim_metrics_init();
  shim_log(LOG_INFO_, "active: %d TLS port(s), %d client target(s), mode %s", cfg.n_ports,
           shim_n_targets, cfg.optional ? "optional" : "require");
}
