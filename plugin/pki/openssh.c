/* openssh.c — OpenSSH key formats read by sli: public-key lines ("ssh-ed25519 AAAA… comment",
 * "ssh-rsa AAAA…") and unencrypted "openssh-key-v1" private keys ("-----BEGIN OPENSSH PRIVATE
 * KEY-----", Ed25519 and RSA). An encrypted one is SLI_E_KEY_ENCRYPTED: OpenSSH encrypts with
 * bcrypt_pbkdf, which BoringSSL lacks, so the message says to remove the passphrase with
 * `ssh-keygen -p`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "pki/pki.h"

#define MAGIC "openssh-key-v1"

/* get_string reads an SSH "string" (a 32-bit big-endian length, then that many bytes): 0 or
 * SLI_E_PEM. */
static int get_string(CBS *cbs, CBS *out) {
  uint32_t n;
  return CBS_get_u32(cbs, &n) && CBS_get_bytes(cbs, out, n) ? 0 : SLI_E_PEM;
}

/* An mpint as OpenSSH writes it: big-endian, no needless leading zero, positive. */
static BIGNUM *get_mpint(CBS *cbs) {
  CBS v;
  if (get_string(cbs, &v)) return NULL;
  const uint8_t *p = CBS_data(&v);
  size_t n = CBS_len(&v);
  if (n && (p[0] & 0x80)) return NULL;                      /* negative */
  if (n >= 2 && p[0] == 0 && !(p[1] & 0x80)) return NULL;   /* not minimal */
  if (n > 2048) return NULL;
  return BN_bin2bn(p, n, NULL);
}

static int is_name(const CBS *cbs, const char *name) {
  return CBS_len(cbs) == strlen(name) && memcmp(CBS_data(cbs), name, CBS_len(cbs)) == 0;
}

/* Builds an EVP_PKEY from a public-key blob (string type, then the type's fields). */
static int pkey_from_blob(const uint8_t *blob, size_t len, EVP_PKEY **out) {
  CBS cbs, type;
  CBS_init(&cbs, blob, len);
  *out = NULL;
  if (get_string(&cbs, &type)) return SLI_E_PEM;
  if (is_name(&type, "ssh-ed25519")) {
    CBS pk;
    if (get_string(&cbs, &pk) || CBS_len(&pk) != 32 || CBS_len(&cbs)) return SLI_E_PEM;
    *out = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, CBS_data(&pk), 32);
    return *out ? 0 : SLI_E_PEM;
  }
  if (is_name(&type, "ssh-rsa")) {
    BIGNUM *e = get_mpint(&cbs), *n = get_mpint(&cbs);
    RSA *rsa = RSA_new();
    EVP_PKEY *pkey = EVP_PKEY_new();
    if (!e || !n || CBS_len(&cbs) || !rsa || !pkey || !RSA_set0_key(rsa, n, e, NULL)) {
      BN_free(e);
      BN_free(n);
      RSA_free(rsa);
      EVP_PKEY_free(pkey);
      return SLI_E_PEM;
    }
    if (!EVP_PKEY_assign_RSA(pkey, rsa)) {
      RSA_free(rsa);
      EVP_PKEY_free(pkey);
      return SLI_E_PEM;
    }
    *out = pkey;
    return 0;
  }
  return SLI_E_UNSUPPORTED;
}

