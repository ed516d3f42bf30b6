/* keyops.c — private keys the host keeps (an HSM, a KMS, another process): the handshake's signature
 * goes to the host's private-key callback, which may answer later from any thread while the
 * handshake returns SLI_WANT_PRIVATE_KEY. Such an identity signs with one algorithm, the one
 * `sli_key_sign` makes for its key: RSA-PSS-SHA256, ECDSA P-256 with SHA-256, or Ed25519. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "tls/conn.h"

#define MAX_SIGNATURE 2048 /* RSA 16384 bits; P-256 and Ed25519 far less */

size_t sli__async_key_prefs(X509 *leaf, const uint16_t **out) {
  static const uint16_t rsa[] = {SSL_SIGN_RSA_PSS_RSAE_SHA256};
  static const uint16_t p256[] = {SSL_SIGN_ECDSA_SECP256R1_SHA256};
  static const uint16_t ed[] = {SSL_SIGN_ED25519};
  EVP_PKEY *pub = leaf ? X509_get_pubkey(leaf) : NULL;
  size_t n = 0;
  if (!pub) {
    ERR_clear_error();
    return 0;
  }
  switch (EVP_PKEY_id(pub)) {
    case EVP_PKEY_RSA:
      if (EVP_PKEY_bits(pub) >= 2048) *out = rsa, n = 1;
      break;
    case EVP_PKEY_EC: {
      const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pub);
      if (ec && EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) == NID_X9_62_prime256v1) *out = p256, n = 1;
      break;
    }
    case EVP_PKEY_ED25519:
      *out = ed, n = 1;
      break;
    default:
      break;
  }
  EVP_PKEY_free(pub);
  return n;
}

/* take: a signature the host gave (state DONE) into out; resets the state for another. */
static enum ssl_private_key_result_t take(sli_conn *c, uint8_t *out, size_t *out_len,
                                         size_t max_out) {
  enum ssl_private_key_result_t r = ssl_private_key_failure;
  pthread_mutex_lock(&c->hook_lock);
  if (c->key_status == SLI_E_INVAL) {
    sli__hook_fail(c, SLI_E_INVAL, "the host's private-key callback gave a signature of %zu bytes "
                   "(empty, or longer than any signature)", c->key_sig_len);
  } else if (c->key_status < 0 || !c->key_sig) {
    int code = c->key_status < 0 ? c->key_status : SLI_E_INTERNAL;
    sli__hook_fail(c, code, "the host's private-key callback failed (%s)", sli_err_name(code));
  } else if (c->key_sig_len > max_out) {
    sli__hook_fail(c, SLI_E_INVAL, "the host's private-key callback gave a signature longer than the "
                               "key can make");
  } else {
    memcpy(out, c->key_sig, c->key_sig_len);
    *out_len = c->key_sig_len;
    r = ssl_private_key_success;
  }
  free(c->key_sig);
  c->key_sig = NULL;
  c->key_sig_len = 0;
  c->key_state = SLI__HOOK_IDLE;
  pthread_mutex_unlock(&c->hook_lock);
  return r;
}

static enum ssl_private_key_result_t key_sign(SSL *ssl, uint8_t *out, size_t *out_len,
                                              size_t max_out, uint16_t sigalg, const uint8_t *in,
                                              size_t in_len) {
  sli__snapshot *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sli__snapshot_index);
  sli_conn *c = SSL_get_ex_data(ssl, sli__conn_index);
  if (!c) return ssl_private_key_failure;
  if (!s || !s->hooks.key_fn) {
    sli__hook_fail(c, SLI_E_CONFIG, "the identity has no private key and no private-key callback is set");
    return ssl_private_key_failure;
  }
  X509 *leaf = SSL_get_certificate(ssl);
  sli_cert *cert = leaf ? sli__cert_from_x509(leaf, NULL) : NULL;
  if (!cert) {
    sli__hook_fail(c, SLI_E_NOMEM, "out of memory for the private-key callback");
    return ssl_private_key_failure;
  }
  pthread_mutex_lock(&c->hook_lock);
  c->key_state = SLI__HOOK_CALLING;
  pthread_mutex_unlock(&c->hook_lock);
  int r = s->hooks.key_fn(c, cert, in, in_len, s->hooks.key_arg);
  sli_cert_free(cert);
  pthread_mutex_lock(&c->hook_lock);
  int state = c->key_state;
  if (r == SLI_WANT_PRIVATE_KEY && state != SLI__HOOK_DONE) c->key_state = SLI__HOOK_WAITING;
  pthread_mutex_unlock(&c->hook_lock);
  if (r == SLI_WANT_PRIVATE_KEY && state != SLI__HOOK_DONE) return ssl_private_key_retry;
  if (r != 0 && r != SLI_WANT_PRIVATE_KEY) {
    if (sli__is_refusal(r))
      sli__hook_fail(c, r, "the host's private-key callback failed (%s)", sli_err_name(r));
    else
      sli__hook_fail(c, SLI_E_INVAL, "the private-key callback returned %d (0, "
                     "SLI_WANT_PRIVATE_KEY or a negative SLI_E_* code)", r);
    pthread_mutex_lock(&c->hook_lock);
    c->key_state = SLI__HOOK_IDLE;
    free(c->key_sig);
    c->key_sig = NULL;
    pthread_mutex_unlock(&c->hook_lock);
    return ssl_private_key_failure;
  }
  if (state != SLI__HOOK_DONE) {
    sli__hook_fail(c, SLI_E_INVAL, "the private-key callback returned without a signature (call "
                               "sli_conn_private_key_done, or return SLI_WANT_PRIVATE_KEY)");
    pthread_mutex_lock(&c->hook_lock);
    c->key_state = SLI__HOOK_IDLE;
    pthread_mutex_unlock(&c->hook_lock);
    return ssl_private_key_failure;
  }
  return take(c, out, out_len, max_out);
}

