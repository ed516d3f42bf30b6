/* config.c — the sli_config builder and its setters. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/pem.h>

#include "tls/tls.h"

/* Every setter starts with this: checks that there is a config and clears its message. */
#define BEGIN(cfg)                                                                 \
  do {                                                                             \
    if (!(cfg)) return sli__fail(NULL, SLI_E_INVAL, "%s: cfg is NULL", __func__); \
    sli__error_clear(&(cfg)->err);                                                 \
  } while (0)

sli_config *sli_config_new(void) {
  if (sli__tls_init() != 0) {
    sli__fail(NULL, SLI_E_INTERNAL, "sli_config_new: the TLS engine cannot be initialised");
    return NULL;
  }
  sli_config *cfg = sli__zalloc(sizeof(*cfg));
  if (!cfg) {
    sli__fail(NULL, SLI_E_NOMEM, "sli_config_new: out of memory");
    return NULL;
  }
  atomic_init(&cfg->refs, 1);
  cfg->min_version = SLI_TLS1_2;
  cfg->max_version = SLI_TLS1_3;
  cfg->resumption = 1;
  cfg->handshake_timeout_ms = 30000;
  cfg->client_cert = SLI_CLIENT_CERT_NONE;
  cfg->policy = sli__strdup("default");
  if (!cfg->policy) {
    free(cfg);
    sli__fail(NULL, SLI_E_NOMEM, "sli_config_new: out of memory");
    return NULL;
  }
  return cfg;
}

void sli_config_free(sli_config *cfg) {
  if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1) return;
  for (size_t i = 0; i < cfg->n_ids; i++) sli__identity_clear(&cfg->ids[i]);
  free(cfg->pending_cert);
  free(cfg->pending_key);
  if (cfg->pending_password) sli_free(cfg->pending_password, strlen(cfg->pending_password));
  sk_X509_pop_free(cfg->ca, X509_free);
  sk_X509_CRL_pop_free(cfg->crls, X509_CRL_free);
  free(cfg->policy);
  free(cfg->ciphers);
  free(cfg->alpn_wire);
  free(cfg->keylog_file);
  OPENSSL_cleanse(cfg->tkeys, sizeof(cfg->tkeys));
  free(cfg);
}

const char *sli_config_error(const sli_config *cfg) { return cfg ? sli__error_msg(&cfg->err) : NULL; }

static int add_identity_mem(sli_config *cfg, int replace, const char *cert_what,
                            const char *cert_pem, size_t cert_len, const char *key_what,
                            const char *key_pem, size_t key_len, const char *password) {
  if (!replace && cfg->n_ids >= SLI_MAX_IDENTITIES)
    return sli__fail(&cfg->err, SLI_E_INVAL, "at most %d identities", SLI_MAX_IDENTITIES);
  sli__identity id;
  int rc = sli__load_identity(&id, cert_what, cert_pem, cert_len, key_what, key_pem, key_len,
                              password, &cfg->err);
  if (rc) return rc;
  if (replace) {
    if (cfg->n_ids == 0) cfg->n_ids = 1;
    sli__identity_clear(&cfg->ids[0]);
    cfg->ids[0] = id;
  } else {
    cfg->ids[cfg->n_ids++] = id;
  }
  return 0;
}

static int keypair_file(sli_config *cfg, int replace, const char *cert_file, const char *key_file,
                        const char *password) {
  BEGIN(cfg);
  if (!cert_file || !key_file)
    return sli__fail(&cfg->err, SLI_E_INVAL, "both a certificate file and a key file are needed");
  char *c = NULL, *k = NULL;
  size_t cl, kl;
  int rc = sli__read_file(cert_file, &c, &cl, &cfg->err);
  if (!rc) rc = sli__read_file(key_file, &k, &kl, &cfg->err);
  if (!rc) {
    char cw[300], kw[300];
    snprintf(cw, sizeof(cw), "certificate file '%s'", cert_file);
    snprintf(kw, sizeof(kw), "key file '%s'", key_file);
    rc = add_identity_mem(cfg, replace, cw, c, cl, kw, k, kl, password);
  }
  if (c) sli_free(c, cl + 1);
  if (k) sli_free(k, kl + 1);
  return rc;
}

int sli_config_set_keypair_file(sli_config *cfg, const char *cert_file, const char *key_file,
                                const char *password) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_set_keypair_file: cfg is NULL");
  return keypair_file(cfg, 1, cert_file, key_file, password);
}

int sli_config_add_keypair_file(sli_config *cfg, const char *cert_file, const char *key_file,
                                const char *password) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_add_keypair_file: cfg is NULL");
  return keypair_file(cfg, cfg->n_ids == 0, cert_file, key_file, password);
}