int sli__openssh_public_parse(const char *line, EVP_PKEY **out, sli__error *e) {
  *out = NULL;
  const char *sp = strchr(line, ' ');
  if (!sp) return sli__fail(e, SLI_E_PEM, "not an OpenSSH public-key line ('type base64 [comment]')");
  size_t tlen = (size_t)(sp - line);
  const char *b = sp + 1;
  size_t blen = strcspn(b, " \t\r\n");
  size_t dlen;
  if (!EVP_DecodedLength(&dlen, blen) || blen == 0 || dlen > 4096)
    return sli__fail(e, SLI_E_PEM, "the OpenSSH public key has no valid base64 part");
  uint8_t *blob = malloc(dlen ? dlen : 1);
  if (!blob) return sli__fail(e, SLI_E_NOMEM, "out of memory reading an OpenSSH public key");
  size_t n;
  if (!EVP_DecodeBase64(blob, &n, dlen, (const uint8_t *)b, blen)) {
    free(blob);
    return sli__fail(e, SLI_E_PEM, "the OpenSSH public key's base64 part is malformed");
  }
  /* the type named on the line must be the one inside the blob */
  CBS cbs, type;
  CBS_init(&cbs, blob, n);
  if (get_string(&cbs, &type) || CBS_len(&type) != tlen ||
      memcmp(CBS_data(&type), line, tlen) != 0) {
    free(blob);
    return sli__fail(e, SLI_E_PEM, "the OpenSSH public key's type does not match its line");
  }
  int rc = pkey_from_blob(blob, n, out);
  ERR_clear_error();
  free(blob);
  if (rc) {
    return rc == SLI_E_UNSUPPORTED
               ? sli__fail(e, rc, "OpenSSH key type '%.*s' is not supported (ssh-ed25519, ssh-rsa are)",
                           (int)(tlen > 40 ? 40 : tlen), line)
               : sli__fail(e, rc, "the OpenSSH %.*s public key is malformed",
                           (int)(tlen > 40 ? 40 : tlen), line);
  }
  return 0;
}

/* Private section of an unencrypted key: check ints, then the key's fields, a comment, padding. */
static int parse_private(CBS *priv, EVP_PKEY *pub, EVP_PKEY **out, sli__error *e) {
  uint32_t c1, c2;
  CBS type;
  if (!CBS_get_u32(priv, &c1) || !CBS_get_u32(priv, &c2) || c1 != c2 || get_string(priv, &type))
    return sli__fail(e, SLI_E_PEM, "the OpenSSH private key is malformed (check bytes)");
  EVP_PKEY *pkey = NULL;
  if (is_name(&type, "ssh-ed25519")) {
    CBS pk, sk;
    if (get_string(priv, &pk) || CBS_len(&pk) != 32 || get_string(priv, &sk) || CBS_len(&sk) != 64 ||
        memcmp(CBS_data(&sk) + 32, CBS_data(&pk), 32) != 0)
      return sli__fail(e, SLI_E_PEM, "the OpenSSH Ed25519 private key is malformed");
    pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, CBS_data(&sk), 32);
  } else if (is_name(&type, "ssh-rsa")) {
    BIGNUM *n = get_mpint(priv), *pub_e = get_mpint(priv), *d = get_mpint(priv), *iqmp = get_mpint(priv),
           *p = get_mpint(priv), *q = get_mpint(priv), *dmp1 = BN_new(), *dmq1 = BN_new(), *t = BN_new();
    BN_CTX *bctx = BN_CTX_new();
    RSA *rsa = RSA_new();
    int ok = n && pub_e && d && iqmp && p && q && dmp1 && dmq1 && t && bctx && rsa &&
             BN_sub(t, p, BN_value_one()) && BN_mod(dmp1, d, t, bctx) && BN_sub(t, q, BN_value_one()) &&
             BN_mod(dmq1, d, t, bctx);
    BN_free(t);
    BN_CTX_free(bctx);
    if (ok && RSA_set0_key(rsa, n, pub_e, d)) {
      n = pub_e = d = NULL;
      if (RSA_set0_factors(rsa, p, q)) {
        p = q = NULL;
        if (RSA_set0_crt_params(rsa, dmp1, dmq1, iqmp)) dmp1 = dmq1 = iqmp = NULL;
        else ok = 0;
      } else ok = 0;
    } else ok = 0;
    BN_free(n), BN_free(pub_e), BN_clear_free(d), BN_clear_free(iqmp), BN_clear_free(p), BN_clear_free(q);
    BN_clear_free(dmp1), BN_clear_free(dmq1);
    if (ok && RSA_check_key(rsa) && (pkey = EVP_PKEY_new()) && EVP_PKEY_assign_RSA(pkey, rsa)) rsa = NULL;
    else {
      EVP_PKEY_free(pkey);
      pkey = NULL;
    }
    RSA_free(rsa);
    if (!pkey) return sli__fail(e, SLI_E_PEM, "the OpenSSH RSA private key is malformed or inconsistent");
  } else {
    return sli__fail(e, SLI_E_UNSUPPORTED,
                     "OpenSSH key type '%.*s' is not supported (ssh-ed25519 and ssh-rsa are)",
                     (int)(CBS_len(&type) > 40 ? 40 : CBS_len(&type)), (const char *)CBS_data(&type));
  }
  if (!pkey) return sli__fail(e, SLI_E_PEM, "the OpenSSH private key cannot be used");
  CBS comment;
  int ok = get_string(priv, &comment) == 0;
  /* padding: 1, 2, 3, … up to the cipher's block size */
  for (uint8_t i = 1; ok && CBS_len(priv); i++) {
    uint8_t b;
    ok = CBS_get_u8(priv, &b) && b == i && i < 255;
  }
  if (!ok) {
    EVP_PKEY_free(pkey);
    return sli__fail(e, SLI_E_PEM, "the OpenSSH private key is malformed (comment or padding)");
  }
  if (EVP_PKEY_cmp(pkey, pub) != 1) {
    EVP_PKEY_free(pkey);
    return sli__fail(e, SLI_E_KEY_MISMATCH, "the OpenSSH private key does not match its public key");
  }
  *out = pkey;
  return 0;
}

