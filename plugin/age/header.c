/* header.c — the age header, as age's internal/format reads and writes it: the version line, one
 * stanza per recipient ("-> TYPE ARGS", then the wrapped 16-byte file key in base64 lines of 64
 * characters, the last one shorter) and the MAC line ("--- " and the HMAC-SHA-256, under
 * HKDF(file key, "header"), of all before it). X25519 and scrypt stanzas are wrapped and opened here,
 * the SSH types in ssh.c. Also the unpadded base64, key derivation and file-key wrap the stanza types
 * share, and the growable buffer the header is held in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/aead.h>
#include <openssl/base64.h>
#include <openssl/curve25519.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hkdf.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "age/age.h"

int sli__age_buf_add(sli__age_buf *b, const void *d, size_t n) {
  if (n == 0) return 0; /* also spares memcpy a NULL pointer (a UBSan finding of the fuzzer) */
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return SLI_E_NOMEM;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

void sli__age_buf_wipe(sli__age_buf *b) {
  if (b->p) OPENSSL_cleanse(b->p, b->cap);
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* ---- what the stanza types share ---- */

size_t sli__age_b64(char *out, const uint8_t *in, size_t n) {
  size_t w = EVP_EncodeBlock((uint8_t *)out, in, n);
  while (w && out[w - 1] == '=') w--;
  out[w] = 0;
  return w;
}

int sli__age_b64_decode_max(uint8_t *out, size_t cap, size_t *out_len, const char *in, size_t n) {
  *out_len = 0;
  if (n % 4 == 1) return SLI_E_HEADER;
  char tmp[4096];
  if (n + 3 > sizeof(tmp)) return SLI_E_HEADER;
  memcpy(tmp, in, n);
  size_t m = n;
  while (m % 4) tmp[m++] = '=';
  for (size_t i = 0; i < n; i++)
    if (in[i] == '=' || in[i] == '\n' || in[i] == '\r' || in[i] == ' ') return SLI_E_HEADER;
  size_t outn;
  uint8_t dec[3072];
  if (!EVP_DecodeBase64(dec, &outn, sizeof(dec), (const uint8_t *)tmp, m) || outn > cap)
    return SLI_E_HEADER;
  char check[4096];
  sli__age_b64(check, dec, outn); /* canonical: no stray bits */
  int rc = strlen(check) != n || memcmp(check, in, n) != 0 ? SLI_E_HEADER : 0;
  if (!rc) {
    memcpy(out, dec, outn);
    *out_len = outn;
  }
  OPENSSL_cleanse(dec, outn);
  return rc;
}

int sli__age_b64_decode(uint8_t *out, size_t want_len, const char *in, size_t n) {
  size_t got;
  int rc = sli__age_b64_decode_max(out, want_len, &got, in, n);
  return rc ? rc : got == want_len ? 0 : SLI_E_HEADER;
}

int sli__age_hkdf32(uint8_t out[32], const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                    size_t salt_len, const char *info) {
  return HKDF(out, 32, EVP_sha256(), ikm, ikm_len, salt, salt_len, (const uint8_t *)info, strlen(info))
             ? 0
             : SLI_E_INTERNAL;
}

int sli__age_wrap_key(uint8_t *out32, const uint8_t key[32], const uint8_t file_key[16]) {
  EVP_AEAD_CTX c;
  static const uint8_t zero[12];
  size_t n = 0;
  int ok = EVP_AEAD_CTX_init(&c, EVP_aead_chacha20_poly1305(), key, 32, AGE_TAG, NULL) &&
           EVP_AEAD_CTX_seal(&c, out32, &n, 32, zero, 12, file_key, 16, NULL, 0);
  EVP_AEAD_CTX_cleanup(&c);
  return ok && n == 32 ? 0 : SLI_E_INTERNAL;
}

int sli__age_unwrap_key(uint8_t file_key[16], const uint8_t key[32], const uint8_t *body, size_t len) {
  EVP_AEAD_CTX c;
  static const uint8_t zero[12];
  size_t n = 0;
  int ok = len == 32 && EVP_AEAD_CTX_init(&c, EVP_aead_chacha20_poly1305(), key, 32, AGE_TAG, NULL);
  if (ok) {
    ok = EVP_AEAD_CTX_open(&c, file_key, &n, 16, zero, 12, body, len, NULL, 0) && n == 16;
    EVP_AEAD_CTX_cleanup(&c);
  }
  ERR_clear_error();
  return ok ? 0 : SLI_E_NO_MATCH;
}

/* scrypt_key derives the wrap key of a passphrase stanza: 0 or SLI_E_INTERNAL (also when the work
 * factor needs more memory than can be had). */
static int scrypt_key(uint8_t out[32], const char *pass, const uint8_t salt[16], int log2_n) {
  uint8_t s[28 + 16];
  memcpy(s, "age-encryption.org/v1/scrypt", 28);
  memcpy(s + 28, salt, 16);
  uint64_t n = (uint64_t)1 << log2_n;
  size_t max_mem = (size_t)(128 * 8 * n + (1u << 20));
  int ok = EVP_PBE_scrypt(pass, strlen(pass), s, sizeof(s), n, 8, 1, max_mem, out, 32);
  ERR_clear_error();
  return ok ? 0 : SLI_E_INTERNAL;
}

/* ---- writing ---- */

/* add_body appends a stanza body: base64 lines of 64 characters, the last one shorter (empty if
 * need be). */
static int add_body(sli__age_buf *h, const uint8_t *body, size_t n) {
  char b64[2800];
  size_t w = sli__age_b64(b64, body, n);
  int rc = 0;
  for (size_t off = 0; !rc; off += 64) {
    size_t line = w - off < 64 ? w - off : 64;
    rc = sli__age_buf_add(h, b64 + off, line);
    if (!rc) rc = sli__age_buf_add(h, "\n", 1);
    if (line < 64) break; /* a full last line is followed by an empty one */
  }
  return rc;
}

/* add_stanza wraps `file_key` for recipient `r` and appends its stanza (line and body). */
static int add_stanza(sli__age_buf *h, const sli_age_recipient *r, const uint8_t file_key[16]) {
  char line[256], a[64];
  uint8_t key[32], body[2048];
  size_t blen = 32;
  int rc;
  if (r->kind == AGE_SCRYPT) {
    uint8_t salt[16];
    rc = RAND_bytes(salt, 16) ? scrypt_key(key, r->passphrase, salt, r->log2_n) : SLI_E_INTERNAL;
    sli__age_b64(a, salt, 16);
    snprintf(line, sizeof(line), "-> scrypt %s %d\n", a, r->log2_n);
  } else if (r->kind == AGE_X25519) {
    uint8_t esk[32], epk[32], shared[32], salt[64];
    X25519_keypair(epk, esk);
    rc = X25519(shared, esk, r->pk) ? 0 : SLI_E_INTERNAL;
    OPENSSL_cleanse(esk, sizeof(esk));
    memcpy(salt, epk, 32);
    memcpy(salt + 32, r->pk, 32);
    if (!rc) rc = sli__age_hkdf32(key, shared, 32, salt, 64, "age-encryption.org/v1/X25519");
    OPENSSL_cleanse(shared, sizeof(shared));
    sli__age_b64(a, epk, 32);
    snprintf(line, sizeof(line), "-> X25519 %s\n", a);
  } else { /* the SSH types wrap the key themselves */
    rc = sli__age_ssh_wrap(r, file_key, line, sizeof(line), body, &blen);
  }
  if (!rc && (r->kind == AGE_SCRYPT || r->kind == AGE_X25519))
    rc = sli__age_wrap_key(body, key, file_key);
  OPENSSL_cleanse(key, sizeof(key));
  if (!rc) rc = sli__age_buf_add(h, line, strlen(line));
  if (!rc) rc = add_body(h, body, blen);
  return rc;
}

/* add_mac appends the MAC line: "---", then the HMAC of everything before it under
 * HKDF(file key, "header"). */
static int add_mac(sli__age_buf *h, const uint8_t file_key[16]) {
  uint8_t hmac_key[32], mac[32];
  unsigned ml = 0;
  int rc = sli__age_buf_add(h, "---", 3);
  if (!rc) rc = sli__age_hkdf32(hmac_key, file_key, 16, NULL, 0, "header");
  if (!rc && !HMAC(EVP_sha256(), hmac_key, 32, h->p, h->len, mac, &ml)) rc = SLI_E_INTERNAL;
  OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
  char m64[64];
  if (!rc) sli__age_b64(m64, mac, 32);
  if (!rc) rc = sli__age_buf_add(h, " ", 1);
  if (!rc) rc = sli__age_buf_add(h, m64, strlen(m64));
  if (!rc) rc = sli__age_buf_add(h, "\n", 1);
  return rc;
}

int sli__age_header_write(sli__age_buf *h, const sli_age_recipient *const *rcpts, size_t n,
                          const uint8_t file_key[16]) {
  int rc = sli__age_buf_add(h, AGE_VERSION_LINE "\n", strlen(AGE_VERSION_LINE) + 1);
  if (rc) return sli__fail(NULL, rc, "cannot write the header: %s", sli_strerror(rc));
  for (size_t i = 0; i < n; i++)
    if ((rc = add_stanza(h, rcpts[i], file_key)))
      return sli__fail(NULL, rc, "cannot wrap the file key for recipient %zu: %s", i + 1,
                       sli_strerror(rc));
  if ((rc = add_mac(h, file_key)))
    return sli__fail(NULL, rc, "cannot write the header: %s", sli_strerror(rc));
  return 0;
}

/* ---- reading ---- */

#define covered_fail(cov, ...) (sli__age_buf_wipe(cov), sli__fail(__VA_ARGS__))

/* try_stanza returns 0 with the file key if one of the identities opens this stanza,
 * SLI_E_NO_MATCH if none does, or the failure of a malformed stanza (recorded in `e`). */
static int try_stanza(sli_age_identity *const *ids, size_t n_ids, char **args, int nargs,
                      const uint8_t *body, size_t blen, uint8_t file_key[16], sli__error *e) {
  if (!strcmp(args[0], "X25519")) {
    uint8_t share[32];
    if (nargs != 2 || sli__age_b64_decode(share, sizeof(share), args[1], strlen(args[1])) || blen != 32)
      return sli__fail(e, SLI_E_HEADER, "malformed X25519 stanza");
    for (size_t i = 0; i < n_ids; i++) {
      sli_age_identity *id = ids[i];
      if (id->kind != AGE_X25519) continue;
      uint8_t shared[32], salt[64], key[32];
      static const uint8_t zero[32];
      if (!X25519(shared, id->sk, share) || CRYPTO_memcmp(shared, zero, 32) == 0)
        return sli__fail(e, SLI_E_HEADER, "X25519 stanza with a low-order share");
      memcpy(salt, share, 32);
      memcpy(salt + 32, id->pk, 32);
      int rc = sli__age_hkdf32(key, shared, 32, salt, 64, "age-encryption.org/v1/X25519");
      if (!rc) rc = sli__age_unwrap_key(file_key, key, body, blen);
      OPENSSL_cleanse(shared, 32);
      OPENSSL_cleanse(key, 32);
      if (!rc) return 0;
    }
    return SLI_E_NO_MATCH;
  }
  if (!strcmp(args[0], "scrypt")) {
    uint8_t salt[16];
    if (nargs != 3 || sli__age_b64_decode(salt, sizeof(salt), args[1], strlen(args[1])) || blen != 32 ||
        !args[2][0] || (args[2][0] == '0') || strspn(args[2], "0123456789") != strlen(args[2]) ||
        strlen(args[2]) > 2)
      return sli__fail(e, SLI_E_HEADER, "malformed scrypt stanza");
    int log2_n = atoi(args[2]);
    for (size_t i = 0; i < n_ids; i++) {
      sli_age_identity *id = ids[i];
      if (id->kind != AGE_SCRYPT) continue;
      if (log2_n > AGE_SCRYPT_MAX_LOG2)
        return sli__fail(e, SLI_E_HEADER, "scrypt work factor 2^%d is above the limit 2^%d", log2_n,
                         AGE_SCRYPT_MAX_LOG2);
      uint8_t key[32];
      int rc = scrypt_key(key, id->passphrase, salt, log2_n);
      if (!rc) rc = sli__age_unwrap_key(file_key, key, body, blen);
      OPENSSL_cleanse(key, 32);
      if (!rc) return 0;
    }
    return SLI_E_NO_MATCH;
  }
  if (!strcmp(args[0], "ssh-ed25519") || !strcmp(args[0], "ssh-rsa")) {
    int kind = args[0][4] == 'e' ? AGE_SSH_ED25519 : AGE_SSH_RSA;
    for (size_t i = 0; i < n_ids; i++) {
      if (ids[i]->kind != kind) continue;
      int rc = sli__age_ssh_unwrap(ids[i], args, nargs, body, blen, file_key);
      if (!rc) return 0;
      if (rc != SLI_E_NO_MATCH) return sli__fail(e, SLI_E_HEADER, "malformed %s stanza", args[0]);
    }
    return SLI_E_NO_MATCH;
  }
  return SLI_E_NO_MATCH; /* an unknown recipient type: not for us */
}

int sli__age_header_parse(char *h, size_t len, sli_age_identity *const *ids, size_t n_ids,
                          uint8_t file_key[16], sli__error *e) {
  h[len - 1] = 0; /* replaces the MAC line's newline */
  char *mac_line = strstr(h, "\n---");
  while (mac_line && mac_line[4] != ' ' && mac_line[4] != 0) mac_line = strstr(mac_line + 1, "\n---");
  if (strncmp(h, AGE_VERSION_LINE "\n", sizeof(AGE_VERSION_LINE)) != 0)
    return sli__fail(e, SLI_E_HEADER, "not an age v1 file (first line is not '%s')", AGE_VERSION_LINE);
  if (!mac_line || mac_line[4] != ' ') return sli__fail(e, SLI_E_HEADER, "malformed header MAC line");
  size_t mac_off = (size_t)(mac_line + 4 - h); /* the MAC covers up to and including "---" */
  uint8_t mac[32];
  if (sli__age_b64_decode(mac, sizeof(mac), mac_line + 5, strlen(mac_line + 5)))
    return sli__fail(e, SLI_E_HEADER, "malformed header MAC");
  /* the stanza parsing below writes into the buffer: keep the bytes the MAC covers */
  sli__age_buf covered = {0};
  if (sli__age_buf_add(&covered, h, mac_off)) return sli__fail(e, SLI_E_NOMEM, "out of memory");
  /* stanzas */
  char *p = h + sizeof(AGE_VERSION_LINE), *end = mac_line + 1;
  int found = 0, n_stanzas = 0, has_scrypt = 0;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || strncmp(p, "-> ", 3) != 0) return covered_fail(&covered, e, SLI_E_HEADER, "malformed stanza line");
    *nl = 0;
    char *args[16], *save;
    int nargs = 0;
    if (strstr(p + 3, "  ") || p[3] == ' ' || nl[-1] == ' ') return covered_fail(&covered, e, SLI_E_HEADER, "malformed stanza arguments");
    for (char *a = strtok_r(p + 3, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
      if (nargs == 16) return covered_fail(&covered, e, SLI_E_HEADER, "too many stanza arguments");
      for (char *c = a; *c; c++)
        if (*c < 33 || *c > 126) return covered_fail(&covered, e, SLI_E_HEADER, "stanza argument with invalid characters");
      args[nargs++] = a;
    }
    if (!nargs) return covered_fail(&covered, e, SLI_E_HEADER, "empty stanza");
    /* body: base64 lines, the last shorter than 64 characters */
    char b64[4096];
    size_t b64n = 0;
    p = nl + 1;
    for (;;) {
      if (p >= end) return covered_fail(&covered, e, SLI_E_HEADER, "stanza body runs into the MAC line");
      char *bl = memchr(p, '\n', (size_t)(end - p));
      if (!bl) return covered_fail(&covered, e, SLI_E_HEADER, "unterminated stanza body");
      size_t ln = (size_t)(bl - p);
      if (ln > 64 || b64n + ln >= sizeof(b64)) return covered_fail(&covered, e, SLI_E_HEADER, "stanza body line too long");
      memcpy(b64 + b64n, p, ln);
      b64n += ln;
      p = bl + 1;
      if (ln < 64) break;
    }
    uint8_t body[3072];
    size_t blen;
    if (sli__age_b64_decode_max(body, sizeof(body), &blen, b64, b64n))
      return covered_fail(&covered, e, SLI_E_HEADER, "stanza body is not canonical base64");
    n_stanzas++;
    has_scrypt |= !strcmp(args[0], "scrypt");
    if (!found) {
      int rc = try_stanza(ids, n_ids, args, nargs, body, blen, file_key, e);
      if (!rc) found = 1;
      else if (rc != SLI_E_NO_MATCH) {
        sli__age_buf_wipe(&covered);
        return rc;
      }
    }
  }
  if (n_stanzas == 0) return covered_fail(&covered, e, SLI_E_HEADER, "no recipient stanza");
  if (has_scrypt && n_stanzas > 1) return covered_fail(&covered, e, SLI_E_HEADER, "an scrypt stanza must be the only one");
  if (!found)
    return covered_fail(&covered, e, SLI_E_NO_MATCH, "%s open this file (%d recipient%s)",
                 n_ids == 1 ? "the identity given cannot" : "none of the identities given can", n_stanzas,
                 n_stanzas == 1 ? "" : "s");
  uint8_t hk[32], want[32];
  unsigned ml = 0;
  int rc = sli__age_hkdf32(hk, file_key, 16, NULL, 0, "header");
  if (!rc && !HMAC(EVP_sha256(), hk, 32, covered.p, mac_off, want, &ml)) rc = SLI_E_INTERNAL;
  sli__age_buf_wipe(&covered);
  OPENSSL_cleanse(hk, 32);
  if (rc || CRYPTO_memcmp(want, mac, 32) != 0) {
    OPENSSL_cleanse(file_key, 16);
    return covered_fail(&covered, e, SLI_E_HEADER_MAC, "the header MAC does not match (the header was modified)");
  }
  return 0;
}
