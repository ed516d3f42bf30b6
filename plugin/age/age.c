/* age.c — age v1 (C2SP) encryption and decryption, streaming, with constant memory:
 *   header:  "age-encryption.org/v1\n", one stanza per recipient ("-> X25519 <share>" or
 *            "-> scrypt <salt> <log2 N>", then the wrapped 16-byte file key in base64 lines),
 *            "--- <HMAC-SHA256 of the header>\n";
 *   payload: a 16-byte nonce, then 64 KiB chunks of ChaCha20-Poly1305 under
 *            HKDF(file key, nonce, "payload"), chunk nonce = 11-byte counter | last-chunk flag.
 * Optional ASCII armor around the whole. */
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

#define CHUNK SLI_AGE_CHUNK_BYTES
#define TAGLEN SLI_AGE_TAG_BYTES
#define HEADER_MAX (64 * 1024)
#define ARMOR_BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define ARMOR_END "-----END AGE ENCRYPTED FILE-----"
#define VERSION_LINE "age-encryption.org/v1"

/* ---- small helpers ---- */

/* b64 without padding, as age writes stanza arguments, bodies and the MAC. */
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
  int ok = EVP_AEAD_CTX_init(&c, EVP_aead_chacha20_poly1305(), key, 32, TAGLEN, NULL) &&
           EVP_AEAD_CTX_seal(&c, out32, &n, 32, zero, 12, file_key, 16, NULL, 0);
  EVP_AEAD_CTX_cleanup(&c);
  return ok && n == 32 ? 0 : SLI_E_INTERNAL;
}