int sli__openssh_private_parse(const char *what, const char *pem, size_t len, EVP_PKEY **out,
                               sli__error *e) {
  *out = NULL;
  char *name = NULL, *header = NULL;
  uint8_t *data = NULL;
  long dlen = 0;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  int got = bio && PEM_read_bio(bio, &name, &header, &data, &dlen);
  BIO_free(bio);
  ERR_clear_error();
  int rc = 0;
  if (!got || strcmp(name, "OPENSSH PRIVATE KEY") != 0) {
    rc = sli__fail(e, SLI_E_PEM, "%s: the OpenSSH private key's PEM block is malformed", what);
    goto done;
  }
  CBS cbs, cipher, kdf, kdfopts, pubblob, priv;
  uint32_t nkeys;
  CBS_init(&cbs, data, (size_t)dlen);
  if (CBS_len(&cbs) < sizeof(MAGIC) || memcmp(CBS_data(&cbs), MAGIC, sizeof(MAGIC)) != 0 ||
      !CBS_skip(&cbs, sizeof(MAGIC)) || get_string(&cbs, &cipher) || get_string(&cbs, &kdf) ||
      get_string(&cbs, &kdfopts) || !CBS_get_u32(&cbs, &nkeys)) {
    rc = sli__fail(e, SLI_E_PEM, "%s is not an openssh-key-v1 private key", what);
    goto done;
  }
  if (!is_name(&cipher, "none") || !is_name(&kdf, "none")) {
    rc = sli__fail(e, SLI_E_KEY_ENCRYPTED,
                   "%s is an OpenSSH key protected by a passphrase (bcrypt), which sli cannot open: "
                   "remove the passphrase on a copy with 'ssh-keygen -p -N \"\" -f COPY'",
                   what);
    goto done;
  }
  if (nkeys != 1 || get_string(&cbs, &pubblob) || get_string(&cbs, &priv) || CBS_len(&cbs) ||
      CBS_len(&priv) % 8) {
    rc = sli__fail(e, SLI_E_PEM, "%s: the OpenSSH private key is malformed (one key expected)", what);
    goto done;
  }
  EVP_PKEY *pub = NULL;
  rc = pkey_from_blob(CBS_data(&pubblob), CBS_len(&pubblob), &pub);
  if (rc) {
    rc = rc == SLI_E_UNSUPPORTED
             ? sli__fail(e, rc,
                         "%s: this OpenSSH key type is not supported (ssh-ed25519 and ssh-rsa are)", what)
             : sli__fail(e, rc, "%s: the OpenSSH public part is malformed", what);
    goto done;
  }
  sli__error why = {0};
  rc = parse_private(&priv, pub, out, &why);
  EVP_PKEY_free(pub);
  if (rc) sli__fail(e, rc, "%s: %s", what, why.msg);
done:
  ERR_clear_error();
  OPENSSL_free(name);
  OPENSSL_free(header);
  if (data) {
    OPENSSL_cleanse(data, (size_t)dlen);
    OPENSSL_free(data);
  }
  return rc;
}

