/* ctx.c — client and server contexts: a snapshot of a config turned into an SSL_CTX, swapped
 * atomically by sli_ctx_reload: policy, identities, trust store, then each side's part (the
 * ClientHello, ALPN, sessions and key log each in their own file). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* trust_warnings says, through the log callback, what will make verifications fail soon: a trusted
 * CA that has expired or ends within 30 days, a CRL past its next update (revocations since are
 * not seen). At each context's build: a start, a reload. */
static void trust_warnings(const sli_config *cfg) {
  time_t now = time(NULL), soon = now + 30 * 86400;
  for (size_t i = 0; i < sk_X509_num(cfg->ca); i++) {
    X509 *x = sk_X509_value(cfg->ca, i);
    char name[256];
    X509_NAME_oneline(X509_get_subject_name(x), name, sizeof(name));
    if (X509_cmp_time(X509_get0_notAfter(x), &now) < 0)
      sli__log(SLI_LOG_ERROR, "the trusted CA '%s' has EXPIRED: the certificates it issued no "
                              "longer verify", name);
    else if (X509_cmp_time(X509_get0_notAfter(x), &soon) < 0)
      sli__log(SLI_LOG_WARN, "the trusted CA '%s' expires within 30 days", name);
  }
  for (size_t i = 0; i < sk_X509_CRL_num(cfg->crls); i++) {
    X509_CRL *crl = sk_X509_CRL_value(cfg->crls, i);
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    char name[256];
    X509_NAME_oneline(X509_CRL_get_issuer(crl), name, sizeof(name));
    if (next && X509_cmp_time(next, &now) < 0)
      sli__log(SLI_LOG_WARN, "the CRL of '%s' is past its next update: certificates revoked since "
                             "are not seen (fetch a fresh one)", name);
  }
  ERR_clear_error();
}

