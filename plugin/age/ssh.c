/* ssh.c — age's two SSH recipient types, as the `age` tool (filippo.io/age/agessh) makes them:
 *   ssh-ed25519: "-> ssh-ed25519 <tag> <X25519 share>". The Ed25519 key is used in its Montgomery
 *     (X25519) form; shared = X25519(tweak, X25519(eph, pk)) with
 *     tweak = HKDF-SHA256(ikm = empty, salt = key blob, info = label); wrap key = HKDF(shared, salt = share || pk,
 *     info = label); label "age-encryption.org/v1/ssh-ed25519".
 *   ssh-rsa: "-> ssh-rsa <tag>", body = RSA-OAEP-SHA256 of the file key with label
 *     "age-encryption.org/v1/ssh-rsa".
 * tag = base64 of the first 4 bytes of SHA-256(key blob) (blob: the OpenSSH public-key wire form). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/curve25519.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "age/age.h"

#define ED_LABEL "age-encryption.org/v1/ssh-ed25519"
#define RSA_LABEL "age-encryption.org/v1/ssh-rsa"

/* ed25519_to_montgomery maps an Ed25519 public key (y, sign bit) to X25519 u = (1 + y) / (1 - y)
 * mod 2^255 - 19, after checking that the point is on the curve (x^2 = (y^2 - 1) / (d y^2 + 1)
 * must be a square): 0 or SLI_E_PEM. */
static int ed25519_to_montgomery(uint8_t u_out[32], const uint8_t ed[32]) {
  uint8_t yb[32];
  memcpy(yb, ed, 32);
  yb[31] &= 0x7f;
  BN_CTX *ctx = BN_CTX_new();
  BIGNUM *p = BN_new(), *y = BN_le2bn(yb, 32, NULL), *one = BN_new(), *d = BN_new(), *t = BN_new(),
         *num = BN_new(), *den = BN_new(), *u = BN_new(), *e = BN_new();
  int ok = ctx && p && y && one && d && t && num && den && u && e && BN_one(one) &&
           BN_set_word(p, 1) && BN_lshift(p, p, 255) && BN_sub_word(p, 19) &&
           BN_nnmod(y, y, p, ctx) &&
           /* d = -121665 / 121666 */
           BN_set_word(t, 121666) && BN_mod_inverse(t, t, p, ctx) != NULL && BN_set_word(d, 121665) &&
           BN_sub(d, p, d) && BN_mod_mul(d, d, t, p, ctx) &&
           /* x^2 = (y^2 - 1) / (d y^2 + 1) */
           BN_mod_sqr(t, y, p, ctx) && BN_mod_sub(num, t, one, p, ctx) && BN_mod_mul(den, d, t, p, ctx) &&
           BN_mod_add(den, den, one, p, ctx) && BN_mod_inverse(den, den, p, ctx) != NULL &&
           BN_mod_mul(t, num, den, p, ctx) &&
           /* Euler: a square iff t^((p-1)/2) is 1 (or t is 0) */
           BN_sub(e, p, one) && BN_rshift1(e, e) && BN_mod_exp(num, t, e, p, ctx) &&
           (BN_is_zero(t) || BN_is_one(num)) &&
           /* u = (1 + y) / (1 - y) */
           BN_mod_sub(den, one, y, p, ctx) && !BN_is_zero(den) && BN_mod_inverse(den, den, p, ctx) != NULL &&
           BN_mod_add(num, one, y, p, ctx) && BN_mod_mul(u, num, den, p, ctx) && BN_bn2le_padded(u_out, 32, u);
  BN_free(p), BN_free(y), BN_free(one), BN_free(d), BN_free(t), BN_free(num), BN_free(den), BN_free(u), BN_free(e);
  BN_CTX_free(ctx);
  ERR_clear_error();
  return ok ? 0 : SLI_E_PEM;
}

/* Fills tag (and, for Ed25519, tweak and the Montgomery public key) from a key. */
static int ssh_common(EVP_PKEY *pkey, int *kind, char tag[8], uint8_t tweak[32], uint8_t mont[32]) {
  int id = EVP_PKEY_id(pkey);
  if (id != EVP_PKEY_ED25519 && id != EVP_PKEY_RSA) return SLI_E_UNSUPPORTED;
  if (id == EVP_PKEY_RSA && EVP_PKEY_bits(pkey) < 2048) return SLI_E_WEAK_KEY; /* as age refuses */
  uint8_t *blob = NULL, h[SHA256_DIGEST_LENGTH];
  size_t blen = 0;
  int rc = sli__openssh_blob(pkey, &blob, &blen);
  if (rc) return rc;
  SHA256(blob, blen, h);
  sli__age_b64(tag, h, 4);
  rc = 0;
  if (id == EVP_PKEY_ED25519) {
    uint8_t ed[32];
    size_t el = sizeof(ed);
    if (sli__age_hkdf32(tweak, NULL, 0, blob, blen, ED_LABEL) ||
        !EVP_PKEY_get_raw_public_key(pkey, ed, &el) || ed25519_to_montgomery(mont, ed))
      rc = SLI_E_PEM;
  }
  OPENSSL_free(blob);
  *kind = id == EVP_PKEY_ED25519 ? AGE_SSH_ED25519 : AGE_SSH_RSA;
  return rc;
}

int sli__age_ssh_recipient(sli_age_recipient *r, EVP_PKEY *pkey) {
  int rc = ssh_common(pkey, &r->kind, r->tag, r->tweak, r->pk);
  if (rc) return rc;
  EVP_PKEY_up_ref(pkey);
  r->pkey = pkey;
  return 0;
}

