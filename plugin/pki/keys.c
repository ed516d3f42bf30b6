/* keys.c — key pairs: generation (RSA, ECDSA P-256/384/521, Ed25519, X25519), loading of PEM
 * private and public keys, export as PEM PKCS#8 (optionally encrypted), SubjectPublicKeyInfo and
 * OpenSSH public-key lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/curve25519.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "pki/pki.h"

static sli_key *wrap(EVP_PKEY *pkey, int has_private) {
  sli_key *k = sli__zalloc(sizeof(*k));
  if (!k) return NULL;
  atomic_init(&k->refs, 1);
  k->pkey = pkey;
  k->has_private = has_private;
  return k;
}

int sli_key_generate(sli_key **out, int type, int param, uint32_t flags) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_key_generate: out is NULL");
  *out = NULL;
  if (flags & ~SLI_KEYGEN_INSECURE_WEAK)
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_generate: unknown flags 0x%x", flags);
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_key_generate: the library cannot be initialised");
  EVP_PKEY *pkey = NULL;
  if (type == SLI_KEY_RSA) {
    int bits = param ? param : 2048;
    if (bits < 2048 && !(flags & SLI_KEYGEN_INSECURE_WEAK))
      return sli__fail(NULL, SLI_E_WEAK_KEY,
                       "an RSA key of %d bits is too weak: at least 2048 (SLI_KEYGEN_INSECURE_WEAK "
                       "allows down to 1024)",
                       bits);
    if (bits < 1024 || bits > 16384 || bits % 8)
      return sli__fail(NULL, SLI_E_INVAL,
                       "RSA keys have 1024 to 16384 bits, a multiple of 8 (%d asked)", bits);
    RSA *rsa = RSA_new();
    BIGNUM *e = BN_new();
    if (!rsa || !e || !BN_set_word(e, RSA_F4) || !RSA_generate_key_ex(rsa, bits, e, NULL) ||
        !(pkey = EVP_PKEY_new()) || !EVP_PKEY_assign_RSA(pkey, rsa)) {
      RSA_free(rsa);
      EVP_PKEY_free(pkey);
      BN_free(e);
      return sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot generate an RSA key of %d bits", bits);
    }
    BN_free(e);
  } else if (type == SLI_KEY_EC) {
    int nid = param == 0 || param == 256 ? NID_X9_62_prime256v1
              : param == 384             ? NID_secp384r1
              : param == 521             ? NID_secp521r1
                                         : 0;
    if (!nid)
      return sli__fail(NULL, SLI_E_INVAL, "EC keys are on P-256, P-384 or P-521 (256, 384, 521; %d asked)",
                       param);
    EC_KEY *ec = EC_KEY_new_by_curve_name(nid);
    if (!ec || !EC_KEY_generate_key(ec) || !(pkey = EVP_PKEY_new()) || !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
      EC_KEY_free(ec);
      EVP_PKEY_free(pkey);
      return sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot generate an EC key");
    }
  } else if (type == SLI_KEY_ED25519 || type == SLI_KEY_X25519) {
    const char *name = type == SLI_KEY_ED25519 ? "Ed25519" : "X25519";
    if (param) return sli__fail(NULL, SLI_E_INVAL, "%s keys take no parameter (%d given)", name, param);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(type == SLI_KEY_ED25519 ? EVP_PKEY_ED25519 : EVP_PKEY_X25519, NULL);
    int ok = ctx && EVP_PKEY_keygen_init(ctx) && EVP_PKEY_keygen(ctx, &pkey);
    EVP_PKEY_CTX_free(ctx);
    if (!ok) return sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot generate an %s key", name);
  } else {
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_generate: unknown key type %d", type);
  }
  ERR_clear_error();
  *out = wrap(pkey, 1);
  if (!*out) {
    EVP_PKEY_free(pkey);
    return sli__fail(NULL, SLI_E_NOMEM, "out of memory making a key");
  }
  return 0;
}

int sli_key_load_file(sli_key **out, const char *path, const char *password, char *msg, size_t cap) {
  sli__error err = {0};
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_key_load_file: out is NULL");
  *out = NULL;
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_key_load_file: the library cannot be initialised");
  char *data = NULL, *norm = NULL;
  size_t len = 0, nlen = 0;
  char what[600];
  snprintf(what, sizeof(what), "key file '%s'", path ? path : "");
  EVP_PKEY *pkey = NULL;
  int has_private = 1;
  if ((rc = sli__read_file(path, &data, &len, &err))) goto done;
  if (!strncmp(data, "ssh-", 4)) { /* an OpenSSH public-key line */
    has_private = 0;
    sli__error why = {0};
    if ((rc = sli__openssh_public_parse(data, &pkey, &why))) sli__fail(&err, rc, "%s: %s", what, why.msg);
  } else if (strstr(data, "-----BEGIN PUBLIC KEY-----")) { /* SubjectPublicKeyInfo */
    has_private = 0;
    if ((rc = sli__pem_check(what, data, len, &norm, &nlen, &err))) goto done;
    BIO *bio = BIO_new_mem_buf(norm, (int)nlen);
    pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pkey) rc = sli__fail(&err, SLI_E_PEM, "%s: the public key cannot be parsed", what);
  } else {
    rc = sli__parse_key(what, data, len, password, &pkey, &err);
  }
  if (!rc && !(*out = wrap(pkey, has_private))) {
    EVP_PKEY_free(pkey);
    rc = sli__fail(&err, SLI_E_NOMEM, "out of memory reading %s", what);
  }