static enum ssl_private_key_result_t key_decrypt(SSL *ssl, uint8_t *out, size_t *out_len,
                                                 size_t max_out, const uint8_t *in, size_t in_len) {
  return ssl_private_key_failure; /* RSA key exchange: never offered (ECDHE always) */
}

static enum ssl_private_key_result_t key_complete(SSL *ssl, uint8_t *out, size_t *out_len,
                                                  size_t max_out) {
  sli_conn *c = SSL_get_ex_data(ssl, sli__conn_index);
  if (!c) return ssl_private_key_failure;
  pthread_mutex_lock(&c->hook_lock);
  int state = c->key_state;
  pthread_mutex_unlock(&c->hook_lock);
  if (state == SLI__HOOK_WAITING) return ssl_private_key_retry;
  if (state != SLI__HOOK_DONE) return ssl_private_key_failure;
  return take(c, out, out_len, max_out);
}

const SSL_PRIVATE_KEY_METHOD sli__key_method = {key_sign, key_decrypt, key_complete};

int sli_config_set_private_key_cb(sli_config *cfg, sli_private_key_fn fn, void *arg) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_set_private_key_cb: cfg is NULL");
  cfg->hooks.key_fn = fn;
  cfg->hooks.key_arg = fn ? arg : NULL;
  return 0;
}

int sli_config_add_cert_file_async_key(sli_config *cfg, const char *cert_file) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_add_cert_file_async_key: cfg is NULL");
  sli__error_clear(&cfg->err);
  if (!cert_file) return sli__fail(&cfg->err, SLI_E_INVAL, "a certificate file is needed");
  if (cfg->n_ids >= SLI_MAX_IDENTITIES)
    return sli__fail(&cfg->err, SLI_E_INVAL, "at most %d identities", SLI_MAX_IDENTITIES);
  char *pem = NULL;
  size_t len;
  int rc = sli__read_file(cert_file, &pem, &len, &cfg->err);
  if (rc) return rc;
  char what[300];
  snprintf(what, sizeof(what), "certificate file '%s'", cert_file);
  STACK_OF(X509) *chain = NULL;
  rc = sli__parse_chain(what, pem, len, &chain, &cfg->err);
  sli_free(pem, len + 1);
  if (rc) return rc;
  const uint16_t *prefs;
  if (!sli__async_key_prefs(sk_X509_value(chain, 0), &prefs)) {
    sk_X509_pop_free(chain, X509_free);
    return sli__fail(&cfg->err, SLI_E_UNSUPPORTED,
                     "%s: " SLI__ASYNC_KEY_KINDS, what);
  }
  cfg->ids[cfg->n_ids].chain = chain;
  cfg->ids[cfg->n_ids].key = NULL;
  cfg->n_ids++;
  return 0;
}

int sli_conn_private_key_done(sli_conn *c, const uint8_t *sig, size_t sig_len) {
  if (!c) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_private_key_done: conn is NULL");
  int bad_len = sig && (sig_len == 0 || sig_len > MAX_SIGNATURE);
  if (bad_len) sig = NULL; /* the handshake fails, named, rather than wait for its deadline */
  uint8_t *copy = NULL;
  if (sig) {
    if (!(copy = malloc(sig_len ? sig_len : 1)))
      return sli__fail(NULL, SLI_E_NOMEM, "sli_conn_private_key_done: out of memory");
    memcpy(copy, sig, sig_len);
  }
  if (sli__hook_lock_answer(c)) {
    free(copy);
    return 0;
  }
  int ok = c->key_state == SLI__HOOK_CALLING || c->key_state == SLI__HOOK_WAITING;
  if (ok) {
    free(c->key_sig);
    c->key_sig = copy;
    c->key_sig_len = sig_len;
    c->key_status = bad_len ? SLI_E_INVAL : sig ? 0 : SLI_E_SIGNATURE;
    c->key_state = SLI__HOOK_DONE;
    pthread_cond_broadcast(&c->hook_cond);
  }
  pthread_mutex_unlock(&c->hook_lock);
  if (!ok) {
    free(copy);
    return sli__fail(NULL, SLI_E_STATE, "sli_conn_private_key_done: no signature is awaited");
  }
  if (bad_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_conn_private_key_done: a signature of %zu bytes "
                                        "(empty, or longer than any): the handshake fails", sig_len);
  return 0;
}
