/* load.c — certificate chains and private keys from PEM (and OpenSSH) text, with a named error for
 * each way they can be wrong: bad base64, a wrong password, an unsupported key type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <openssl/rsa.h>

#include "pki/pki.h"

static int is_cert_label(const char *name) {
  return strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "TRUSTED CERTIFICATE") == 0 ||
         strcmp(name, "X509 CERTIFICATE") == 0;
}

static int is_key_label(const char *name) {
  return strstr(name, "PRIVATE KEY") != NULL;
}

int sli__parse_chain(const char *what, const char *pem, size_t len, STACK_OF(X509) **out,
                     sli__error *e) {
  *out = NULL;
  char *norm;
  size_t nlen;
  int rc = sli__pem_check(what, pem, len, &norm, &nlen, e);
  if (rc) return rc;
  BIO *bio = BIO_new_mem_buf(norm, (int)nlen);
  STACK_OF(X509) *chain = sk_X509_new_null();
  int saw_key = 0;
  rc = 0;
  for (int idx = 1; bio && chain; idx++) {
    char *name = NULL, *header = NULL;
    uint8_t *der = NULL;
    long dlen = 0;
    if (!PEM_read_bio(bio, &name, &header, &der, &dlen)) {
      uint32_t err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) break;
      rc = sli__fail(e, SLI_E_PEM, "%s: PEM block %d cannot be decoded (bad base64?)", what, idx);
      break;
    }
    if (is_cert_label(name)) {
      const uint8_t *q = der;
      X509 *x = d2i_X509(NULL, &q, dlen);
      if (!x || q != der + dlen) {
        X509_free(x);
        rc = sli__fail(e, SLI_E_PEM, "%s: certificate %d is not a valid X.509 certificate", what,
                       idx);
      } else if (!sk_X509_push(chain, x)) {
        X509_free(x);
        rc = sli__fail(e, SLI_E_NOMEM, "out of memory reading %s", what);
      }
    } else if (is_key_label(name)) {
      saw_key = 1;
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    if (rc) break;
  }
  ERR_clear_error();
  BIO_free(bio);
  sli_free(norm, nlen + 1);
  if (!rc && !(bio && chain)) rc = sli__fail(e, SLI_E_NOMEM, "out of memory reading %s", what);
  if (!rc && sk_X509_num(chain) == 0)
    rc = sli__fail(e, SLI_E_PEM, "%s holds no CERTIFICATE block%s", what,
                   saw_key ? " (it holds a private key: are the certificate and key files swapped?)"
                           : "");
  if (rc) {
    sk_X509_pop_free(chain, X509_free);
    return rc;
  }
  *out = chain;
  return 0;
}

static int pw_cb(char *buf, int size, int rwflag, void *u) {
  const char *pw = u;
  if (!pw) return -1;
  size_t n = strlen(pw);
  if (n > (size_t)size) n = (size_t)size;
  memcpy(buf, pw, n);
  return (int)n;
}

/* pkcs8_decrypt reads an ENCRYPTED PRIVATE KEY block with the whole password: PEM's password
 * callback would cut it at 1023 bytes (PEM_BUFSIZE), while sli writes keys with all of it. */
