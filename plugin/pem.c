/* pem.c — reading key.pem / cert.pem as administrators bring them, with a named error for each way
 * they can be wrong: unreadable file, DER instead of PEM, lone-CR line endings, a truncated block,
 * bad base64, a wrong password, a key that does not match its certificate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <openssl/rsa.h>

#include "internal.h"
#include "openssh.h"

#define MAX_FILE (16u << 20)

int sli__read_file(const char *path, char **out, size_t *out_len, char *msg, size_t cap) {
  *out = NULL;
  *out_len = 0;
  if (!path || !*path) return sli__msg(msg, cap, SLI_E_INVAL, "no file name given");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sli__msg(msg, cap, SLI_E_FILE, "cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE) {
    int e = errno;
    close(fd);
    if (e == 0 || S_ISDIR(st.st_mode))
      return sli__msg(msg, cap, SLI_E_FILE, "'%s' is not a regular file of at most 16 MiB", path);
    return sli__msg(msg, cap, SLI_E_FILE, "cannot stat '%s': %s", path, strerror(e));
  }
  size_t n = (size_t)st.st_size, got = 0;
  char *buf = malloc(n + 1);
  if (!buf) {
    close(fd);
    return sli__msg(msg, cap, SLI_E_NOMEM, "out of memory reading '%s'", path);
  }
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? errno : EIO;
      close(fd);
      sli_free(buf, n + 1);
      return sli__msg(msg, cap, SLI_E_FILE, "cannot read '%s': %s", path, strerror(e));
    }
    got += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  *out = buf;
  *out_len = n;
  return 0;
}

static const char *memfind(const char *h, size_t hl, const char *needle) {
  size_t nl = strlen(needle);
  if (nl > hl) return NULL;
  for (size_t i = 0; i + nl <= hl; i++)
    if (h[i] == needle[0] && memcmp(h + i, needle, nl) == 0) return h + i;
  return NULL;
}

int sli__pem_check(const char *what, const char *data, size_t len, char **out_norm,
                   size_t *out_norm_len, char *msg, size_t cap) {
  *out_norm = NULL;
  *out_norm_len = 0;
  if (len == 0) return sli__msg(msg, cap, SLI_E_PEM, "%s is empty", what);
  const char *begin = memfind(data, len, "-----BEGIN ");
  if (!begin) {
    int binary = (unsigned char)data[0] == 0x30;
    for (size_t i = 0; i < len && !binary; i++)
      if (data[i] == 0 || ((unsigned char)data[i] < 0x09)) binary = 1;
    if (binary)
      return sli__msg(msg, cap, SLI_E_NOT_PEM,
                      "%s is not PEM: it looks like binary DER; convert it, e.g. "
                      "'openssl x509 -inform DER -in FILE -out FILE.pem' for a certificate or "
                      "'openssl pkey -inform DER -in FILE -out FILE.pem' for a key",
                      what);
    return sli__msg(msg, cap, SLI_E_PEM, "%s holds no PEM block (no '-----BEGIN' line)", what);
  }
  for (size_t i = 0; i < len; i++)
    if (data[i] == '\r' && (i + 1 >= len || data[i + 1] != '\n'))
      return sli__msg(msg, cap, SLI_E_LINE_ENDINGS,
                      "%s uses lone CR line endings (a CR without LF at byte %zu); convert it to "
                      "LF or CRLF",
                      what, i);
  /* CRLF -> LF */
  char *norm = malloc(len + 1);
  if (!norm) return sli__msg(msg, cap, SLI_E_NOMEM, "out of memory");
  size_t o = 0;
  for (size_t i = 0; i < len; i++)
    if (data[i] != '\r') norm[o++] = data[i];
  norm[o] = 0;
  /* Every BEGIN has its END. */
  const char *p = norm;
  size_t left = o;
  while ((begin = memfind(p, left, "-----BEGIN ")) != NULL) {
    const char *label = begin + 11;
    const char *dash = memfind(label, o - (size_t)(label - norm), "-----");
    if (!dash || memchr(label, '\n', (size_t)(dash - label))) {
      sli_free(norm, len + 1);
      return sli__msg(msg, cap, SLI_E_PEM, "%s has a malformed BEGIN line", what);
    }
    char end[128];
    size_t ll = (size_t)(dash - label);
    if (ll > 100) ll = 100;
    snprintf(end, sizeof(end), "-----END %.*s-----", (int)ll, label);
    const char *after = dash + 5;
    const char *e = memfind(after, o - (size_t)(after - norm), end);
    if (!e) {
      sli__msg(msg, cap, SLI_E_PEM_TRUNCATED, "%s is truncated: its '%.*s' block has no END line",
               what, (int)ll, label);
      sli_free(norm, len + 1);
      return SLI_E_PEM_TRUNCATED;
    }
    p = e + strlen(end);
    left = o - (size_t)(p - norm);
  }
  *out_norm = norm;
  *out_norm_len = o;
  return 0;
}

