/* sign.c — detached signatures: Ed25519 (pure), ECDSA with SHA-256 (DER), RSA-PSS with SHA-256,
 * MGF1-SHA-256 and a digest-length salt; over a message at once, or given in pieces (sli_signer). */
#include <stdlib.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "pki/pki.h"

size_t sli_key_sig_max_size(const sli_key *k) {
  if (!k || !k->has_private || sli_key_type(k) == SLI_KEY_X25519) return 0;
  return EVP_PKEY_size(k->pkey);
}

/* setup prepares a digest-sign or digest-verify context for `k`. */
static int setup(EVP_MD_CTX *md, const sli_key *k, int sign) {
  int t = sli_key_type(k);
  if (t == SLI_KEY_X25519 || t == 0)
    return sli__fail(NULL, SLI_E_UNSUPPORTED, "an X25519 key cannot %s: it only agrees keys",
                     sign ? "sign" : "verify signatures");
  const EVP_MD *digest = t == SLI_KEY_ED25519 ? NULL : EVP_sha256();
  EVP_PKEY_CTX *pctx = NULL;
  int ok = sign ? EVP_DigestSignInit(md, &pctx, digest, NULL, k->pkey)
                : EVP_DigestVerifyInit(md, &pctx, digest, NULL, k->pkey);
  if (ok && t == SLI_KEY_RSA)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1 /* digest length */) &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
  return ok ? 0 : sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot set up the signature algorithm");
}

int sli_key_sign(const sli_key *k, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len) {
  if (!k || !out_len || (!in && in_len))
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_sign: k, out_len and the input are needed");
  if (!k->has_private) return sli__fail(NULL, SLI_E_INVAL, "a public key cannot sign");
  size_t need = sli_key_sig_max_size(k);
  if (!need) return sli__fail(NULL, SLI_E_UNSUPPORTED, "an X25519 key cannot sign: it only agrees keys");
  if (!out || *out_len < need) {
    *out_len = need;
    return sli__fail(NULL, SLI_E_BUFSIZE, "sli_key_sign: a signature needs a buffer of %zu bytes", need);
  }
  EVP_MD_CTX md;
  EVP_MD_CTX_init(&md);
  int rc = setup(&md, k, 1);
  size_t sl = *out_len;
  if (!rc && !EVP_DigestSign(&md, out, &sl, in, in_len))
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot sign");
  EVP_MD_CTX_cleanup(&md);
  ERR_clear_error();
  if (rc) {
    *out_len = 0;
    return rc;
  }
  *out_len = sl;
  return 0;
}

int sli_key_verify(const sli_key *k, const uint8_t *sig, size_t sig_len, const uint8_t *in,
                   size_t in_len) {
  if (!k || !sig || (!in && in_len))
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_verify: k, sig and the input are needed");
  EVP_MD_CTX md;
  EVP_MD_CTX_init(&md);
  int rc = setup(&md, k, 0);
  if (!rc && !EVP_DigestVerify(&md, sig, sig_len, in, in_len))
    rc = sli__fail(NULL, SLI_E_SIGNATURE, "the signature does not verify with this key");
  EVP_MD_CTX_cleanup(&md);
  ERR_clear_error();
  return rc;
}

/* ---- Signatures over data given in pieces ---- */

struct sli_signer {
  sli_key *key; /* a reference */
  int verify, whole; /* whole: Ed25519, whose pure signature needs the message at once */
  EVP_MD_CTX md;
  uint8_t *buf; /* Ed25519: the message so far */
  size_t len, cap;
  int failed;
};