int sli__age_ssh_identity(sli_age_identity *id, EVP_PKEY *pkey) {
  int rc = ssh_common(pkey, &id->kind, id->tag, id->tweak, id->pk);
  if (rc) return rc;
  if (id->kind == AGE_SSH_ED25519) {
    uint8_t seed[32], h[SHA512_DIGEST_LENGTH];
    size_t sl = sizeof(seed);
    if (!EVP_PKEY_get_raw_private_key(pkey, seed, &sl)) return SLI_E_INVAL; /* a public key only */
    SHA512(seed, 32, h);
    memcpy(id->sk, h, 32);
    OPENSSL_cleanse(seed, sizeof(seed));
    OPENSSL_cleanse(h, sizeof(h));
  } else if (!RSA_get0_d(EVP_PKEY_get0_RSA(pkey))) {
    return SLI_E_INVAL;
  }
  EVP_PKEY_up_ref(pkey);
  id->pkey = pkey;
  return 0;
}

/* ed_wrap_key derives the ssh-ed25519 wrap key from the (already computed) X25519 shared secret:
 * 0 or SLI_E_INTERNAL. */
static int ed_wrap_key(uint8_t key[32], const uint8_t shared_in[32], const uint8_t tweak[32],
                       const uint8_t share[32], const uint8_t pk[32]) {
  uint8_t shared[32], salt[64];
  int rc = X25519(shared, tweak, shared_in) ? 0 : SLI_E_INTERNAL;
  memcpy(salt, share, 32);
  memcpy(salt + 32, pk, 32);
  if (!rc) rc = sli__age_hkdf32(key, shared, 32, salt, 64, ED_LABEL);
  OPENSSL_cleanse(shared, sizeof(shared));
  return rc;
}

static EVP_PKEY_CTX *oaep_ctx(EVP_PKEY *pkey, int decrypt) {
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pkey, NULL);
  uint8_t *label = OPENSSL_malloc(sizeof(RSA_LABEL) - 1);
  if (label) memcpy(label, RSA_LABEL, sizeof(RSA_LABEL) - 1);
  if (!c || !label || !(decrypt ? EVP_PKEY_decrypt_init(c) : EVP_PKEY_encrypt_init(c)) ||
      !EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) || !EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) ||
      !EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) ||
      !EVP_PKEY_CTX_set0_rsa_oaep_label(c, label, sizeof(RSA_LABEL) - 1)) {
    EVP_PKEY_CTX_free(c);
    OPENSSL_free(label);
    return NULL;
  }
  return c; /* owns the label now */
}

int sli__age_ssh_wrap(const sli_age_recipient *r, const uint8_t file_key[16], char *line, size_t cap,
                      uint8_t *body, size_t *body_len) {
  if (r->kind == AGE_SSH_ED25519) {
    uint8_t esk[32], epk[32], shared[32], key[32];
    char a[64];
    X25519_keypair(epk, esk);
    int rc = X25519(shared, esk, r->pk) ? 0 : SLI_E_INTERNAL;
    if (!rc) rc = ed_wrap_key(key, shared, r->tweak, epk, r->pk);
    if (!rc) rc = sli__age_wrap_key(body, key, file_key);
    OPENSSL_cleanse(esk, sizeof(esk));
    OPENSSL_cleanse(shared, sizeof(shared));
    OPENSSL_cleanse(key, sizeof(key));
    if (rc) return rc;
    sli__age_b64(a, epk, 32);
    snprintf(line, cap, "-> ssh-ed25519 %s %s\n", r->tag, a);
    *body_len = 32;
    return 0;
  }
  EVP_PKEY_CTX *c = oaep_ctx(r->pkey, 0);
  size_t n = 2048;
  int ok = c && EVP_PKEY_encrypt(c, body, &n, file_key, 16);
  EVP_PKEY_CTX_free(c);
  ERR_clear_error();
  if (!ok) return SLI_E_INTERNAL;
  snprintf(line, cap, "-> ssh-rsa %s\n", r->tag);
  *body_len = n;
  return 0;
}

int sli__age_ssh_unwrap(const sli_age_identity *id, char **args, int nargs, const uint8_t *body, size_t blen,
                        uint8_t file_key[16]) {
  if (id->kind == AGE_SSH_ED25519) {
    uint8_t share[32], shared[32], key[32];
    if (nargs != 3 || sli__age_b64_decode(share, sizeof(share), args[2], strlen(args[2])) || blen != 32)
      return SLI_E_HEADER;
    if (strcmp(args[1], id->tag) != 0) return SLI_E_NO_MATCH;
    if (!X25519(shared, id->sk, share)) return SLI_E_HEADER; /* a low-order share */
    int rc = ed_wrap_key(key, shared, id->tweak, share, id->pk);
    if (!rc) rc = sli__age_unwrap_key(file_key, key, body, blen);
    OPENSSL_cleanse(shared, sizeof(shared));
    OPENSSL_cleanse(key, sizeof(key));
    return rc ? SLI_E_NO_MATCH : 0;
  }
  if (nargs != 2) return SLI_E_HEADER;
  if (strcmp(args[1], id->tag) != 0) return SLI_E_NO_MATCH;
  EVP_PKEY_CTX *c = oaep_ctx(id->pkey, 1);
  uint8_t out[2048];
  size_t n = sizeof(out);
  int ok = c && EVP_PKEY_decrypt(c, out, &n, body, blen) && n == 16;
  EVP_PKEY_CTX_free(c);
  ERR_clear_error();
  if (ok) memcpy(file_key, out, 16);
  OPENSSL_cleanse(out, sizeof(out));
  return ok ? 0 : SLI_E_NO_MATCH;
}