static X509_STORE *make_store(const sli_config *cfg, int is_server) {
  X509_STORE *store = X509_STORE_new();
  if (!store) return NULL;
  trust_warnings(cfg);
  if (cfg->ca) {
    for (size_t i = 0; i < sk_X509_num(cfg->ca); i++) X509_STORE_add_cert(store, sk_X509_value(cfg->ca, i));
  } else if (!is_server) {
    if (!X509_STORE_load_locations(store, SYSTEM_CA_FILE, NULL))
      sli__log(SLI_LOG_WARN, "cannot load the system CA store %s; set a CA file", SYSTEM_CA_FILE);
  }
  if (cfg->crls) {
    for (size_t i = 0; i < sk_X509_CRL_num(cfg->crls); i++)
      X509_STORE_add_crl(store, sk_X509_CRL_value(cfg->crls, i));
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  ERR_clear_error();
  return store;
}

/* identities puts the config's identities (or, for a server without one, the per-install default
 * identity) into the snapshot and the context. */
static int identities(SSL_CTX *ctx, sli__snapshot *snap, const sli_config *cfg, int is_server,
                      sli__error *e) {
  int rc;
  if (cfg->n_ids > 0) {
    for (size_t i = 0; i < cfg->n_ids; i++) {
      if (sli__identity_copy(&snap->ids[i], &cfg->ids[i])) return SLI_E_NOMEM;
      snap->n_ids++;
    }
  } else if (is_server) {
    snap->ids[0].chain = NULL;
    if ((rc = sli__default_identity(&snap->ids[0], e))) return rc;
    snap->n_ids = 1;
  }
  for (size_t i = 0; i < snap->n_ids; i++)
    if (!snap->ids[i].key && !cfg->hooks.key_fn)
      return sli__fail(e, SLI_E_CONFIG, "an identity whose key the host keeps needs a private-key "
                                        "callback (sli_config_set_private_key_cb)");
  if (snap->n_ids > 0 && (rc = sli__use_identity_ctx(ctx, &snap->ids[0])))
    return sli__fail_ssl(e, rc, "the identity cannot be used");
  return 0;
}

/* session_context: a digest of what a resumed session must still satisfy — whether client
 * certificates are asked for, the CAs that verify them, the CRLs — set as the session ID context,
 * which BoringSSL compares before resuming a session (TLS 1.2 and 1.3, tickets and the host's
 * store). A reload that tightens any of them therefore resumes none of the sessions made before,
 * whose clients were authenticated under the old rules; servers of a fleet resume each other's
 * sessions only under the same rules. */
static int session_context(SSL_CTX *ctx, const sli_config *cfg) {
  SHA256_CTX h;
  uint8_t mode = (uint8_t)cfg->client_cert, md[SHA256_DIGEST_LENGTH];
  SHA256_Init(&h);
  SHA256_Update(&h, "sli session context v1", 22);
  SHA256_Update(&h, &mode, 1);
  for (size_t i = 0; cfg->client_cert != SLI_CLIENT_CERT_NONE && i < sk_X509_num(cfg->ca); i++) {
    uint8_t *der = NULL;
    int n = i2d_X509(sk_X509_value(cfg->ca, i), &der);
    if (n <= 0) return SLI_E_NOMEM;
    SHA256_Update(&h, der, (size_t)n);
    OPENSSL_free(der);
  }
  for (size_t i = 0; cfg->client_cert != SLI_CLIENT_CERT_NONE && i < sk_X509_CRL_num(cfg->crls); i++) {
    uint8_t *der = NULL;
    int n = i2d_X509_CRL(sk_X509_CRL_value(cfg->crls, i), &der);
    if (n <= 0) return SLI_E_NOMEM;
    SHA256_Update(&h, der, (size_t)n);
    OPENSSL_free(der);
  }
  SHA256_Final(md, &h);
  return SSL_CTX_set_session_id_context(ctx, md, sizeof(md)) ? 0 : SLI_E_NOMEM;
}

/* server_side: the server's suite order, client certificates, resumption (tickets, or the host's
 * store for TLS 1.2), the choice of identity on the ClientHello, ALPN selection. */
static int server_side(SSL_CTX *ctx, sli__snapshot *snap, const sli_config *cfg,
                       sli__own_tickets *own, sli__error *e) {
  /* TLS 1.2 suites in the policy's order (strongest first), not the client's */
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (cfg->client_cert != SLI_CLIENT_CERT_NONE) {
    if (!cfg->ca)
      return sli__fail(e, SLI_E_CONFIG,
                       "client certificates are %s but no CA is configured to verify them",
                       cfg->client_cert == SLI_CLIENT_CERT_REQUIRED ? "required" : "requested");
    int mode = SSL_VERIFY_PEER;
    if (cfg->client_cert == SLI_CLIENT_CERT_REQUIRED) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    for (size_t i = 0; names && i < sk_X509_num(cfg->ca); i++) {
      X509_NAME *n = X509_NAME_dup(X509_get_subject_name(sk_X509_value(cfg->ca, i)));
      if (n && !sk_X509_NAME_push(names, n)) X509_NAME_free(n);
    }
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
  }
  if (!cfg->resumption) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  } else if (cfg->n_tkeys) {
    memcpy(snap->tkeys, cfg->tkeys, sizeof(snap->tkeys));
    snap->n_tkeys = cfg->n_tkeys;
    sli__ticket_keys_install(ctx);
  } else if (own) { /* the context's own keys, the same after a reload */
    snap->own_tickets = own;
    sli__ticket_keys_install(ctx);
  }
  int rc = session_context(ctx, cfg);
  if (rc) return rc;
  if (cfg->resumption && cfg->hooks.store_fn) sli__session_store_install(ctx);
  sli__hello_install(ctx, snap);
  return sli__alpn_install(ctx, snap, cfg);
}