/* put_string writes an SSH "string" (a 32-bit big-endian length, then the bytes): 0 or
 * SLI_E_INTERNAL. */
static int put_string(CBB *cbb, const uint8_t *p, size_t n) {
  return n <= 0xffffffffu && CBB_add_u32(cbb, (uint32_t)n) && CBB_add_bytes(cbb, p, n) ? 0
                                                                                      : SLI_E_INTERNAL;
}

/* put_mpints writes `n` numbers as SSH mpints (minimal two's complement, big-endian): 0, or
 * SLI_E_INTERNAL (also for a missing number). */
static int put_mpints(CBB *cbb, const BIGNUM *const *bns, size_t n) {
  int rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    size_t len = bns[i] ? BN_num_bytes(bns[i]) : 0;
    uint8_t buf[1 + 2048];
    if (!bns[i] || len > 2048) return SLI_E_INTERNAL;
    buf[0] = 0;
    BN_bn2bin_padded(buf + 1, len, bns[i]);
    int pad = len > 0 && (buf[1] & 0x80);
    rc = put_string(cbb, pad ? buf : buf + 1, pad ? len + 1 : len);
    OPENSSL_cleanse(buf, sizeof(buf));
  }
  return rc;
}

int sli__openssh_blob(const EVP_PKEY *pkey, uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  int id = EVP_PKEY_id(pkey);
  if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) return SLI_E_UNSUPPORTED;
  const char *name = id == EVP_PKEY_RSA ? "ssh-rsa" : "ssh-ed25519";
  CBB cbb;
  if (!CBB_init(&cbb, 512)) return SLI_E_NOMEM;
  int rc = put_string(&cbb, (const uint8_t *)name, strlen(name));
  if (!rc && id == EVP_PKEY_RSA) {
    const RSA *rsa = EVP_PKEY_get0_RSA(pkey);
    const BIGNUM *fields[] = {RSA_get0_e(rsa), RSA_get0_n(rsa)};
    rc = put_mpints(&cbb, fields, 2);
  } else if (!rc) {
    uint8_t pub[32];
    size_t pl = sizeof(pub);
    rc = EVP_PKEY_get_raw_public_key(pkey, pub, &pl) ? put_string(&cbb, pub, pl) : SLI_E_INTERNAL;
  }
  if (!rc && !CBB_finish(&cbb, out, out_len)) rc = SLI_E_INTERNAL;
  if (rc) {
    CBB_cleanup(&cbb);
    ERR_clear_error();
  }
  return rc;
}

