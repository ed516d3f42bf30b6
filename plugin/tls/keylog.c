/* keylog.c — the insecure key log: every connection's TLS secrets in the NSS key log format, to
 * the host's callback (sli_config_insecure_keylog) and/or appended to SLI_INSECURE_KEYLOG's file,
 * so that Wireshark can decrypt a capture. Loudly announced; never on by default. The file is
 * opened for each line (never an fd kept open inside a host that may close or reuse it), created
 * 0600, and a symbolic link there is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/mem.h>

#include "tls/conn.h"

static int append_line(const char *path, const char *line) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0) return -1;
  size_t n = strlen(line);
  char *buf = malloc(n + 1);
  int ok = 0;
  if (buf) {
    memcpy(buf, line, n);
    buf[n] = '\n';
    ok = write(fd, buf, n + 1) == (ssize_t)(n + 1); /* one write: lines of concurrent handshakes stay whole */
    OPENSSL_cleanse(buf, n + 1);
    free(buf);
  }
  close(fd);
  return ok ? 0 : -1;
}

static void keylog(const SSL *ssl, const char *line) {
  sli__snapshot *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sli__snapshot_index);
  sli_conn *c = SSL_get_ex_data(ssl, sli__conn_index);
  if (!s) return;
  if (s->keylog_file && append_line(s->keylog_file, line) != 0)
    sli__log(SLI_LOG_WARN, "SLI_INSECURE_KEYLOG: cannot append to '%s': %s", s->keylog_file,
             strerror(errno));
  if (s->hooks.keylog_fn && c) s->hooks.keylog_fn(c, line, s->hooks.keylog_arg);
}

int sli__keylog_install(SSL_CTX *ctx, sli__snapshot *snap, const sli_config *cfg, sli__error *e) {
  if (cfg->keylog_file && !(snap->keylog_file = sli__strdup(cfg->keylog_file))) return SLI_E_NOMEM;
  if (!snap->keylog_file && !snap->hooks.keylog_fn) return 0;
  if (snap->keylog_file)
    sli__log(SLI_LOG_WARN, "INSECURE: the TLS secrets of every connection are written to '%s' "
                           "(SLI_INSECURE_KEYLOG): whoever reads it can decrypt the traffic",
             snap->keylog_file);
  else
    sli__log(SLI_LOG_WARN, "INSECURE: the TLS secrets of every connection are handed to the "
                           "host's key-log callback: whoever gets them can decrypt the traffic");
  SSL_CTX_set_keylog_callback(ctx, keylog);
  return 0;
}

int sli_config_insecure_keylog(sli_config *cfg, sli_keylog_fn fn, void *arg) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_insecure_keylog: cfg is NULL");
  cfg->hooks.keylog_fn = fn;
  cfg->hooks.keylog_arg = fn ? arg : NULL;
  return 0;
}

/* sli__keylog_file_set: SLI_INSECURE_KEYLOG=FILE, checked now by creating it (0600). */
int sli__keylog_file_set(sli_config *cfg, const char *path) {
  if (!*path) return sli__fail(&cfg->err, SLI_E_INVAL, "SLI_INSECURE_KEYLOG: an empty file name");
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0)
    return sli__fail(&cfg->err, SLI_E_FILE, "SLI_INSECURE_KEYLOG: cannot open '%s' for appending: %s",
                     path, strerror(errno));
  close(fd);
  char *copy = sli__strdup(path);
  if (!copy) return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  free(cfg->keylog_file);
  cfg->keylog_file = copy;
  return 0;
}