int sli__age_unwrap_key(uint8_t file_key[16], const uint8_t key[32], const uint8_t *body, size_t len) {
  EVP_AEAD_CTX c;
  static const uint8_t zero[12];
  size_t n = 0;
  int ok = len == 32 && EVP_AEAD_CTX_init(&c, EVP_aead_chacha20_poly1305(), key, 32, TAGLEN, NULL);
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

static void chunk_nonce(uint8_t nonce[12], uint64_t counter, int last) {
  memset(nonce, 0, 12);
  for (int i = 0; i < 8; i++) nonce[10 - i] = (uint8_t)(counter >> (8 * i));
  nonce[11] = last ? 1 : 0;
}

/* growable byte buffer */
typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

/* buf_add appends `n` bytes: 0 or SLI_E_NOMEM. */
static int buf_add(buf *b, const void *d, size_t n) {
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

static void buf_wipe(buf *b) {
  if (b->p) OPENSSL_cleanse(b->p, b->cap);
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* ---- whole chunks, on one thread or two (SLI_AGE_PARALLEL) ---- */

/* A run of whole, non-last chunks sealed or opened straight between the caller's buffers. The AEAD
 * context is only read, so two threads may use it at once. */
typedef struct chunk_job {
  const EVP_AEAD_CTX *aead;
  int open;
  uint8_t *out;
  const uint8_t *in;
  uint64_t counter;
  size_t n, failed; /* failed: index of the first chunk that did not seal or open, or n */
} chunk_job;

static void chunk_run(void *arg) {
  chunk_job *j = arg;
  const size_t pt = CHUNK, ct = CHUNK + TAGLEN;
  j->failed = j->n;
  for (size_t i = 0; i < j->n; i++) {
    uint8_t nonce[12];
    size_t w = 0;
    chunk_nonce(nonce, j->counter + i, 0);
    int ok = j->open ? EVP_AEAD_CTX_open(j->aead, j->out + i * pt, &w, pt, nonce, 12, j->in + i * ct, ct, NULL, 0) && w == pt
                     : EVP_AEAD_CTX_seal(j->aead, j->out + i * ct, &w, ct, nonce, 12, j->in + i * pt, pt, NULL, 0) && w == ct;
    if (!ok) {
      j->failed = i;
      return;
    }
  }
}

/* helper returns the object's helper thread for a run of `k` chunks, starting it on first use, or
 * NULL to work on the caller's thread alone (not asked for, too few chunks, or no thread to be had). */
static sli__worker *helper(int *parallel, sli__worker **w, size_t k) {
  if (!*parallel || k < 4) return NULL;
  if (!*w && !(*w = sli__worker_new())) *parallel = 0;
  return *w;
}

/* chunks_run seals (or opens) `k` whole chunks from `counter` on, the second half on `w` if given.
 * It returns the index of the first chunk that failed, or `k`. */
static size_t chunks_run(sli__worker *w, const EVP_AEAD_CTX *aead, int open, uint8_t *out, const uint8_t *in,
                         uint64_t counter, size_t k) {
  size_t half = w ? k / 2 : k, in_step = open ? CHUNK + TAGLEN : CHUNK, out_step = open ? CHUNK : CHUNK + TAGLEN;
  chunk_job a = {aead, open, out, in, counter, half, 0};
  chunk_job b = {aead, open, out + half * out_step, in + half * in_step, counter + half, k - half, 0};
  if (w) sli__worker_start(w, chunk_run, &b);
  chunk_run(&a);
  if (w) sli__worker_wait(w);
  ERR_clear_error();
  return a.failed < half ? a.failed : w && b.failed < k - half ? half + b.failed : k;
}

/* ---- encryption ---- */

struct sli_age_enc {
  int armor, finished, parallel;
  sli__worker *worker;     /* SLI_AGE_PARALLEL: started on first use */
  uint64_t counter;
  EVP_AEAD_CTX aead;
  buf pending;            /* header + nonce not yet written */
  uint8_t pt[CHUNK];      /* plaintext of the chunk being filled */
  size_t pt_len;
  uint8_t a_rest[48];     /* armor: raw bytes not yet encoded */
  size_t a_len;
  int a_begun;
  sli__error err;         /* the last failure of a call on it (sli_age_enc_error) */
};

/* add_body appends a stanza body: base64 lines of 64 characters, the last one shorter (empty if
 * need be). */
static int add_body(buf *h, const uint8_t *body, size_t n) {
  char b64[2800];
  size_t w = sli__age_b64(b64, body, n);
  int rc = 0;
  for (size_t off = 0; !rc; off += 64) {
    size_t line = w - off < 64 ? w - off : 64;
    rc = buf_add(h, b64 + off, line);
    if (!rc) rc = buf_add(h, "\n", 1);
    if (line < 64) break; /* a full last line is followed by an empty one */
  }
  return rc;
}

/* add_stanza wraps `file_key` for recipient `r` and appends its stanza (line and body). */
static int add_stanza(buf *h, const sli_age_recipient *r, const uint8_t file_key[16]) {
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
  if (!rc && (r->kind == AGE_SCRYPT || r->kind == AGE_X25519)) rc = sli__age_wrap_key(body, key, file_key);
  OPENSSL_cleanse(key, sizeof(key));
  if (!rc) rc = buf_add(h, line, strlen(line));
  if (!rc) rc = add_body(h, body, blen);
  return rc;
}

/* add_mac appends the MAC line: "---", then the HMAC of everything before it under
 * HKDF(file key, "header"). */
static int add_mac(buf *h, const uint8_t file_key[16]) {
  uint8_t hmac_key[32], mac[32];
  unsigned ml = 0;
  int rc = buf_add(h, "---", 3);
  if (!rc) rc = sli__age_hkdf32(hmac_key, file_key, 16, NULL, 0, "header");
  if (!rc && !HMAC(EVP_sha256(), hmac_key, 32, h->p, h->len, mac, &ml)) rc = SLI_E_INTERNAL;
  OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
  char m64[64];
  if (!rc) sli__age_b64(m64, mac, 32);
  if (!rc) rc = buf_add(h, " ", 1);
  if (!rc) rc = buf_add(h, m64, strlen(m64));
  if (!rc) rc = buf_add(h, "\n", 1);
  return rc;
}

int sli_age_enc_new(sli_age_enc **out, const sli_age_recipient *const *rcpts, size_t n, uint32_t flags) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_enc_new: out is NULL");
  *out = NULL;
  if (!rcpts || n == 0) return sli__fail(NULL, SLI_E_INVAL, "sli_age_enc_new: no recipient given");
  if (flags & ~(SLI_AGE_ARMOR | SLI_AGE_PARALLEL))
    return sli__fail(NULL, SLI_E_INVAL, "sli_age_enc_new: unknown flags 0x%x", flags);
  for (size_t i = 0; i < n; i++) {
    if (!rcpts[i]) return sli__fail(NULL, SLI_E_INVAL, "sli_age_enc_new: recipient %zu is NULL", i + 1);
    if (rcpts[i]->kind == AGE_SCRYPT && n > 1)
      return sli__fail(NULL, SLI_E_INVAL, "a passphrase recipient must be the only recipient of a file");
  }
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_age_enc_new: the library cannot be initialised");
  sli_age_enc *e = sli__zalloc(sizeof(*e));
  if (!e) return sli__fail(NULL, SLI_E_NOMEM, "out of memory starting an encryption");
  e->armor = (flags & SLI_AGE_ARMOR) != 0;
  e->parallel = (flags & SLI_AGE_PARALLEL) != 0;
  uint8_t file_key[16], nonce[16], key[32];
  buf *h = &e->pending;
  rc = RAND_bytes(file_key, 16) && RAND_bytes(nonce, 16) ? 0 : SLI_E_INTERNAL;
  if (rc) sli__fail(NULL, rc, "no random bytes for the file key");
  if (!rc && (rc = buf_add(h, VERSION_LINE "\n", strlen(VERSION_LINE) + 1)))
    sli__fail(NULL, rc, "cannot write the header: %s", sli_strerror(rc));
  for (size_t i = 0; !rc && i < n; i++)
    if ((rc = add_stanza(h, rcpts[i], file_key)))
      sli__fail(NULL, rc, "cannot wrap the file key for recipient %zu: %s", i + 1, sli_strerror(rc));
  if (!rc && ((rc = add_mac(h, file_key)) || (rc = buf_add(h, nonce, 16))))
    sli__fail(NULL, rc, "cannot write the header: %s", sli_strerror(rc));
  if (!rc && ((rc = sli__age_hkdf32(key, file_key, 16, nonce, 16, "payload")) ||
              !EVP_AEAD_CTX_init(&e->aead, EVP_aead_chacha20_poly1305(), key, 32, TAGLEN, NULL)))
    rc = sli__fail_ssl(NULL, rc ? rc : SLI_E_INTERNAL, "cannot set up the payload key");
  OPENSSL_cleanse(file_key, sizeof(file_key));
  OPENSSL_cleanse(key, sizeof(key));
  ERR_clear_error();
  if (rc) {
    buf_wipe(&e->pending);
    free(e);
    return rc;
  }
  *out = e;
  return 0;
}

/* emit writes raw output bytes, through the armor encoder when armoring. */
static void emit(sli_age_enc *e, uint8_t *out, size_t *o, const uint8_t *d, size_t n) {
  if (!e->armor) {
    memcpy(out + *o, d, n);
    *o += n;
    return;
  }
  if (!e->a_begun) {
    memcpy(out + *o, ARMOR_BEGIN "\n", sizeof(ARMOR_BEGIN));
    *o += sizeof(ARMOR_BEGIN);
    e->a_begun = 1;
  }
  while (n) {
    size_t take = 48 - e->a_len < n ? 48 - e->a_len : n;
    memcpy(e->a_rest + e->a_len, d, take);
    e->a_len += take;
    d += take;
    n -= take;
    if (e->a_len == 48) {
      *o += EVP_EncodeBlock(out + *o, e->a_rest, 48);
      out[(*o)++] = '\n';
      e->a_len = 0;
    }
  }
}

static size_t armored(const sli_age_enc *e, size_t raw) {
  return e->armor ? raw / 48 * 65 + 65 + sizeof(ARMOR_BEGIN) + sizeof(ARMOR_END) + 4 : raw;
}

size_t sli_age_enc_update_bound(const sli_age_enc *e, size_t in_len) {
  if (!e) return 0;
  /* independent of the state (a full chunk may be buffered), so it can be asked once */
  size_t raw = e->pending.len + ((CHUNK + in_len) / CHUNK + 1) * (CHUNK + TAGLEN);
  return armored(e, raw);
}

size_t sli_age_enc_final_bound(const sli_age_enc *e) {
  return e ? armored(e, e->pending.len + CHUNK + TAGLEN) : 0;
}

/* seal_from seals `len` plaintext bytes as the next chunk, straight into `out` when not armoring. */
static int seal_from(sli_age_enc *e, uint8_t *out, size_t *o, const uint8_t *pt, size_t len, int last) {
  uint8_t nonce[12];
  size_t n = 0;
  chunk_nonce(nonce, e->counter, last);
  if (!e->armor) {
    if (!EVP_AEAD_CTX_seal(&e->aead, out + *o, &n, CHUNK + TAGLEN, nonce, 12, pt, len, NULL, 0))
      return sli__fail_ssl(&e->err, SLI_E_INTERNAL, "cannot seal payload chunk %llu",
                           (unsigned long long)e->counter);
    *o += n;
  } else {
    uint8_t ct[CHUNK + TAGLEN];
    if (!EVP_AEAD_CTX_seal(&e->aead, ct, &n, sizeof(ct), nonce, 12, pt, len, NULL, 0))
      return sli__fail_ssl(&e->err, SLI_E_INTERNAL, "cannot seal payload chunk %llu",
                           (unsigned long long)e->counter);
    emit(e, out, o, ct, n);
  }
  e->counter++;
  return 0;
}

static int seal_chunk(sli_age_enc *e, uint8_t *out, size_t *o, int last) {
  int rc = seal_from(e, out, o, e->pt, e->pt_len, last);
  OPENSSL_cleanse(e->pt, e->pt_len);
  e->pt_len = 0;
  return rc;
}

static void flush_pending(sli_age_enc *e, uint8_t *out, size_t *o) {
  if (!e->pending.len) return;
  emit(e, out, o, e->pending.p, e->pending.len);
  e->pending.len = 0;
}

/* enc_usable checks the arguments every call of the encryptor shares. */
static int enc_usable(sli_age_enc *e, const char *fn, const size_t *out_len) {
  if (!e) return sli__fail(NULL, SLI_E_INVAL, "%s: the encryptor is NULL", fn);
  if (!out_len) return sli__fail(&e->err, SLI_E_INVAL, "%s: out_len is NULL", fn);
  if (e->finished)
    return sli__fail(&e->err, SLI_E_INVAL, "%s: the file is finished (sli_age_enc_final was called)", fn);
  return 0;
}

int sli_age_enc_update(sli_age_enc *e, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len) {
  int rc = enc_usable(e, "sli_age_enc_update", out_len);
  if (rc) return rc;
  if (!in && in_len) return sli__fail(&e->err, SLI_E_INVAL, "sli_age_enc_update: in is NULL");
  size_t bound = sli_age_enc_update_bound(e, in_len);
  if (!out || *out_len < bound) {
    *out_len = bound;
    return sli__fail(&e->err, SLI_E_BUFSIZE,
                     "sli_age_enc_update: the output needs %zu bytes (sli_age_enc_update_bound)", bound);
  }
  size_t o = 0;
  flush_pending(e, out, &o);
  if (e->pt_len == CHUNK && in_len) { /* more input follows: the full chunk held back is not the last */
    rc = seal_chunk(e, out, &o, 0);
    if (rc) return rc;
  }
  size_t whole = e->pt_len == 0 && in_len ? (in_len - 1) / CHUNK : 0; /* chunks with more after them */
  if (whole && !e->armor) { /* sealed straight into `out` (armor encodes in order, below) */
    sli__worker *w = helper(&e->parallel, &e->worker, whole);
    size_t sealed = chunks_run(w, &e->aead, 0, out + o, in, e->counter, whole);
    if (sealed < whole)
      return sli__fail(&e->err, SLI_E_INTERNAL, "cannot seal payload chunk %llu",
                       (unsigned long long)(e->counter + sealed));
    e->counter += whole;
    o += whole * (CHUNK + TAGLEN);
    in += whole * CHUNK;
    in_len -= whole * CHUNK;
  }
  while (in_len) {
    if (e->pt_len == 0 && in_len > CHUNK) { /* a whole chunk with more after it: no copy */
      rc = seal_from(e, out, &o, in, CHUNK, 0);
      if (rc) return rc;
      in += CHUNK;
      in_len -= CHUNK;
      continue;
    }
    if (e->pt_len == CHUNK) { /* more input follows: this full chunk is not the last */
      rc = seal_chunk(e, out, &o, 0);
      if (rc) return rc;
    }
    size_t take = CHUNK - e->pt_len < in_len ? CHUNK - e->pt_len : in_len;
    memcpy(e->pt + e->pt_len, in, take);
    e->pt_len += take;
    in += take;
    in_len -= take;
  }
  *out_len = o;
  return 0;
}

int sli_age_enc_final(sli_age_enc *e, uint8_t *out, size_t *out_len) {
  int rc = enc_usable(e, "sli_age_enc_final", out_len);
  if (rc) return rc;
  size_t bound = sli_age_enc_final_bound(e);
  if (!out || *out_len < bound) {
    *out_len = bound;
    return sli__fail(&e->err, SLI_E_BUFSIZE,
                     "sli_age_enc_final: the output needs %zu bytes (sli_age_enc_final_bound)", bound);
  }
  size_t o = 0;
  flush_pending(e, out, &o);
  rc = seal_chunk(e, out, &o, 1);
  if (rc) return rc;
  if (e->armor) {
    if (e->a_len) o += EVP_EncodeBlock(out + o, e->a_rest, e->a_len);
    if (e->a_len || !e->a_begun) out[o++] = '\n';
    memcpy(out + o, ARMOR_END "\n", sizeof(ARMOR_END));
    o += sizeof(ARMOR_END);
  }
  e->finished = 1;
  *out_len = o;
  return 0;
}

const char *sli_age_enc_error(const sli_age_enc *e) { return e ? sli__error_msg(&e->err) : NULL; }

void sli_age_enc_free(sli_age_enc *e) {
  if (!e) return;
  sli__worker_free(e->worker);
  EVP_AEAD_CTX_cleanup(&e->aead);
  buf_wipe(&e->pending);
  OPENSSL_cleanse(e, sizeof(*e));
  free(e);
}

/* ---- decryption ---- */

enum { D_START, D_HEADER, D_NONCE, D_PAYLOAD, D_DONE, D_FAILED };

struct sli_age_dec {
  int state, armor, armor_ended, parallel;
  sli__worker *worker;     /* SLI_AGE_PARALLEL: started on first use */
  buf start;              /* the first bytes, to tell armor from binary */
  buf line;               /* armor: the current line */
  buf header;
  uint8_t nonce[16];
  size_t nonce_len;
  EVP_AEAD_CTX aead;
  int aead_ready;
  uint64_t counter;
  uint8_t ct[CHUNK + TAGLEN]; /* the chunk being collected; a full one is held until more comes */
  size_t ct_len;
  sli_age_identity **ids;
  size_t n_ids;
  sli__error err; /* the last failure of a call on it (sli_age_dec_error); in D_FAILED, the one
                     that stopped it, which every later call returns */
};

/* dfail records a failure of the file: the decryptor stops, and every later call fails with it. */
static int dfail(sli_age_dec *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dfail(sli_age_dec *d, int code, const char *fmt, ...) {
  char msg[SLI_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  d->state = D_FAILED;
  return sli__fail(&d->err, code, "%s", msg);
}

/* dec_usable checks the arguments every call of the decryptor shares; a stopped decryptor fails again
 * with the failure that stopped it. */
static int dec_usable(sli_age_dec *d, const char *fn, const size_t *out_len) {
  if (!d) return sli__fail(NULL, SLI_E_INVAL, "%s: the decryptor is NULL", fn);
  if (d->state == D_FAILED) return sli__fail(NULL, d->err.code, "%s", d->err.msg);
  if (!out_len) return sli__fail(&d->err, SLI_E_INVAL, "%s: out_len is NULL", fn);
  return 0;
}

int sli_age_dec_new(sli_age_dec **out, const sli_age_identity *const *ids, size_t n, uint32_t flags) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_dec_new: out is NULL");
  *out = NULL;
  if (!ids || n == 0) return sli__fail(NULL, SLI_E_INVAL, "sli_age_dec_new: no identity given");
  if (flags & ~SLI_AGE_PARALLEL)
    return sli__fail(NULL, SLI_E_INVAL, "sli_age_dec_new: unknown flags 0x%x", flags);
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_age_dec_new: the library cannot be initialised");
  sli_age_dec *d = sli__zalloc(sizeof(*d));
  if (!d || !(d->ids = calloc(n, sizeof(*d->ids)))) {
    free(d);
    return sli__fail(NULL, SLI_E_NOMEM, "out of memory starting a decryption");
  }
  for (size_t i = 0; i < n; i++) {
    if (!ids[i] || !(d->ids[i] = sli__age_identity_dup(ids[i]))) {
      d->n_ids = i;
      sli_age_dec_free(d);
      return ids[i] ? sli__fail(NULL, SLI_E_NOMEM, "out of memory starting a decryption")
                    : sli__fail(NULL, SLI_E_INVAL, "sli_age_dec_new: identity %zu is NULL", i + 1);
    }
  }
  d->n_ids = n;
  d->parallel = (flags & SLI_AGE_PARALLEL) != 0;
  *out = d;
  return 0;
}

const char *sli_age_dec_error(const sli_age_dec *d) { return d ? sli__error_msg(&d->err) : NULL; }

void sli_age_dec_free(sli_age_dec *d) {
  if (!d) return;
  sli__worker_free(d->worker);
  for (size_t i = 0; i < d->n_ids; i++) sli_age_identity_free(d->ids[i]);
  free(d->ids);
  if (d->aead_ready) EVP_AEAD_CTX_cleanup(&d->aead);
  buf_wipe(&d->start);
  buf_wipe(&d->line);
  buf_wipe(&d->header);
  OPENSSL_cleanse(d, sizeof(*d));
  free(d);
}

size_t sli_age_dec_update_bound(const sli_age_dec *d, size_t in_len) {
  if (!d) return 0;
  return in_len + 2 * (CHUNK + TAGLEN) + CHUNK; /* plaintext never exceeds what came in */
}

#define covered_fail(cov, ...) (buf_wipe(cov), dfail(__VA_ARGS__))

/* try_stanza returns 0 with the file key if one of our identities opens this stanza,
 * SLI_E_NO_MATCH if none does, or the failure of a malformed stanza (recorded: the file stops). */
static int try_stanza(sli_age_dec *d, char **args, int nargs, const uint8_t *body, size_t blen,
                      uint8_t file_key[16]) {
  if (!strcmp(args[0], "X25519")) {
    uint8_t share[32];
    if (nargs != 2 || sli__age_b64_decode(share, sizeof(share), args[1], strlen(args[1])) || blen != 32)
      return dfail(d, SLI_E_HEADER, "malformed X25519 stanza");
    for (size_t i = 0; i < d->n_ids; i++) {
      sli_age_identity *id = d->ids[i];
      if (id->kind != AGE_X25519) continue;
      uint8_t shared[32], salt[64], key[32];
      static const uint8_t zero[32];
      if (!X25519(shared, id->sk, share) || CRYPTO_memcmp(shared, zero, 32) == 0)
        return dfail(d, SLI_E_HEADER, "X25519 stanza with a low-order share");
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
      return dfail(d, SLI_E_HEADER, "malformed scrypt stanza");
    int log2_n = atoi(args[2]);
    for (size_t i = 0; i < d->n_ids; i++) {
      sli_age_identity *id = d->ids[i];
      if (id->kind != AGE_SCRYPT) continue;
      if (log2_n > AGE_SCRYPT_MAX_LOG2)
        return dfail(d, SLI_E_HEADER, "scrypt work factor 2^%d is above the limit 2^%d", log2_n,
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
    for (size_t i = 0; i < d->n_ids; i++) {
      if (d->ids[i]->kind != kind) continue;
      int rc = sli__age_ssh_unwrap(d->ids[i], args, nargs, body, blen, file_key);
      if (!rc) return 0;
      if (rc != SLI_E_NO_MATCH) return dfail(d, SLI_E_HEADER, "malformed %s stanza", args[0]);
    }
    return SLI_E_NO_MATCH;
  }
  return SLI_E_NO_MATCH; /* an unknown recipient type: not for us */
}

/* parse_header checks the complete header text (ending with the MAC line) and sets up the payload
 * key. Returns 0 or a failure code (already recorded). */
static int parse_header(sli_age_dec *d) {
  char *h = (char *)d->header.p;
  size_t len = d->header.len; /* includes the MAC line's newline */
  h[len - 1] = 0;             /* replaces that newline */
  char *mac_line = strstr(h, "\n---");
  while (mac_line && mac_line[4] != ' ' && mac_line[4] != 0) mac_line = strstr(mac_line + 1, "\n---");
  if (strncmp(h, VERSION_LINE "\n", sizeof(VERSION_LINE)) != 0)
    return dfail(d, SLI_E_HEADER, "not an age v1 file (first line is not '%s')", VERSION_LINE);
  if (!mac_line || mac_line[4] != ' ') return dfail(d, SLI_E_HEADER, "malformed header MAC line");
  size_t mac_off = (size_t)(mac_line + 4 - h); /* the MAC covers up to and including "---" */
  uint8_t mac[32];
  if (sli__age_b64_decode(mac, sizeof(mac), mac_line + 5, strlen(mac_line + 5)))
    return dfail(d, SLI_E_HEADER, "malformed header MAC");
  /* the stanza parsing below writes into the buffer: keep the bytes the MAC covers */
  buf covered = {0};
  if (buf_add(&covered, h, mac_off)) return dfail(d, SLI_E_NOMEM, "out of memory");
  /* stanzas */
  char *p = h + sizeof(VERSION_LINE), *end = mac_line + 1;
  uint8_t file_key[16];
  int found = 0, n_stanzas = 0, has_scrypt = 0;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || strncmp(p, "-> ", 3) != 0) return covered_fail(&covered, d, SLI_E_HEADER, "malformed stanza line");
    *nl = 0;
    char *args[16], *save;
    int nargs = 0;
    if (strstr(p + 3, "  ") || p[3] == ' ' || nl[-1] == ' ') return covered_fail(&covered, d, SLI_E_HEADER, "malformed stanza arguments");
    for (char *a = strtok_r(p + 3, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
      if (nargs == 16) return covered_fail(&covered, d, SLI_E_HEADER, "too many stanza arguments");
      for (char *c = a; *c; c++)
        if (*c < 33 || *c > 126) return covered_fail(&covered, d, SLI_E_HEADER, "stanza argument with invalid characters");
      args[nargs++] = a;
    }
    if (!nargs) return covered_fail(&covered, d, SLI_E_HEADER, "empty stanza");
    /* body: base64 lines, the last shorter than 64 characters */
    char b64[4096];
    size_t b64n = 0;
    p = nl + 1;
    for (;;) {
      if (p >= end) return covered_fail(&covered, d, SLI_E_HEADER, "stanza body runs into the MAC line");
      char *bl = memchr(p, '\n', (size_t)(end - p));
      if (!bl) return covered_fail(&covered, d, SLI_E_HEADER, "unterminated stanza body");
      size_t ln = (size_t)(bl - p);
      if (ln > 64 || b64n + ln >= sizeof(b64)) return covered_fail(&covered, d, SLI_E_HEADER, "stanza body line too long");
      memcpy(b64 + b64n, p, ln);
      b64n += ln;
      p = bl + 1;
      if (ln < 64) break;
    }
    uint8_t body[3072];
    size_t blen;
    if (sli__age_b64_decode_max(body, sizeof(body), &blen, b64, b64n))
      return covered_fail(&covered, d, SLI_E_HEADER, "stanza body is not canonical base64");
    n_stanzas++;
    has_scrypt |= !strcmp(args[0], "scrypt");
    if (!found) {
      int rc = try_stanza(d, args, nargs, body, blen, file_key);
      if (!rc) found = 1;
      else if (rc != SLI_E_NO_MATCH) {
        buf_wipe(&covered);
        return rc;
      }
    }
  }
  if (n_stanzas == 0) return covered_fail(&covered, d, SLI_E_HEADER, "no recipient stanza");
  if (has_scrypt && n_stanzas > 1) return covered_fail(&covered, d, SLI_E_HEADER, "an scrypt stanza must be the only one");
  if (!found)
    return covered_fail(&covered, d, SLI_E_NO_MATCH, "%s open this file (%d recipient%s)",
                 d->n_ids == 1 ? "the identity given cannot" : "none of the identities given can", n_stanzas,
                 n_stanzas == 1 ? "" : "s");
  uint8_t hk[32], want[32];
  unsigned ml = 0;
  int rc = sli__age_hkdf32(hk, file_key, 16, NULL, 0, "header");
  if (!rc && !HMAC(EVP_sha256(), hk, 32, covered.p, mac_off, want, &ml)) rc = SLI_E_INTERNAL;
  buf_wipe(&covered);
  OPENSSL_cleanse(hk, 32);
  if (rc || CRYPTO_memcmp(want, mac, 32) != 0) {
    OPENSSL_cleanse(file_key, 16);
    return covered_fail(&covered, d, SLI_E_HEADER_MAC, "the header MAC does not match (the header was modified)");
  }
  memcpy(d->header.p, file_key, 16); /* keep the file key until the nonce is known */
  OPENSSL_cleanse(file_key, 16);
  return 0;
}

static int open_chunk(sli_age_dec *d, uint8_t *out, size_t *o, int last) {
  if (d->ct_len < TAGLEN) return dfail(d, SLI_E_PAYLOAD, "truncated payload chunk");
  if (last && d->ct_len == TAGLEN && d->counter > 0)
    return dfail(d, SLI_E_PAYLOAD, "an empty last chunk after data");
  uint8_t nonce[12];
  size_t n = 0;
  chunk_nonce(nonce, d->counter, last);
  if (!EVP_AEAD_CTX_open(&d->aead, out + *o, &n, CHUNK, nonce, 12, d->ct, d->ct_len, NULL, 0)) {
    ERR_clear_error();
    return dfail(d, SLI_E_PAYLOAD, last ? "the payload is truncated or extended, or its last chunk was modified"
                                         : "payload chunk %llu was modified or reordered",
                 (unsigned long long)d->counter);
  }
  *o += n;
  d->counter++;
  d->ct_len = 0;
  return 0;
}

/* open_whole opens `k` whole chunks from `in` into `out` + *o. */
static int open_whole(sli_age_dec *d, const uint8_t *in, size_t k, uint8_t *out, size_t *o) {
  size_t bad = chunks_run(helper(&d->parallel, &d->worker, k), &d->aead, 1, out + *o, in, d->counter, k);
  if (bad < k)
    return dfail(d, SLI_E_PAYLOAD, "payload chunk %llu was modified or reordered",
                 (unsigned long long)(d->counter + bad));
  d->counter += k;
  *o += k * CHUNK;
  return 0;
}

/* feed consumes binary (de-armored) bytes. */
static int feed(sli_age_dec *d, const uint8_t *in, size_t n, uint8_t *out, size_t *o) {
  while (n) {
    if (d->state == D_HEADER) {
      /* take bytes up to the end of the MAC line */
      const uint8_t *nl = memchr(in, '\n', n);
      size_t take = nl ? (size_t)(nl - in) + 1 : n;
      if (d->header.len + take > HEADER_MAX) return dfail(d, SLI_E_HEADER, "header larger than 64 KiB");
      size_t line_start = d->header.len;
      if (buf_add(&d->header, in, take)) return dfail(d, SLI_E_NOMEM, "out of memory");
      in += take;
      n -= take;
      if (!nl) continue;
      /* a complete line: is it the MAC line? find its beginning */
      size_t ls = line_start;
      while (ls > 0 && d->header.p[ls - 1] != '\n') ls--;
      if (ls == 0 && (d->header.len != sizeof(VERSION_LINE) || memcmp(d->header.p, VERSION_LINE "\n", sizeof(VERSION_LINE))))
        return dfail(d, SLI_E_HEADER, "not an age v1 file (first line is not '%s')", VERSION_LINE);
      if (d->header.len - ls >= 4 && memcmp(d->header.p + ls, "--- ", 4) == 0) {
        int rc = parse_header(d);
        if (rc) return rc;
        d->state = D_NONCE;
      } else if (d->header.len - ls >= 3 && memcmp(d->header.p + ls, "---", 3) == 0) {
        return dfail(d, SLI_E_HEADER, "malformed header MAC line");
      }
      continue;
    }
    if (d->state == D_NONCE) {
      size_t take = 16 - d->nonce_len < n ? 16 - d->nonce_len : n;
      memcpy(d->nonce + d->nonce_len, in, take);
      d->nonce_len += take;
      in += take;
      n -= take;
      if (d->nonce_len == 16) {
        uint8_t key[32];
        int rc = sli__age_hkdf32(key, d->header.p, 16, d->nonce, 16, "payload");
        if (!rc && !EVP_AEAD_CTX_init(&d->aead, EVP_aead_chacha20_poly1305(), key, 32, TAGLEN, NULL))
          rc = SLI_E_INTERNAL;
        OPENSSL_cleanse(key, 32);
        buf_wipe(&d->header);
        if (rc) return dfail(d, rc, "cannot set up the payload key");
        d->aead_ready = 1;
        d->state = D_PAYLOAD;
      }
      continue;
    }
    if (d->state == D_PAYLOAD) {
      if (d->ct_len == CHUNK + TAGLEN) { /* more data follows: that full chunk was not the last */
        int rc = open_chunk(d, out, o, 0);
        if (rc) return rc;
      }
      size_t k = d->ct_len == 0 ? (n - 1) / (CHUNK + TAGLEN) : 0; /* whole chunks with more after them */
      if (k) { /* opened in place, without a copy */
        int rc = open_whole(d, in, k, out, o);
        if (rc) return rc;
        in += k * (CHUNK + TAGLEN);
        n -= k * (CHUNK + TAGLEN);
        continue;
      }
      size_t take = CHUNK + TAGLEN - d->ct_len < n ? CHUNK + TAGLEN - d->ct_len : n;
      memcpy(d->ct + d->ct_len, in, take);
      d->ct_len += take;
      in += take;
      n -= take;
      continue;
    }
    return dfail(d, d->state == D_DONE ? SLI_E_PAYLOAD : SLI_E_HEADER, "unexpected data");
  }
  return 0;
}

/* armor: decode complete base64 lines between the BEGIN and END lines */
static int armor_line(sli_age_dec *d, char *line, size_t len, uint8_t *out, size_t *o) {
  while (len && (line[len - 1] == '\r')) len--;
  line[len] = 0;
  if (d->armor_ended) {
    for (size_t i = 0; i < len; i++)
      if (line[i] != ' ' && line[i] != '\t') return dfail(d, SLI_E_ARMOR, "data after the armor's END line");
    return 0;
  }
  if (d->armor == 1) { /* expecting BEGIN */
    if (strcmp(line, ARMOR_BEGIN) != 0) return dfail(d, SLI_E_ARMOR, "missing armor BEGIN line");
    d->armor = 2;
    return 0;
  }
  if (!strcmp(line, ARMOR_END)) {
    d->armor_ended = 1;
    return 0;
  }
  if (len > 64 || len % 4) return dfail(d, SLI_E_ARMOR, "armor line of %zu characters", len);
  if (d->armor == 3) return dfail(d, SLI_E_ARMOR, "armor data after a short line");
  if (len < 64) d->armor = 3; /* the last data line */
  uint8_t raw[48];
  size_t rn;
  if (!EVP_DecodeBase64(raw, &rn, sizeof(raw), (const uint8_t *)line, len))
    return dfail(d, SLI_E_ARMOR, "bad base64 in the armor");
  return feed(d, raw, rn, out, o);
}

/* process runs bytes through armor decoding (if any) and the binary machine. */
static int process(sli_age_dec *d, const uint8_t *in, size_t in_len, uint8_t *out, size_t *o) {
  if (!d->armor) return feed(d, in, in_len, out, o);
  int rc = 0;
  while (in_len && !rc) {
    const uint8_t *nl = memchr(in, '\n', in_len);
    size_t take = nl ? (size_t)(nl - in) : in_len;
    if (d->line.len + take > 128) return dfail(d, SLI_E_ARMOR, "armor line too long");
    if (buf_add(&d->line, in, take)) return dfail(d, SLI_E_NOMEM, "out of memory");
    in += take;
    in_len -= take;
    if (nl) {
      in++;
      in_len--;
      if (buf_add(&d->line, "", 1)) return dfail(d, SLI_E_NOMEM, "out of memory");
      rc = armor_line(d, (char *)d->line.p, d->line.len - 1, out, o);
      d->line.len = 0;
    }
  }
  return rc;
}

/* decide tells armor from binary by the first non-blank bytes (or, with `force`, by what there is)
 * and runs the bytes collected so far. Returns 0 (maybe still undecided) or a failure code. */
static int decide(sli_age_dec *d, int force, uint8_t *out, size_t *o) {
  size_t skip = 0;
  while (skip < d->start.len && strchr(" \t\r\n", d->start.p[skip])) skip++;
  if (!force && d->start.len - skip < 5 && d->start.len < 4096) return 0;
  d->state = D_HEADER;
  if (d->start.len - skip >= 5 && memcmp(d->start.p + skip, "-----", 5) == 0) d->armor = 1;
  else skip = 0;
  int rc = process(d, d->start.p ? d->start.p + skip : NULL, d->start.len - skip, out, o);
  buf_wipe(&d->start);
  return rc;
}

int sli_age_dec_update(sli_age_dec *d, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len) {
  int rc = dec_usable(d, "sli_age_dec_update", out_len);
  if (rc) return rc;
  if (!in && in_len) return sli__fail(&d->err, SLI_E_INVAL, "sli_age_dec_update: in is NULL");
  size_t bound = sli_age_dec_update_bound(d, in_len);
  if (!out || *out_len < bound) {
    *out_len = bound;
    return sli__fail(&d->err, SLI_E_BUFSIZE,
                     "sli_age_dec_update: the output needs %zu bytes (sli_age_dec_update_bound)", bound);
  }
  size_t o = 0;
  if (d->state == D_START) {
    rc = buf_add(&d->start, in, in_len) ? dfail(d, SLI_E_NOMEM, "out of memory") : decide(d, 0, out, &o);
  } else {
    rc = process(d, in, in_len, out, &o);
  }
  if (rc) {
    OPENSSL_cleanse(out, o);
    *out_len = 0;
    return rc;
  }
  *out_len = o;
  return 0;
}

int sli_age_dec_final(sli_age_dec *d, uint8_t *out, size_t *out_len) {
  int rc = dec_usable(d, "sli_age_dec_final", out_len);
  if (rc) return rc;
  size_t need = CHUNK + (d->state == D_START ? d->start.len : 0); /* a short input is all here */
  if (!out || *out_len < need) {
    *out_len = need;
    return sli__fail(&d->err, SLI_E_BUFSIZE, "sli_age_dec_final: the output needs %zu bytes", need);
  }
  size_t o = 0;
  if (d->state == D_START) { /* a short input: decide now */
    if (d->start.len == 0) rc = dfail(d, SLI_E_HEADER, "the input is empty");
    else rc = decide(d, 1, out, &o);
  }
  if (!rc && d->armor && d->line.len) { /* a last armor line without newline */
    rc = buf_add(&d->line, "", 1) ? dfail(d, SLI_E_NOMEM, "out of memory")
                                  : armor_line(d, (char *)d->line.p, d->line.len - 1, out, &o);
    d->line.len = 0;
  }
  if (!rc && d->armor && !d->armor_ended) rc = dfail(d, SLI_E_ARMOR, "missing armor END line");
  if (!rc && d->state == D_HEADER) rc = dfail(d, SLI_E_HEADER, "the header is incomplete");
  if (!rc && (d->state == D_NONCE || (d->state == D_PAYLOAD && d->ct_len == 0)))
    rc = dfail(d, SLI_E_PAYLOAD, "the payload is missing or truncated");
  if (!rc && d->state == D_PAYLOAD) rc = open_chunk(d, out, &o, 1);
  if (rc) {
    OPENSSL_cleanse(out, o);
    *out_len = 0;
    return rc;
  }
  d->state = D_DONE;
  *out_len = o;
  return 0;
}