int sli__openssh_private_write(const EVP_PKEY *pkey, const char *comment, char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  uint8_t *blob = NULL, *body = NULL;
  size_t blen = 0, bodylen = 0;
  int rc = sli__openssh_blob(pkey, &blob, &blen);
  if (rc) return rc;
  int id = EVP_PKEY_id(pkey);
  const char *name = id == EVP_PKEY_RSA ? "ssh-rsa" : "ssh-ed25519";
  if (!comment) comment = "";
  uint32_t check;
  CBB cbb, priv;
  CBB_zero(&cbb);
  CBB_zero(&priv);
  if (!RAND_bytes((uint8_t *)&check, sizeof(check)) || !CBB_init(&cbb, 4096) || !CBB_init(&priv, 4096) ||
      !CBB_add_u32(&priv, check) || !CBB_add_u32(&priv, check))
    rc = SLI_E_INTERNAL;
  /* the private section: check ints, the key, the comment, then padding 1, 2, 3… to 8 bytes */
  if (!rc) rc = put_string(&priv, (const uint8_t *)name, strlen(name));
  if (!rc && id == EVP_PKEY_ED25519) {
    uint8_t seed[64], pub[32];
    size_t sl = 32, pl = 32;
    if (!EVP_PKEY_get_raw_private_key(pkey, seed, &sl) || !EVP_PKEY_get_raw_public_key(pkey, pub, &pl))
      rc = SLI_E_INTERNAL;
    memcpy(seed + 32, pub, 32);
    if (!rc) rc = put_string(&priv, pub, 32);
    if (!rc) rc = put_string(&priv, seed, 64);
    OPENSSL_cleanse(seed, sizeof(seed));
  } else if (!rc) {
    const RSA *rsa = EVP_PKEY_get0_RSA(pkey);
    const BIGNUM *fields[] = {RSA_get0_n(rsa),    RSA_get0_e(rsa), RSA_get0_d(rsa),
                              RSA_get0_iqmp(rsa), RSA_get0_p(rsa), RSA_get0_q(rsa)};
    rc = put_mpints(&priv, fields, 6);
  }
  if (!rc) rc = put_string(&priv, (const uint8_t *)comment, strlen(comment));
  for (uint8_t i = 1; !rc && CBB_len(&priv) % 8; i++)
    if (!CBB_add_u8(&priv, i)) rc = SLI_E_INTERNAL;
  uint8_t *ps = NULL;
  size_t pslen = 0;
  if (!rc && !CBB_finish(&priv, &ps, &pslen)) rc = SLI_E_INTERNAL;
  /* the file: magic, cipher "none", KDF "none", empty KDF options, one key, its public blob, the
   * private section */
  if (!rc && !CBB_add_bytes(&cbb, (const uint8_t *)MAGIC, sizeof(MAGIC))) rc = SLI_E_INTERNAL;
  if (!rc) rc = put_string(&cbb, (const uint8_t *)"none", 4);
  if (!rc) rc = put_string(&cbb, (const uint8_t *)"none", 4);
  if (!rc) rc = put_string(&cbb, NULL, 0);
  if (!rc && !CBB_add_u32(&cbb, 1)) rc = SLI_E_INTERNAL;
  if (!rc) rc = put_string(&cbb, blob, blen);
  if (!rc) rc = put_string(&cbb, ps, pslen);
  if (!rc && !CBB_finish(&cbb, &body, &bodylen)) rc = SLI_E_INTERNAL;
  if (ps) {
    OPENSSL_cleanse(ps, pslen);
    OPENSSL_free(ps);
  }
  OPENSSL_free(blob);
  if (rc) {
    CBB_cleanup(&priv);
    CBB_cleanup(&cbb);
    ERR_clear_error();
    return rc;
  }
  /* PEM with 70-column lines, as ssh-keygen writes it */
  size_t b64len;
  EVP_EncodedLength(&b64len, bodylen);
  char *b64 = malloc(b64len), *text = malloc(b64len + b64len / 70 + 128);
  if (!b64 || !text) {
    free(b64);
    free(text);
    OPENSSL_cleanse(body, bodylen);
    OPENSSL_free(body);
    return SLI_E_NOMEM;
  }
  size_t w = EVP_EncodeBlock((uint8_t *)b64, body, bodylen);
  OPENSSL_cleanse(body, bodylen);
  OPENSSL_free(body);
  size_t o = (size_t)sprintf(text, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
  for (size_t i = 0; i < w; i += 70) {
    size_t n = w - i < 70 ? w - i : 70;
    memcpy(text + o, b64 + i, n);
    o += n;
    text[o++] = '\n';
  }
  o += (size_t)sprintf(text + o, "-----END OPENSSH PRIVATE KEY-----\n");
  OPENSSL_cleanse(b64, w);
  free(b64);
  *out = text;
  *out_len = o + 1;
  return 0;
}