int sli_config_set_keypair_mem(sli_config *cfg, const char *cert_pem, size_t cert_len,
                               const char *key_pem, size_t key_len, const char *password) {
  BEGIN(cfg);
  if (!cert_pem || !key_pem) return sli__fail(&cfg->err, SLI_E_INVAL, "certificate and key needed");
  return add_identity_mem(cfg, 1, "certificate PEM", cert_pem, cert_len, "key PEM", key_pem,
                          key_len, password);
}

static int store_add_pem(sli_config *cfg, STACK_OF(X509) *store, const char *what,
                         const char *pem, size_t len, size_t *added) {
  STACK_OF(X509) *certs;
  int rc = sli__parse_chain(what, pem, len, &certs, &cfg->err);
  if (rc) return rc;
  X509 *x;
  while ((x = sk_X509_shift(certs)) != NULL) {
    if (!sk_X509_push(store, x)) {
      X509_free(x);
      rc = sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory reading %s", what);
      break;
    }
    (*added)++;
  }
  sk_X509_pop_free(certs, X509_free);
  return rc;
}

static int add_ca_file(sli_config *cfg, STACK_OF(X509) *store, const char *path, size_t *added) {
  char *data;
  size_t len;
  int rc = sli__read_file(path, &data, &len, &cfg->err);
  if (rc) return rc;
  char what[300];
  snprintf(what, sizeof(what), "CA file '%s'", path);
  rc = store_add_pem(cfg, store, what, data, len, added);
  sli_free(data, len + 1);
  return rc;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

int sli_config_set_ca_file(sli_config *cfg, const char *path) {
  BEGIN(cfg);
  if (!path) return sli__fail(&cfg->err, SLI_E_INVAL, "no CA path given");
  STACK_OF(X509) *store = sk_X509_new_null();
  if (!store) return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  size_t added = 0;
  int rc = 0;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (!d) {
      rc = sli__fail(&cfg->err, SLI_E_FILE, "cannot open CA directory '%s': %s", path, strerror(errno));
    } else {
      struct dirent *de;
      while (!rc && (de = readdir(d)) != NULL) {
        if (!(ends_with(de->d_name, ".pem") || ends_with(de->d_name, ".crt") ||
              ends_with(de->d_name, ".0")))
          continue;
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
        rc = add_ca_file(cfg, store, full, &added);
      }
      closedir(d);
      if (!rc && added == 0)
        rc = sli__fail(&cfg->err, SLI_E_FILE, "CA directory '%s' holds no *.pem or *.crt file", path);
    }
  } else {
    rc = add_ca_file(cfg, store, path, &added);
  }
  if (rc) {
    sk_X509_pop_free(store, X509_free);
    return rc;
  }
  sk_X509_pop_free(cfg->ca, X509_free);
  cfg->ca = store;
  return 0;
}

int sli_config_set_ca_mem(sli_config *cfg, const char *pem, size_t len) {
  BEGIN(cfg);
  if (!pem) return sli__fail(&cfg->err, SLI_E_INVAL, "no CA PEM given");
  STACK_OF(X509) *store = sk_X509_new_null();
  if (!store) return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  size_t added = 0;
  int rc = store_add_pem(cfg, store, "CA PEM", pem, len, &added);
  if (rc) {
    sk_X509_pop_free(store, X509_free);
    return rc;
  }
  sk_X509_pop_free(cfg->ca, X509_free);
  cfg->ca = store;
  return 0;
}