done:
  ERR_clear_error();
  if (data) sli_free(data, len + 1);
  if (norm) sli_free(norm, nlen + 1);
  if (rc) sli__error_to_buf(&err, msg, cap);
  return rc;
}

void sli_key_free(sli_key *k) {
  if (!k || atomic_fetch_sub(&k->refs, 1) != 1) return;
  EVP_PKEY_free(k->pkey); /* BoringSSL wipes private key material when it frees it */
  free(k);
}

int sli_key_type(const sli_key *k) {
  switch (k ? EVP_PKEY_id(k->pkey) : 0) {
    case EVP_PKEY_RSA: return SLI_KEY_RSA;
    case EVP_PKEY_EC: return SLI_KEY_EC;
    case EVP_PKEY_ED25519: return SLI_KEY_ED25519;
    case EVP_PKEY_X25519: return SLI_KEY_X25519;
    default: return 0;
  }
}

int sli_key_bits(const sli_key *k) {
  if (!k) return 0;
  int t = sli_key_type(k);
  return t == SLI_KEY_ED25519 || t == SLI_KEY_X25519 ? 255 : EVP_PKEY_bits(k->pkey);
}

int sli_key_has_private(const sli_key *k) { return k && k->has_private; }

int sli_key_private_pem_alloc(const sli_key *k, const char *passphrase, char **out, size_t *out_len) {
  if (!k || !out || !out_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_private_pem_alloc: k, out and out_len are needed");
  *out = NULL;
  *out_len = 0;
  if (!k->has_private)
    return sli__fail(NULL, SLI_E_INVAL, "the key is a public key: it has no private part");
  BIO *bio = BIO_new(BIO_s_mem());
  int ok = bio && PEM_write_bio_PKCS8PrivateKey(bio, k->pkey, passphrase ? EVP_aes_256_cbc() : NULL,
                                                 (char *)passphrase,
                                                 passphrase ? (int)strlen(passphrase) : 0, NULL, NULL);
  int rc = ok ? sli__bio_string(bio, out, out_len) : SLI_E_INTERNAL;
  if (rc) sli__fail_ssl(NULL, rc, "cannot write the private key as PEM");
  if (bio) {
    const uint8_t *d;
    size_t l;
    if (BIO_mem_contents(bio, &d, &l)) OPENSSL_cleanse((void *)d, l);
  }
  BIO_free(bio);
  ERR_clear_error();
  return rc;
}

int sli_key_public_pem_alloc(const sli_key *k, char **out, size_t *out_len) {
  if (!k || !out || !out_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_public_pem_alloc: k, out and out_len are needed");
  *out = NULL;
  BIO *bio = BIO_new(BIO_s_mem());
  int rc = bio && PEM_write_bio_PUBKEY(bio, k->pkey) ? sli__bio_string(bio, out, out_len) : SLI_E_INTERNAL;
  if (rc) sli__fail_ssl(NULL, rc, "cannot write the public key as PEM");
  BIO_free(bio);
  ERR_clear_error();
  return rc;
}

/* openssh_type_check fails `fn` for a key that has no OpenSSH form. */
static int openssh_type_check(const char *fn, const sli_key *k) {
  int t = sli_key_type(k);
  if (t != SLI_KEY_RSA && t != SLI_KEY_ED25519)
    return sli__fail(NULL, SLI_E_UNSUPPORTED, "%s: OpenSSH keys exist for RSA and Ed25519 only", fn);
  return 0;
}

int sli_key_openssh_private_alloc(const sli_key *k, const char *comment, char **out, size_t *out_len) {
  if (!k || !out || !out_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_openssh_private_alloc: k, out and out_len are needed");
  *out = NULL;
  *out_len = 0;
  int rc = openssh_type_check("sli_key_openssh_private_alloc", k);
  if (rc) return rc;
  if (!k->has_private)
    return sli__fail(NULL, SLI_E_INVAL, "the key is a public key: it has no private part");
  rc = sli__openssh_private_write(k->pkey, comment, out, out_len);
  return rc ? sli__fail(NULL, rc, "cannot write the OpenSSH private key: %s", sli_strerror(rc)) : 0;
}

int sli_key_openssh_public_alloc(const sli_key *k, const char *comment, char **out, size_t *out_len) {
  if (!k || !out || !out_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_openssh_public_alloc: k, out and out_len are needed");
  *out = NULL;
  int rc = openssh_type_check("sli_key_openssh_public_alloc", k);
  if (rc) return rc;
  const char *name = sli_key_type(k) == SLI_KEY_RSA ? "ssh-rsa" : "ssh-ed25519";
  uint8_t *blob = NULL;
  size_t blen = 0;
  rc = sli__openssh_blob(k->pkey, &blob, &blen);
  if (rc) return sli__fail(NULL, rc, "cannot write the OpenSSH public key: %s", sli_strerror(rc));
  size_t b64len;
  EVP_EncodedLength(&b64len, blen);
  size_t total = strlen(name) + 1 + b64len + 1 + (comment ? strlen(comment) : 0) + 2;
  char *line = malloc(total);
  if (!line) {
    OPENSSL_free(blob);
    return sli__fail(NULL, SLI_E_NOMEM, "out of memory writing an OpenSSH public key");
  }
  int n = snprintf(line, total, "%s ", name);
  size_t w = EVP_EncodeBlock((uint8_t *)line + n, blob, blen);
  OPENSSL_free(blob);
  snprintf(line + n + w, total - n - w, "%s%s\n", comment && *comment ? " " : "", comment ? comment : "");
  *out = line;
  *out_len = strlen(line) + 1;
  return 0;
}
