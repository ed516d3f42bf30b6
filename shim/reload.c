/* reload.c — certificates that rotate under a running host. The files the engine's settings name
 * (SLI_CERT, SLI_KEY, SLI_CA, SLI_CRL, SLI_TICKET_KEYS, the key password files) are looked at —
 * stat: device, inode, size, modification time — when a TLS connection is made, at most every
 * CHECK_MS, in whichever process makes it (each worker of a prefork server sees it for itself). If
 * any changed (an atomic rename by certbot or cert-manager, an in-place write, `sli tickets
 * rotate`), the contexts are reloaded: new handshakes get the new files, live connections keep
 * theirs; a set that cannot be used (a half-written file, a key that is not the certificate's)
 * keeps the old configuration, with the reason in the log, and is tried again when the files change
 * again. No descriptor is kept (no inotify): nothing of ours stays in the host, where a daemon
 * closing every descriptor would break it or reuse its number.
 * SLI_RELOAD_SIGNAL=USR2 (opt-in; the host's own SIGHUP is never taken) also asks for a reload,
 * done at the next connection: the one that would get the new certificate. */
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "shim.h"

#define CHECK_MS 250

static const char *const watched[] = {"SLI_CERT", "SLI_KEY", "SLI_CA", "SLI_CRL", "SLI_TICKET_KEYS",
                                      "SLI_KEY_PASSWORD_FILE", "SLI_PASSWORD_FILE", NULL};
#define N_WATCHED (sizeof(watched) / sizeof(watched[0]) - 1)

typedef struct {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  int exists;
} file_id;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static file_id seen[N_WATCHED]; /* what the contexts were last built (or tried) from */
static int have_seen;
static int64_t next_check_ms;
static volatile sig_atomic_t signalled;
static struct sigaction host_action; /* the host's own handler of the reload signal, chained */

void shim_reload_atfork_child(void) { pthread_mutex_init(&mu, NULL); }

static int ctxs_server_made(void) { return __atomic_load_n(&cfg.server_ctx, __ATOMIC_ACQUIRE) != NULL; }

static void look(file_id *out) {
  for (size_t i = 0; i < N_WATCHED; i++) {
    const char *path = shim_setting(watched[i]);
    struct stat st;
    memset(&out[i], 0, sizeof(out[i]));
    if (path && stat(path, &st) == 0) {
      out[i].dev = st.st_dev;
      out[i].ino = st.st_ino;
      out[i].size = st.st_size;
      out[i].mtime = st.st_mtim;
      out[i].exists = 1;
    }
  }
}

static int same(const file_id *a, const file_id *b) {
  for (size_t i = 0; i < N_WATCHED; i++)
    if (a[i].exists != b[i].exists || a[i].dev != b[i].dev || a[i].ino != b[i].ino ||
        a[i].size != b[i].size || a[i].mtime.tv_sec != b[i].mtime.tv_sec ||
        a[i].mtime.tv_nsec != b[i].mtime.tv_nsec)
      return 0;
  return 1;
}

/* reload_ctx rebuilds one context from the settings: 0, or -1 (logged; the old one stays). */
static int reload_ctx(sli_ctx *ctx, int server) {
  sli_config *sc = shim_engine_config();
  if (!sc) {
    shim_log(LOG_ERR_, "reload: the %s settings cannot be used; the previous ones stay",
             server ? "server" : "client");
    return -1;
  }
  int rc = sli_ctx_reload(ctx, sc, 0);
  if (rc)
    shim_log(LOG_ERR_, "reload: %s context: %s: %s; the previous certificate and settings stay",
             server ? "server" : "client", sli_err_name(rc),
             sli_config_error(sc) ? sli_config_error(sc) : sli_strerror(rc));
  sli_config_free(sc);
  return rc ? -1 : 0;
}

/* check_expiry: a warning when the served certificate (SLI_CERT) ends within 30 days, an error
 * within 7 — when a context is made or reloaded, and once a day after (at a new connection). */