static int is_cert_label(const char *name) {
  return strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "TRUSTED CERTIFICATE") == 0 ||
         strcmp(name, "X509 CERTIFICATE") == 0;
}

static int is_key_label(const char *name) {
  return strstr(name, "PRIVATE KEY") != NULL;
}

int sli__parse_chain(const char *what, const char *pem, size_t len, STACK_OF(X509) **out,
                     char *msg, size_t cap) {
  *out = NULL;
  char *norm;
  size_t nlen;
  int rc = sli__pem_check(what, pem, len, &norm, &nlen, msg, cap);
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
      uint32_t e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) break;
      rc = sli__msg(msg, cap, SLI_E_PEM, "%s: PEM block %d cannot be decoded (bad base64?)",
                    what, idx);
      break;
    }
    if (is_cert_label(name)) {
      const uint8_t *q = der;
      X509 *x = d2i_X509(NULL, &q, dlen);
      if (!x || q != der + dlen) {
        X509_free(x);
        rc = sli__msg(msg, cap, SLI_E_PEM, "%s: certificate %d is not a valid X.509 certificate",
                      what, idx);
      } else if (!sk_X509_push(chain, x)) {
        X509_free(x);
        rc = SLI_E_NOMEM;
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
  if (!rc && (!chain || sk_X509_num(chain) == 0))
    rc = sli__msg(msg, cap, SLI_E_PEM, "%s holds no CERTIFICATE block%s", what,
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

int sli__parse_key(const char *what, const char *pem, size_t len, const char *password,
                   EVP_PKEY **out, char *msg, size_t cap) {
  *out = NULL;
  char *norm;
  size_t nlen;
  int rc = sli__pem_check(what, pem, len, &norm, &nlen, msg, cap);
  if (rc) return rc;
  int encrypted = strstr(norm, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL ||
                  strstr(norm, "Proc-Type: 4,ENCRYPTED") != NULL;
  int has_key = strstr(norm, "PRIVATE KEY-----") != NULL;
  if (!has_key) {
    rc = sli__msg(msg, cap, SLI_E_PEM, "%s holds no PRIVATE KEY block%s", what,
                  strstr(norm, "CERTIFICATE-----")
                      ? " (it holds a certificate: are the certificate and key files swapped?)"
                      : "");
    sli_free(norm, nlen + 1);
    return rc;
  }
  if (strstr(norm, "-----BEGIN OPENSSH PRIVATE KEY-----")) { /* ssh-keygen's own format */
    rc = sli__openssh_private_parse(what, norm, nlen, out, msg, cap);
    sli_free(norm, nlen + 1);
    return rc;
  }
  if (encrypted && (!password || !*password)) {
    sli_free(norm, nlen + 1);
    return sli__msg(msg, cap, SLI_E_PASSWORD, "%s is encrypted and no password was given", what);
  }
  ERR_clear_error();
  BIO *bio = BIO_new_mem_buf(norm, (int)nlen);
  EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, pw_cb, (void *)password) : NULL;
  BIO_free(bio);
  if (!key) {
    uint32_t e = ERR_peek_last_error();
    int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
    if (encrypted && !(lib == ERR_LIB_PKCS8 && (reason == PKCS8_R_UNKNOWN_CIPHER ||
                                                 reason == PKCS8_R_UNSUPPORTED_CIPHER ||
                                                 reason == PKCS8_R_UNSUPPORTED_KEYLENGTH ||
                                                 reason == PKCS8_R_UNSUPPORTED_PRF ||
                                                 reason == PKCS8_R_UNKNOWN_ALGORITHM))) {
      rc = sli__msg(msg, cap, SLI_E_PASSWORD, "%s: wrong password (the key cannot be decrypted)",
                    what);
    } else if (encrypted) {
      rc = sli__msg(msg, cap, SLI_E_UNSUPPORTED,
                    "%s is encrypted with an unsupported algorithm; re-encrypt it with "
                    "'openssl pkey -aes256'",
                    what);
    } else if (lib == ERR_LIB_PEM && reason == PEM_R_BAD_BASE64_DECODE) {
      rc = sli__msg(msg, cap, SLI_E_PEM, "%s: the private key block is not valid base64", what);
    } else {
      rc = sli__msg(msg, cap, SLI_E_PEM, "%s: the private key cannot be parsed", what);
      sli__append_ssl_error(msg, cap);
    }
    ERR_clear_error();
    sli_free(norm, nlen + 1);
    return rc;
  }
  sli_free(norm, nlen + 1);
  int type = EVP_PKEY_id(key);
  if (type == EVP_PKEY_RSA && EVP_PKEY_bits(key) < 2048) {
    rc = sli__msg(msg, cap, SLI_E_WEAK_KEY, "%s: RSA key of %d bits; at least 2048 are required",
                  what, EVP_PKEY_bits(key));
    EVP_PKEY_free(key);
    return rc;
  }
  if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC && type != EVP_PKEY_ED25519 &&
      type != EVP_PKEY_X25519) {
    EVP_PKEY_free(key);
    return sli__msg(msg, cap, SLI_E_UNSUPPORTED,
                    "%s: unsupported key type (RSA, ECDSA, Ed25519 and X25519 are supported)", what);
  }
  *out = key;
  return 0;
}

void sli__identity_clear(sli_identity *id) {
  if (!id) return;
  sk_X509_pop_free(id->chain, X509_free);
  EVP_PKEY_free(id->key);
  id->chain = NULL;
  id->key = NULL;
}

int sli__identity_copy(sli_identity *dst, const sli_identity *src) {
  dst->chain = X509_chain_up_ref(src->chain);
  dst->key = src->key;
  if (!dst->chain) return SLI_E_NOMEM;
  EVP_PKEY_up_ref(dst->key);
  return 0;
}

int sli__load_identity(sli_identity *id, const char *cert_what, const char *cert_pem,
                       size_t cert_len, const char *key_what, const char *key_pem, size_t key_len,
                       const char *password, char *msg, size_t cap) {
  id->chain = NULL;
  id->key = NULL;
  STACK_OF(X509) *chain;
  int rc = sli__parse_chain(cert_what, cert_pem, cert_len, &chain, msg, cap);
  if (rc) return rc;
  EVP_PKEY *key;
  rc = sli__parse_key(key_what, key_pem, key_len, password, &key, msg, cap);
  if (rc) {
    sk_X509_pop_free(chain, X509_free);
    return rc;
  }
  if (EVP_PKEY_id(key) == EVP_PKEY_X25519) {
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    return sli__msg(msg, cap, SLI_E_UNSUPPORTED,
                    "%s holds an X25519 key, which cannot sign: a TLS identity needs RSA, ECDSA or "
                    "Ed25519", key_what);
  }
  if (!X509_check_private_key(sk_X509_value(chain, 0), key)) {
    ERR_clear_error();
    char subj[200];
    X509_NAME_oneline(X509_get_subject_name(sk_X509_value(chain, 0)), subj, sizeof(subj));
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    return sli__msg(msg, cap, SLI_E_KEY_MISMATCH,
                    "the private key in %s does not match the certificate in %s (subject %s)",
                    key_what, cert_what, subj);
  }
  id->chain = chain;
  id->key = key;
  return 0;
}