/* client_side: verification of the server (unless insecure), ALPN offer, the kept sessions. */
static int client_side(SSL_CTX *ctx, sli__snapshot *snap, const sli_config *cfg,
                       sli__session_cache *sessions) {
  snap->verify_cert = !cfg->insecure_nocert;
  snap->verify_name = !cfg->insecure_noname;
  SSL_CTX_set_verify(ctx, snap->verify_cert ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (cfg->insecure_nocert)
    sli__log(SLI_LOG_WARN, "certificate verification is OFF (insecure): any server can "
                           "impersonate the peer");
  if (cfg->alpn_wire && SSL_CTX_set_alpn_protos(ctx, cfg->alpn_wire, cfg->alpn_len) != 0)
    return SLI_E_NOMEM;
  if (cfg->resumption && sessions) { /* resume by default: the context keeps what servers give */
    snap->sessions = sessions;
    sli__sessions_install(ctx);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  return 0;
}

/* Builds an SSL_CTX from `cfg`: what both sides share (policy, signature algorithms, identities,
 * the trust store), then the server's or the client's part. On failure fills cfg's error and
 * returns NULL. */
static SSL_CTX *build(sli_config *cfg, const sli_ctx *owner, int *out_rc) {
  int is_server = owner->is_server;
  sli__error *e = &cfg->err;
  int rc = SLI_E_NOMEM;
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  sli__snapshot *s = sli__zalloc(sizeof(*s));
  if (!ctx || !s) goto fail_nomem;
  if (!SSL_CTX_set_ex_data(ctx, sli__snapshot_index, s)) goto fail_nomem;
  sli__snapshot *snap = s;
  s = NULL; /* owned by ctx now */
  snap->is_server = is_server;
  snap->handshake_timeout_ms = cfg->handshake_timeout_ms;
  snap->hooks = cfg->hooks;
  if ((rc = sli__policy_apply(ctx, cfg, e))) goto fail;
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* BoringSSL leaves Ed25519 out of the signatures it accepts unless asked. */
  static const uint16_t verify_prefs[] = {
      SSL_SIGN_ECDSA_SECP256R1_SHA256, SSL_SIGN_RSA_PSS_RSAE_SHA256, SSL_SIGN_RSA_PKCS1_SHA256,
      SSL_SIGN_ECDSA_SECP384R1_SHA384, SSL_SIGN_RSA_PSS_RSAE_SHA384, SSL_SIGN_RSA_PKCS1_SHA384,
      SSL_SIGN_RSA_PSS_RSAE_SHA512,    SSL_SIGN_RSA_PKCS1_SHA512,    SSL_SIGN_ED25519};
  if (!SSL_CTX_set_verify_algorithm_prefs(ctx, verify_prefs,
                                          sizeof(verify_prefs) / sizeof(verify_prefs[0])))
    goto fail_nomem;
  rc = identities(ctx, snap, cfg, is_server, e);
  if (rc == SLI_E_NOMEM) goto fail_nomem;
  if (rc) goto fail;
  X509_STORE *store = make_store(cfg, is_server);
  if (!store) goto fail_nomem;
  SSL_CTX_set_cert_store(ctx, store);
  rc = is_server ? server_side(ctx, snap, cfg, owner->own_tickets, e)
                 : client_side(ctx, snap, cfg, owner->sessions);
  if (!rc) rc = sli__keylog_install(ctx, snap, cfg, e);
  if (rc == SLI_E_NOMEM) goto fail_nomem;
  if (rc) goto fail;
  *out_rc = 0;
  return ctx;

fail_nomem:
  rc = sli__fail(e, SLI_E_NOMEM, "out of memory building the context");
fail:
  free(s);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  *out_rc = rc;
  return NULL;
}

static int ctx_new(const char *fn, sli_ctx **out, sli_config *cfg, uint32_t flags, int is_server) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "%s: out is NULL", fn);
  *out = NULL;
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "%s: cfg is NULL", fn);
  sli__error_clear(&cfg->err);
  if (flags) return sli__fail(&cfg->err, SLI_E_INVAL, "unknown flags 0x%x", flags);
  int rc = sli__tls_init();
  if (rc) return sli__fail(&cfg->err, rc, "the TLS engine cannot be initialised");
  sli_ctx *c = sli__zalloc(sizeof(*c));
  if (!c) return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  c->is_server = is_server;
  if (is_server ? !(c->own_tickets = sli__own_tickets_new())
                : !(c->sessions = sli__session_cache_new())) {
    free(c);
    return sli__fail(&cfg->err, SLI_E_NOMEM, "out of memory");
  }
  c->ssl_ctx = build(cfg, c, &rc);
  if (!c->ssl_ctx) {
    sli__session_cache_free(c->sessions);
    sli__own_tickets_free(c->own_tickets);
    free(c);
    return rc;
  }
  atomic_init(&c->refs, 1);
  c->own_identity = is_server && cfg->n_ids > 0;
  pthread_mutex_init(&c->lock, NULL);
  *out = c;
  return 0;
}