static int64_t next_expiry_ms;
static int64_t served_not_after; /* for the metrics page (SLI_METRICS) */
static void check_expiry(void) {
  const char *path = shim_setting("SLI_CERT");
  sli_cert *c = NULL;
  next_expiry_ms = shim_now_ms() + 86400 * 1000LL;
  if (!path || sli_cert_load_file(&c, path, NULL, 0)) return;
  __atomic_store_n(&served_not_after, sli_cert_not_after(c), __ATOMIC_RELAXED);
  int64_t left = sli_cert_not_after(c) - (int64_t)time(NULL);
  if (left <= 0)
    shim_log(LOG_ERR_, "the served certificate '%s' has EXPIRED (%lld days ago): clients refuse it",
             path, (long long)(-left / 86400));
  else if (left <= 7 * 86400)
    shim_log(LOG_ERR_, "the served certificate '%s' expires in %lld day(s): renew it now", path,
             (long long)(left / 86400));
  else if (left <= 30 * 86400)
    shim_log(LOG_WARN_, "the served certificate '%s' expires in %lld days", path,
             (long long)(left / 86400));
  sli_cert_free(c);
}

int64_t shim_cert_not_after(void) { return __atomic_load_n(&served_not_after, __ATOMIC_RELAXED); }

void shim_reload_note_built(void) {
  pthread_mutex_lock(&mu);
  look(seen);
  have_seen = 1;
  next_check_ms = shim_now_ms() + CHECK_MS;
  if (__atomic_load_n(&cfg.server_ctx, __ATOMIC_ACQUIRE)) check_expiry();
  pthread_mutex_unlock(&mu);
}

void shim_reload_maybe(void) {
  int64_t now = shim_now_ms();
  if (!signalled && now < __atomic_load_n(&next_check_ms, __ATOMIC_RELAXED)) return;
  if (pthread_mutex_trylock(&mu)) return; /* another thread is at it */
  if (!have_seen) {
    pthread_mutex_unlock(&mu);
    return;
  }
  next_check_ms = now + CHECK_MS;
  file_id now_ids[N_WATCHED];
  look(now_ids);
  int asked = signalled;
  signalled = 0;
  if (asked || !same(now_ids, seen)) {
    memcpy(seen, now_ids, sizeof(seen)); /* a failed set is not tried again until it changes */
    sli_ctx *ctxs[2] = {__atomic_load_n(&cfg.client_ctx, __ATOMIC_ACQUIRE),
                        __atomic_load_n(&cfg.server_ctx, __ATOMIC_ACQUIRE)};
    int ok = 1;
    for (int server = 0; server < 2; server++)
      if (ctxs[server] && reload_ctx(ctxs[server], server)) ok = 0;
    if (ok)
      shim_log(LOG_INFO_, "reloaded the certificates and settings (%s): new connections use them",
               asked ? "signal" : "files changed");
    if (ok && ctxs[1]) check_expiry();
  } else if (ctxs_server_made() && now >= next_expiry_ms) {
    check_expiry();
  }
  pthread_mutex_unlock(&mu);
}

static void on_signal(int sig, siginfo_t *si, void *uc) {
  signalled = 1;
  if (host_action.sa_flags & SA_SIGINFO) {
    if (host_action.sa_sigaction) host_action.sa_sigaction(sig, si, uc);
  } else if (host_action.sa_handler != SIG_IGN && host_action.sa_handler != SIG_DFL) {
    host_action.sa_handler(sig);
  }
}

int shim_reload_signal(const char *value) {
  int sig = !strcmp(value, "USR2") || !strcmp(value, "SIGUSR2") ? SIGUSR2
          : !strcmp(value, "USR1") || !strcmp(value, "SIGUSR1") ? SIGUSR1 : 0;
  if (!sig) {
    shim_log(LOG_ERR_, "SLI_RELOAD_SIGNAL: '%s' is not USR1 or USR2 (the host's SIGHUP is never "
                       "taken)", value);
    return -1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, &host_action)) return -1;
  return 0;
}
