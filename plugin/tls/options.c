/* options.c — one parser for settings given by name (the rows of SLI_SETTING_MAP in sli.h): the
 * CLI's flags, the shim's SLI_* variables and SLI_CONFIG files all map onto the setters through
 * sli_config_set_option, so a setting means the same everywhere. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

static int read_password_file(sli_config *cfg, const char *path, char **out) {
  char *data;
  size_t len;
  int rc = sli__read_file(path, &data, &len, &cfg->err);
  if (rc) return rc;
  /* The password is the first line, without its line ending. */
  data[strcspn(data, "\r\n")] = 0;
  *out = data;
  return 0;
}

/* Loads SLI_CERT + SLI_KEY once both are known. A further pair adds an identity chosen by SNI. */
static int try_keypair(sli_config *cfg) {
  if (!cfg->pending_cert || !cfg->pending_key) return 0;
  int rc = sli_config_add_keypair_file(cfg, cfg->pending_cert, cfg->pending_key,
                                       cfg->pending_password);
  free(cfg->pending_cert);
  free(cfg->pending_key);
  cfg->pending_cert = cfg->pending_key = NULL;
  return rc;
}

static int set_str(sli_config *cfg, char **slot, const char *v) {
  char *c = sli__strdup(v);
  if (!c) return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  free(*slot);
  *slot = c;
  return 0;
}

/* One setter per row of SLI_SETTING_MAP (a row without its setter does not compile). */
static int set_KEY_PASSWORD_FILE(sli_config *cfg, const char *name, const char *value) {
  char *pw;
  int rc = read_password_file(cfg, value, &pw);
  if (rc) return rc;
  if (cfg->pending_password) sli_free(cfg->pending_password, strlen(cfg->pending_password));
  cfg->pending_password = pw;
  return try_keypair(cfg);
}

static int set_PASSWORD_FILE(sli_config *cfg, const char *name, const char *value) {
  return set_KEY_PASSWORD_FILE(cfg, name, value);
}

static int set_CERT(sli_config *cfg, const char *name, const char *value) {
  int rc = set_str(cfg, &cfg->pending_cert, value);
  return rc ? rc : try_keypair(cfg);
}

static int set_KEY(sli_config *cfg, const char *name, const char *value) {
  int rc = set_str(cfg, &cfg->pending_key, value);
  return rc ? rc : try_keypair(cfg);
}

static int set_CA(sli_config *cfg, const char *name, const char *value) {
  return sli_config_set_ca_file(cfg, value);
}

static int set_CRL(sli_config *cfg, const char *name, const char *value) {
  return sli_config_set_crl_file(cfg, value);
}

static int set_CLIENT_CERT(sli_config *cfg, const char *name, const char *value) {
  int mode = !strcmp(value, "none")       ? SLI_CLIENT_CERT_NONE
             : !strcmp(value, "optional") ? SLI_CLIENT_CERT_OPTIONAL
             : !strcmp(value, "required") ? SLI_CLIENT_CERT_REQUIRED
                                          : -1;
  if (mode < 0)
    return sli__fail(&cfg->err, SLI_E_INVAL, "%s: '%s' is not none, optional or required", name,
                     value);
  return sli_config_set_client_cert(cfg, mode);
}

static int set_POLICY(sli_config *cfg, const char *name, const char *value) {
  return sli_config_set_policy(cfg, value);
}

static int set_CIPHERS(sli_config *cfg, const char *name, const char *value) {
  return sli_config_set_ciphers(cfg, value);
}

/* version reads "1.2" or "1.3" (or TLSv1.x, tls1.x) into `*out` (SLI_TLS1_*): 0 or SLI_E_INVAL. */
static int version(sli_config *cfg, const char *name, const char *value, int *out) {
  if (!strcmp(value, "1.2") || !strcmp(value, "TLSv1.2") || !strcmp(value, "tls1.2"))
    *out = SLI_TLS1_2;
  else if (!strcmp(value, "1.3") || !strcmp(value, "TLSv1.3") || !strcmp(value, "tls1.3"))
    *out = SLI_TLS1_3;
  else
    return sli__fail(&cfg->err, SLI_E_INVAL, "%s: '%s' is not 1.2 or 1.3", name, value);
  return 0;
}

static int set_MIN_VERSION(sli_config *cfg, const char *name, const char *value) {
  int v = 0, rc = version(cfg, name, value, &v);
  return rc ? rc : sli_config_set_min_version(cfg, v);
}

static int set_MAX_VERSION(sli_config *cfg, const char *name, const char *value) {
  int v = 0, rc = version(cfg, name, value, &v);
  return rc ? rc : sli_config_set_max_version(cfg, v);
}

static int set_ALPN(sli_config *cfg, const char *name, const char *value) {
  return sli_config_set_alpn(cfg, value);
}

static int set_TICKET_KEYS(sli_config *cfg, const char *name, const char *value) {
  return sli_config_set_ticket_keys_file(cfg, value);
}

static int set_SESSION_RESUMPTION(sli_config *cfg, const char *name, const char *value) {
  if (strcmp(value, "0") && strcmp(value, "1"))
    return sli__fail(&cfg->err, SLI_E_INVAL, "%s: '%s' is not 0 or 1", name, value);
  return sli_config_set_session_resumption(cfg, value[0] == '1');
}

static int set_HANDSHAKE_TIMEOUT(sli_config *cfg, const char *name, const char *value) {
  char *end;
  errno = 0;
  unsigned long ms = strtoul(value, &end, 10);
  if (errno || end == value || *end || ms > 86400000UL || value[0] == '-')
    return sli__fail(&cfg->err, SLI_E_INVAL, "%s: '%s' is not a number of milliseconds", name,
                     value);
  return sli_config_set_handshake_timeout(cfg, (uint32_t)ms);
}

static int set_DHPARAMS(sli_config *cfg, const char *name, const char *value) {
  return sli_config_set_dhparams_file(cfg, value);
}

static int set_INSECURE(sli_config *cfg, const char *name, const char *value) {
  if (strcmp(value, "1") != 0) return 0;
  int rc = sli_config_insecure_noverifycert(cfg);
  return rc ? rc : sli_config_insecure_noverifyname(cfg);
}

static int set_INSECURE_KEYLOG(sli_config *cfg, const char *name, const char *value) {
  return sli__keylog_file_set(cfg, value);
}

static const struct {
  const char *name;
  int (*set)(sli_config *cfg, const char *name, const char *value);
} settings[] = {
#define X(id, name, flag, value, help) {name, set_##id},
    SLI_SETTING_MAP(X)
#undef X
};

int sli_config_set_option(sli_config *cfg, const char *name, const char *value) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_set_option: cfg is NULL");
  sli__error_clear(&cfg->err);
  if (!name) return sli__fail(&cfg->err, SLI_E_INVAL, "sli_config_set_option: no setting name given");
  if (!value) return sli__fail(&cfg->err, SLI_E_INVAL, "%s: no value given", name);
  for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
    if (!strcmp(name, settings[i].name)) return settings[i].set(cfg, name, value);
  return sli__fail(&cfg->err, SLI_E_INVAL, "unknown setting '%s'", name);
}