int sli_signer_new(sli_signer **out, const sli_key *k, int verify) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_signer_new: out is NULL");
  *out = NULL;
  if (!k) return sli__fail(NULL, SLI_E_INVAL, "sli_signer_new: k is NULL");
  if (!verify && !k->has_private) return sli__fail(NULL, SLI_E_INVAL, "a public key cannot sign");
  sli_signer *s = sli__zalloc(sizeof(*s));
  if (!s) return sli__fail(NULL, SLI_E_NOMEM, "sli_signer_new: out of memory");
  EVP_MD_CTX_init(&s->md);
  int rc = setup(&s->md, k, !verify);
  if (rc) {
    EVP_MD_CTX_cleanup(&s->md);
    free(s);
    return rc;
  }
  s->verify = verify;
  s->whole = sli_key_type(k) == SLI_KEY_ED25519;
  s->key = (sli_key *)k;
  atomic_fetch_add(&s->key->refs, 1);
  *out = s;
  return 0;
}

int sli_signer_update(sli_signer *s, const uint8_t *in, size_t len) {
  if (!s || (!in && len)) return sli__fail(NULL, SLI_E_INVAL, "sli_signer_update: s and in are needed");
  if (s->failed) return sli__fail(NULL, SLI_E_STATE, "sli_signer_update: the signer failed before");
  if (!s->whole) {
    if (EVP_DigestUpdate(&s->md, in, len)) return 0;
    s->failed = 1;
    return sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot hash the message");
  }
  if (len > s->cap - s->len) {
    size_t cap = s->cap ? s->cap : 65536;
    while (cap - s->len < len) {
      if (cap > SIZE_MAX / 2) {
        s->failed = 1;
        return sli__fail(NULL, SLI_E_NOMEM, "sli_signer_update: the message is too long");
      }
      cap *= 2;
    }
    uint8_t *b = realloc(s->buf, cap);
    if (!b) {
      s->failed = 1;
      return sli__fail(NULL, SLI_E_NOMEM, "sli_signer_update: out of memory (Ed25519 holds the message)");
    }
    s->buf = b;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, in, len);
  s->len += len;
  return 0;
}

int sli_signer_sign_final(sli_signer *s, uint8_t *out, size_t *out_len) {
  if (!s || !out_len || s->verify)
    return sli__fail(NULL, SLI_E_INVAL, "sli_signer_sign_final: a signer made to sign, and out_len");
  if (s->failed) return sli__fail(NULL, SLI_E_STATE, "sli_signer_sign_final: the signer failed before");
  if (s->whole) {
    int rc = sli_key_sign(s->key, out, out_len, s->buf ? s->buf : (const uint8_t *)"", s->len);
    if (rc != SLI_E_BUFSIZE) s->failed = 1; /* one signature per signer */
    return rc;
  }
  size_t need = sli_key_sig_max_size(s->key);
  if (!out || *out_len < need) {
    *out_len = need;
    return sli__fail(NULL, SLI_E_BUFSIZE, "sli_signer_sign_final: a signature needs %zu bytes", need);
  }
  size_t sl = *out_len;
  if (!EVP_DigestSignFinal(&s->md, out, &sl)) {
    s->failed = 1;
    *out_len = 0;
    return sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot sign");
  }
  *out_len = sl;
  s->failed = 1; /* one signature per signer */
  return 0;
}

int sli_signer_verify_final(sli_signer *s, const uint8_t *sig, size_t sig_len) {
  if (!s || !sig || !s->verify)
    return sli__fail(NULL, SLI_E_INVAL, "sli_signer_verify_final: a signer made to verify, and sig");
  if (s->failed) return sli__fail(NULL, SLI_E_STATE, "sli_signer_verify_final: the signer failed before");
  s->failed = 1;
  if (s->whole) return sli_key_verify(s->key, sig, sig_len, s->buf ? s->buf : (const uint8_t *)"", s->len);
  int ok = EVP_DigestVerifyFinal(&s->md, sig, sig_len);
  ERR_clear_error();
  return ok ? 0 : sli__fail(NULL, SLI_E_SIGNATURE, "the signature does not verify with this key");
}

void sli_signer_free(sli_signer *s) {
  if (!s) return;
  EVP_MD_CTX_cleanup(&s->md);
  if (s->buf) sli_free(s->buf, s->cap);
  sli_key_free(s->key);
  free(s);
}