static EVP_PKEY *pkcs8_decrypt(const char *pem, size_t len, const char *password) {
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  char *name = NULL, *header = NULL;
  uint8_t *der = NULL;
  long dlen = 0;
  EVP_PKEY *key = NULL;
  while (bio && !key && PEM_read_bio(bio, &name, &header, &der, &dlen)) {
    if (!strcmp(name, "ENCRYPTED PRIVATE KEY")) {
      CBS cbs;
      CBS_init(&cbs, der, (size_t)dlen);
      key = PKCS8_parse_encrypted_private_key(&cbs, password, strlen(password));
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    name = header = NULL;
    der = NULL;
    if (key || ERR_GET_LIB(ERR_peek_last_error()) == ERR_LIB_PKCS8) break;
  }
  BIO_free(bio);
  return key;
}

int sli__parse_key(const char *what, const char *pem, size_t len, const char *password,
                   EVP_PKEY **out, sli__error *e) {
  *out = NULL;
  char *norm;
  size_t nlen;
  int rc = sli__pem_check(what, pem, len, &norm, &nlen, e);
  if (rc) return rc;
  int encrypted = strstr(norm, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL ||
                  strstr(norm, "Proc-Type: 4,ENCRYPTED") != NULL;
  int has_key = strstr(norm, "PRIVATE KEY-----") != NULL;
  if (!has_key) {
    rc = sli__fail(e, SLI_E_PEM, "%s holds no PRIVATE KEY block%s", what,
                   strstr(norm, "CERTIFICATE-----")
                       ? " (it holds a certificate: are the certificate and key files swapped?)"
                       : "");
    sli_free(norm, nlen + 1);
    return rc;
  }
  if (strstr(norm, "-----BEGIN OPENSSH PRIVATE KEY-----")) { /* ssh-keygen's own format */
    rc = sli__openssh_private_parse(what, norm, nlen, out, e);
    sli_free(norm, nlen + 1);
    return rc;
  }
  if (encrypted && (!password || !*password)) {
    sli_free(norm, nlen + 1);
    return sli__fail(e, SLI_E_PASSWORD, "%s is encrypted and no password was given", what);
  }
  if (encrypted && !strstr(norm, "-----BEGIN ENCRYPTED PRIVATE KEY-----") && strlen(password) > 1023) {
    sli_free(norm, nlen + 1);
    return sli__fail(e, SLI_E_PASSWORD, "%s: a traditional encrypted PEM key takes at most 1023 bytes "
                     "of password (re-encrypt it as PKCS#8: 'openssl pkey -aes256')", what);
  }
  ERR_clear_error();
  EVP_PKEY *key = NULL;
  if (strstr(norm, "-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    key = pkcs8_decrypt(norm, nlen, password);
  } else {
    BIO *bio = BIO_new_mem_buf(norm, (int)nlen);
    key = bio ? PEM_read_bio_PrivateKey(bio, NULL, pw_cb, (void *)password) : NULL;
    BIO_free(bio);
  }
  if (!key) {
    uint32_t err = ERR_peek_last_error();
    int lib = ERR_GET_LIB(err), reason = ERR_GET_REASON(err);
    if (encrypted && !(lib == ERR_LIB_PKCS8 && (reason == PKCS8_R_UNKNOWN_CIPHER ||
                                                 reason == PKCS8_R_UNSUPPORTED_CIPHER ||
                                                 reason == PKCS8_R_UNSUPPORTED_KEYLENGTH ||
                                                 reason == PKCS8_R_UNSUPPORTED_PRF ||
                                                 reason == PKCS8_R_UNKNOWN_ALGORITHM))) {
      rc = sli__fail(e, SLI_E_PASSWORD, "%s: wrong password (the key cannot be decrypted)", what);
    } else if (encrypted) {
      rc = sli__fail(e, SLI_E_UNSUPPORTED,
                     "%s is encrypted with an unsupported algorithm; re-encrypt it with "
                     "'openssl pkey -aes256'",
                     what);
    } else if (lib == ERR_LIB_PEM && reason == PEM_R_BAD_BASE64_DECODE) {
      rc = sli__fail(e, SLI_E_PEM, "%s: the private key block is not valid base64", what);
    } else {
      rc = sli__fail_ssl(e, SLI_E_PEM, "%s: the private key cannot be parsed", what);
    }
    ERR_clear_error();
    sli_free(norm, nlen + 1);
    return rc;
  }
  sli_free(norm, nlen + 1);
  int type = EVP_PKEY_id(key);
  if (type == EVP_PKEY_RSA && EVP_PKEY_bits(key) < 2048) {
    rc = sli__fail(e, SLI_E_WEAK_KEY, "%s: RSA key of %d bits; at least 2048 are required", what,
                   EVP_PKEY_bits(key));
    EVP_PKEY_free(key);
    return rc;
  }
  if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC && type != EVP_PKEY_ED25519 &&
      type != EVP_PKEY_X25519) {
    EVP_PKEY_free(key);
    return sli__fail(e, SLI_E_UNSUPPORTED,
                     "%s: unsupported key type (RSA, ECDSA, Ed25519 and X25519 are supported)", what);
  }
  *out = key;
  return 0;
}
