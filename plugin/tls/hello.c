/* hello.c — a server's answer to the ClientHello: which identity a connection presents (the
 * configured one its SNI name matches, or the host's choice from its ClientHello callback, which may
 * come later from another thread), and whether a TLS 1.2 session goes to the host's session store
 * instead of a ticket. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/conn.h"

/* chain_rest returns a new stack holding the chain after the leaf (the leaf's issuers). */
static STACK_OF(X509) *chain_rest(const sli__identity *id) {
  STACK_OF(X509) *rest = sk_X509_new_null();
  for (size_t i = 1; rest && i < sk_X509_num(id->chain); i++) sk_X509_push(rest, sk_X509_value(id->chain, i));
  return rest;
}

int sli__use_identity_ctx(SSL_CTX *ctx, const sli__identity *id) {
  STACK_OF(X509) *rest = chain_rest(id);
  int ok = rest && SSL_CTX_use_certificate(ctx, sk_X509_value(id->chain, 0)) &&
           SSL_CTX_set1_chain(ctx, rest);
  if (ok && id->key) { /* a key of its own */
    SSL_CTX_set_private_key_method(ctx, NULL);
    ok = SSL_CTX_use_PrivateKey(ctx, id->key) && SSL_CTX_set_signing_algorithm_prefs(ctx, NULL, 0);
  } else if (ok) { /* the host's key: its callback signs, with the one algorithm it can */
    const uint16_t *prefs;
    size_t n = sli__async_key_prefs(sk_X509_value(id->chain, 0), &prefs);
    SSL_CTX_set_private_key_method(ctx, &sli__key_method);
    ok = n && SSL_CTX_set_signing_algorithm_prefs(ctx, prefs, n);
  }
  sk_X509_free(rest);
  return ok ? 0 : SLI_E_CONFIG;
}

/* use_identity_ssl makes `id` the identity of one connection: 0 or SLI_E_CONFIG. */
static int use_identity_ssl(SSL *ssl, const sli__identity *id) {
  STACK_OF(X509) *rest = chain_rest(id);
  int ok = rest && SSL_use_certificate(ssl, sk_X509_value(id->chain, 0)) && SSL_set1_chain(ssl, rest);
  if (ok && id->key) {
    SSL_set_private_key_method(ssl, NULL);
    ok = SSL_use_PrivateKey(ssl, id->key) && SSL_set_signing_algorithm_prefs(ssl, NULL, 0);
  } else if (ok) {
    const uint16_t *prefs;
    size_t n = sli__async_key_prefs(sk_X509_value(id->chain, 0), &prefs);
    SSL_set_private_key_method(ssl, &sli__key_method);
    ok = n && SSL_set_signing_algorithm_prefs(ssl, prefs, n);
  }
  sk_X509_free(rest);
  return ok ? 0 : SLI_E_CONFIG;
}

/* by_name: the first configured identity whose certificate matches the SNI name. */
static int by_name(SSL *ssl, const sli__snapshot *s) {
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name || s->n_ids < 2) return 1;
  for (size_t i = 0; i < s->n_ids; i++) {
    if (X509_check_host(sk_X509_value(s->ids[i].chain, 0), name, strlen(name), 0, NULL) == 1) {
      if (i == 0) return 1; /* already the context's default */
      return use_identity_ssl(ssl, &s->ids[i]) == 0;
    }
  }
  return 1; /* no match: the default identity */
}

/* by_host: runs the host's ClientHello callback. 1 to go on, -1 to wait for it, 0 to fail. */
static int by_host(SSL *ssl, sli_conn *c, const sli__snapshot *s) {
  pthread_mutex_lock(&c->hook_lock);
  int state = c->hello_state;
  if (state == SLI__HOOK_IDLE) c->hello_state = SLI__HOOK_CALLING;
  pthread_mutex_unlock(&c->hook_lock);
  if (state == SLI__HOOK_WAITING) return -1;
  if (state == SLI__HOOK_IDLE) {
    int r = s->hooks.hello_fn(c, s->hooks.hello_arg);
    pthread_mutex_lock(&c->hook_lock);
    if (r == SLI_WANT_CLIENT_HELLO && c->hello_state != SLI__HOOK_DONE) {
      c->hello_state = SLI__HOOK_WAITING; /* sli_conn_client_hello_done will say */
      pthread_mutex_unlock(&c->hook_lock);
      return -1;
    }
    if (r == SLI_WANT_CLIENT_HELLO) r = c->hello_status; /* answered before it returned */
    else if (r == 0 && c->hello_state == SLI__HOOK_DONE) r = c->hello_status;
    c->hello_state = SLI__HOOK_DONE;
    c->hello_status = r;
    pthread_mutex_unlock(&c->hook_lock);
  }
  int status = c->hello_status;
  if (status != 0 && !sli__is_refusal(status))
    return sli__hook_fail(c, SLI_E_INVAL, "the ClientHello callback returned %d (0, "
                          "SLI_WANT_CLIENT_HELLO or a negative SLI_E_* code)", status);
  if (status < 0)
    return sli__hook_fail(c, status, "the host's ClientHello callback refused the handshake (%s)",
                          sli_err_name(status));
  if (c->hello_id.chain) {
    if (!c->hello_id.key && !s->hooks.key_fn)
      return sli__hook_fail(c, SLI_E_CONFIG, "the identity chosen has no private key and no "
                                              "private-key callback is set");
    if (use_identity_ssl(ssl, &c->hello_id))
      return sli__hook_fail(c, SLI_E_CONFIG, "the identity chosen by the ClientHello callback "
                                              "cannot be used");
  }
  return 1;
}