int sli_config_set_crl_file(sli_config *cfg, const char *path) {
  BEGIN(cfg);
  char *data;
  size_t len;
  int rc = sli__read_file(path, &data, &len, &cfg->err);
  if (rc) return rc;
  char what[300], *norm;
  size_t nlen;
  snprintf(what, sizeof(what), "CRL file '%s'", path);
  rc = sli__pem_check(what, data, len, &norm, &nlen, &cfg->err);
  sli_free(data, len + 1);
  if (rc) return rc;
  STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
  BIO *bio = BIO_new_mem_buf(norm, (int)nlen);
  X509_CRL *crl;
  while (bio && crls && (crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL)
    sk_X509_CRL_push(crls, crl);
  ERR_clear_error();
  BIO_free(bio);
  sli_free(norm, nlen + 1);
  if (!crls || sk_X509_CRL_num(crls) == 0) {
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    return sli__fail(&cfg->err, crls ? SLI_E_PEM : SLI_E_NOMEM, "%s holds no X509 CRL block", what);
  }
  sk_X509_CRL_pop_free(cfg->crls, X509_CRL_free);
  cfg->crls = crls;
  return 0;
}

int sli_config_set_client_cert(sli_config *cfg, int mode) {
  BEGIN(cfg);
  if (mode < SLI_CLIENT_CERT_NONE || mode > SLI_CLIENT_CERT_REQUIRED)
    return sli__fail(&cfg->err, SLI_E_INVAL, "client-cert mode must be none, optional or required");
  cfg->client_cert = mode;
  return 0;
}

int sli_config_set_policy(sli_config *cfg, const char *name) {
  BEGIN(cfg);
  if (!name || !sli__policy_known(name))
    return sli__fail(&cfg->err, SLI_E_INVAL, "unknown policy '%s' (default, modern, compat)",
                     name ? name : "(null)");
  char *p = sli__strdup(name);
  if (!p) return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  free(cfg->policy);
  cfg->policy = p;
  free(cfg->ciphers);
  cfg->ciphers = NULL;
  if (strcmp(name, "compat") == 0)
    sli__log(SLI_LOG_NOTICE, "policy 'compat' adds ECDHE CBC-SHA cipher suites for old TLS 1.2 "
                             "peers; prefer 'default' once they are gone");
  return 0;
}

int sli_config_set_ciphers(sli_config *cfg, const char *ciphers) {
  BEGIN(cfg);
  if (!ciphers || !*ciphers) return sli__fail(&cfg->err, SLI_E_INVAL, "empty cipher list");
  int rc = sli__ciphers_check(ciphers, &cfg->err);
  if (rc) return rc;
  char *c = sli__strdup(ciphers);
  if (!c) return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  free(cfg->ciphers);
  cfg->ciphers = c;
  return 0;
}

static int version_ok(sli_config *cfg, int v) {
  if (v == SLI_TLS1_2 || v == SLI_TLS1_3) return 0;
  return sli__fail(&cfg->err, SLI_E_INVAL,
                   "protocol version 0x%04x not available: TLS 1.2 and 1.3 only", v);
}

int sli_config_set_min_version(sli_config *cfg, int version) {
  BEGIN(cfg);
  int rc = version_ok(cfg, version);
  if (!rc) cfg->min_version = (uint16_t)version;
  return rc;
}

int sli_config_set_max_version(sli_config *cfg, int version) {
  BEGIN(cfg);
  int rc = version_ok(cfg, version);
  if (!rc) cfg->max_version = (uint16_t)version;
  return rc;
}

int sli_config_set_dhparams_file(sli_config *cfg, const char *path) {
  BEGIN(cfg);
  sli__log(SLI_LOG_NOTICE,
           "ignoring DH parameters '%s': sli offers no finite-field DHE; ECDHE key exchange "
           "provides perfect forward secrecy on every connection",
           path ? path : "");
  return 0;
}

int sli_config_set_alpn(sli_config *cfg, const char *list) {
  BEGIN(cfg);
  if (!list) return sli__fail(&cfg->err, SLI_E_INVAL, "no ALPN list given");
  size_t n = strlen(list);
  uint8_t *wire = malloc(n + 1);
  if (!wire) return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  size_t o = 0;
  const char *p = list;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t l = comma ? (size_t)(comma - p) : strlen(p);
    if (l == 0 || l > 255) {
      free(wire);
      return sli__fail(&cfg->err, SLI_E_INVAL, "bad ALPN list '%s' (empty or overlong name)", list);
    }
    wire[o++] = (uint8_t)l;
    memcpy(wire + o, p, l);
    o += l;
    p += l;
    if (*p == ',') p++;
  }
  free(cfg->alpn_wire);
  cfg->alpn_wire = o ? wire : NULL;
  cfg->alpn_len = o;
  if (!o) free(wire);
  return 0;
}

int sli_config_set_ticket_keys_file(sli_config *cfg, const char *path) {
  BEGIN(cfg);
  char *data;
  size_t len;
  int rc = sli__read_file(path, &data, &len, &cfg->err);
  if (rc) return rc;
  sli__ticket_key keys[SLI_MAX_TICKET_KEYS];
  size_t n = 0;
  rc = sli__ticket_keys_parse(path, data, len, keys, &n, &cfg->err);
  sli_free(data, len + 1);
  if (rc) {
    OPENSSL_cleanse(keys, sizeof(keys));
    return rc;
  }
  memcpy(cfg->tkeys, keys, sizeof(keys));
  cfg->n_tkeys = n;
  OPENSSL_cleanse(keys, sizeof(keys));
  return 0;
}

int sli_config_set_session_resumption(sli_config *cfg, int on) {
  BEGIN(cfg);
  cfg->resumption = on ? 1 : 0;
  return 0;
}

int sli_config_set_handshake_timeout(sli_config *cfg, uint32_t ms) {
  BEGIN(cfg);
  cfg->handshake_timeout_ms = ms;
  return 0;
}

int sli_config_insecure_noverifycert(sli_config *cfg) {
  BEGIN(cfg);
  cfg->insecure_nocert = 1;
  return 0;
}

int sli_config_insecure_noverifyname(sli_config *cfg) {
  BEGIN(cfg);
  cfg->insecure_noname = 1;
  return 0;
}
