/* options.c — one parser for settings given by name: the CLI's flags, the shim's SLI_* variables and
 * SLI_CONFIG files all map onto the setters through sli_config_set_option, so a setting means the
 * same everywhere. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

static int parse_version(const char *v) {
  if (!strcmp(v, "1.2") || !strcmp(v, "TLSv1.2") || !strcmp(v, "tls1.2")) return SLI_TLS1_2;
  if (!strcmp(v, "1.3") || !strcmp(v, "TLSv1.3") || !strcmp(v, "tls1.3")) return SLI_TLS1_3;
  return -1;
}

static int read_password_file(sli_config *cfg, const char *path, char **out) {
  char *data;
  size_t len;
  int rc = sli__read_file(path, &data, &len, cfg->err, sizeof(cfg->err));
  if (rc) {
    cfg->has_err = 1;
    return rc;
  }
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

static int set_str(char **slot, const char *v) {
  char *c = sli__strdup(v);
  if (!c) return SLI_E_NOMEM;
  free(*slot);
  *slot = c;
  return 0;
}

int sli_config_set_option(sli_config *cfg, const char *name, const char *value) {
  if (!cfg || !name) return SLI_E_INVAL;
  sli__config_clear_error(cfg);
  if (!value) return sli__config_fail(cfg, SLI_E_INVAL, "%s: no value given", name);
  int rc;
  if (!strcmp(name, "SLI_CERT")) {
    if ((rc = set_str(&cfg->pending_cert, value))) return rc;
    return try_keypair(cfg);
  }
  if (!strcmp(name, "SLI_KEY")) {
    if ((rc = set_str(&cfg->pending_key, value))) return rc;
    return try_keypair(cfg);
  }
  if (!strcmp(name, "SLI_KEY_PASSWORD_FILE") || !strcmp(name, "SLI_PASSWORD_FILE")) {
    char *pw;
    if ((rc = read_password_file(cfg, value, &pw))) return rc;
    if (cfg->pending_password) sli_free(cfg->pending_password, strlen(cfg->pending_password));
    cfg->pending_password = pw;
    return try_keypair(cfg);
  }
  if (!strcmp(name, "SLI_CA")) return sli_config_set_ca_file(cfg, value);
  if (!strcmp(name, "SLI_CRL")) return sli_config_set_crl_file(cfg, value);
  if (!strcmp(name, "SLI_DHPARAMS")) return sli_config_set_dhparams_file(cfg, value);
  if (!strcmp(name, "SLI_POLICY")) return sli_config_set_policy(cfg, value);
  if (!strcmp(name, "SLI_CIPHERS")) return sli_config_set_ciphers(cfg, value);
  if (!strcmp(name, "SLI_ALPN")) return sli_config_set_alpn(cfg, value);
  if (!strcmp(name, "SLI_TICKET_KEYS")) return sli_config_set_ticket_keys_file(cfg, value);
  if (!strcmp(name, "SLI_CLIENT_CERT")) {
    int mode = !strcmp(value, "none")       ? SLI_CLIENT_CERT_NONE
               : !strcmp(value, "optional") ? SLI_CLIENT_CERT_OPTIONAL
               : !strcmp(value, "required") ? SLI_CLIENT_CERT_REQUIRED
                                            : -1;
    if (mode < 0)
      return sli__config_fail(cfg, SLI_E_INVAL,
                              "SLI_CLIENT_CERT: '%s' is not none, optional or required", value);
    return sli_config_set_client_cert(cfg, mode);
  }
  if (!strcmp(name, "SLI_MIN_VERSION") || !strcmp(name, "SLI_MAX_VERSION")) {
    int v = parse_version(value);
    if (v < 0)
      return sli__config_fail(cfg, SLI_E_INVAL, "%s: '%s' is not 1.2 or 1.3", name, value);
    return name[4] == 'M' && name[5] == 'I' ? sli_config_set_min_version(cfg, v)
                                            : sli_config_set_max_version(cfg, v);
  }
  if (!strcmp(name, "SLI_HANDSHAKE_TIMEOUT")) {
    char *end;
    errno = 0;
    unsigned long ms = strtoul(value, &end, 10);
    if (errno || end == value || *end || ms > 86400000UL)
      return sli__config_fail(cfg, SLI_E_INVAL,
                              "SLI_HANDSHAKE_TIMEOUT: '%s' is not a number of milliseconds", value);
    return sli_config_set_handshake_timeout(cfg, (uint32_t)ms);
  }
  if (!strcmp(name, "SLI_SESSION_RESUMPTION")) {
    return sli_config_set_session_resumption(cfg, strcmp(value, "0") != 0);
  }
  if (!strcmp(name, "SLI_INSECURE")) {
    if (strcmp(value, "1") != 0) return 0;
    rc = sli_config_insecure_noverifycert(cfg);
    return rc ? rc : sli_config_insecure_noverifyname(cfg);
  }
  return sli__config_fail(cfg, SLI_E_INVAL, "unknown setting '%s'", name);
}