/* hello: BoringSSL's certificate callback, run once the ClientHello's extensions are parsed (again
 * after a pause). */
static int hello(SSL *ssl, void *arg) {
  sli__snapshot *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sli__snapshot_index);
  sli_conn *c = SSL_get_ex_data(ssl, sli__conn_index);
  if (!s || !c) return 1;
  /* A fleet's shared store holds TLS 1.2 sessions by ID: no TLS 1.2 ticket (TLS 1.3 keeps its) */
  if (s->hooks.store_fn && SSL_version(ssl) == TLS1_2_VERSION) SSL_set_options(ssl, SSL_OP_NO_TICKET);
  if (s->hooks.hello_fn) {
    int r = by_host(ssl, c, s);
    if (r <= 0 || c->hello_id.chain) return r;
  }
  return by_name(ssl, s);
}

void sli__hello_install(SSL_CTX *ctx, const sli__snapshot *snap) {
  if (snap->n_ids > 1 || snap->hooks.hello_fn || snap->hooks.store_fn)
    SSL_CTX_set_cert_cb(ctx, hello, NULL);
}

int sli_config_set_client_hello_cb(sli_config *cfg, sli_client_hello_fn fn, void *arg) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_set_client_hello_cb: cfg is NULL");
  cfg->hooks.hello_fn = fn;
  cfg->hooks.hello_arg = fn ? arg : NULL;
  return 0;
}

int sli_conn_set_identity(sli_conn *c, const sli_cert *chain, const sli_key *key) {
  if (!c || !chain)
    return sli__fail(NULL, SLI_E_INVAL, "sli_conn_set_identity: conn and chain are needed");
  if (key && !key->has_private)
    return sli__fail(NULL, SLI_E_INVAL, "sli_conn_set_identity: the key is a public key");
  if (key && !X509_check_private_key(chain->x509, key->pkey)) {
    ERR_clear_error();
    return sli__fail(NULL, SLI_E_KEY_MISMATCH,
                     "sli_conn_set_identity: the key is not the certificate's (%s)", chain->subject);
  }
  const uint16_t *prefs;
  if (!key && !sli__async_key_prefs(chain->x509, &prefs))
    return sli__fail(NULL, SLI_E_UNSUPPORTED,
                     "sli_conn_set_identity: " SLI__ASYNC_KEY_KINDS);
  sli__identity id = {0};
  if (chain->chain) {
    id.chain = X509_chain_up_ref(chain->chain);
  } else if ((id.chain = sk_X509_new_null()) && sk_X509_push(id.chain, chain->x509)) {
    X509_up_ref(chain->x509);
  }
  if (!id.chain || sk_X509_num(id.chain) < 1) {
    sli__identity_clear(&id);
    return sli__fail(NULL, SLI_E_NOMEM, "sli_conn_set_identity: out of memory");
  }
  if (key) {
    id.key = key->pkey;
    EVP_PKEY_up_ref(id.key);
  }
  pthread_mutex_lock(&c->hook_lock);
  int ok = !c->orphaned && (c->hello_state == SLI__HOOK_CALLING || c->hello_state == SLI__HOOK_WAITING);
  sli__identity old = c->hello_id;
  if (ok) c->hello_id = id;
  pthread_mutex_unlock(&c->hook_lock);
  sli__identity_clear(ok ? &old : &id);
  return ok ? 0
            : sli__fail(NULL, SLI_E_STATE, "sli_conn_set_identity: only during the ClientHello "
                                           "callback or before sli_conn_client_hello_done");
}

int sli_conn_client_hello_done(sli_conn *c, int status) {
  if (!c) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_client_hello_done: conn is NULL");
  if (sli__hook_lock_answer(c)) return 0;
  int ok = c->hello_state == SLI__HOOK_CALLING || c->hello_state == SLI__HOOK_WAITING;
  if (ok) {
    c->hello_state = SLI__HOOK_DONE;
    c->hello_status = status; /* anything but 0 or a refusal fails it with SLI_E_INVAL (by_host) */
    pthread_cond_broadcast(&c->hook_cond);
  }
  pthread_mutex_unlock(&c->hook_lock);
  if (!ok) return sli__fail(NULL, SLI_E_STATE, "sli_conn_client_hello_done: no ClientHello waits");
  if (status != 0 && !sli__is_refusal(status))
    return sli__fail(NULL, SLI_E_INVAL, "sli_conn_client_hello_done: status %d is not 0 or a "
                                        "negative SLI_E_* code: the handshake fails", status);
  return 0;
}