int sli_ctx_new_server(sli_ctx **out, sli_config *cfg, uint32_t flags) {
  return ctx_new("sli_ctx_new_server", out, cfg, flags, 1);
}

int sli_ctx_new_client(sli_ctx **out, sli_config *cfg, uint32_t flags) {
  return ctx_new("sli_ctx_new_client", out, cfg, flags, 0);
}

int sli_ctx_reload(sli_ctx *ctx, sli_config *cfg, uint32_t flags) {
  if (!ctx || !cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_ctx_reload: ctx and cfg are needed");
  sli__error_clear(&cfg->err);
  if (flags) return sli__fail(&cfg->err, SLI_E_INVAL, "unknown flags 0x%x", flags);
  /* A server that was given its identity never falls back to the self-signed default one: a
   * reload that lost the key pair (a typo, a file being renewed) would otherwise swap the
   * production certificate for it silently. */
  if (ctx->own_identity && cfg->n_ids == 0)
    return sli__fail(&cfg->err, SLI_E_NO_IDENTITY,
                     "the reload gives no certificate and key: the server keeps the identity it has");
  int rc;
  SSL_CTX *fresh = build(cfg, ctx, &rc);
  if (!fresh) return rc;
  pthread_mutex_lock(&ctx->lock);
  SSL_CTX *old = ctx->ssl_ctx;
  ctx->ssl_ctx = fresh;
  pthread_mutex_unlock(&ctx->lock);
  SSL_CTX_free(old); /* live connections hold their own reference */
  return 0;
}

void sli_ctx_up_ref(sli_ctx *ctx) {
  if (ctx) atomic_fetch_add(&ctx->refs, 1);
}

void sli_ctx_free(sli_ctx *ctx) {
  if (!ctx || atomic_fetch_sub(&ctx->refs, 1) != 1) return;
  SSL_CTX_free(ctx->ssl_ctx);
  sli__session_cache_free(ctx->sessions);
  sli__own_tickets_free(ctx->own_tickets);
  pthread_mutex_destroy(&ctx->lock);
  free(ctx);
}

int sli_ctx_stats(const sli_ctx *ctx, sli_stats *out, size_t size) {
  if (!ctx || !out) return sli__fail(NULL, SLI_E_INVAL, "sli_ctx_stats: ctx and out are needed");
  sli_stats now;
  memset(&now, 0, sizeof(now));
  sli__stats *st = (sli__stats *)&ctx->stats;
  now.handshakes = atomic_load(&st->handshakes);
  now.resumed = atomic_load(&st->resumed);
  for (size_t i = 0; i < 16; i++) now.failed[i] = atomic_load(&st->failed[i]);
  now.bytes_in = atomic_load(&st->bytes_in);
  now.bytes_out = atomic_load(&st->bytes_out);
  now.live = atomic_load(&st->live);
  memset(out, 0, size);
  memcpy(out, &now, size < sizeof(now) ? size : sizeof(now)); /* an older caller's smaller struct */
  return 0;
}
