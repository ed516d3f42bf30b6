/* tickets.c — session-ticket keys shared through a file, so several processes or hosts resume each
 * other's sessions. File format: one key a line, 160 hex digits = 16-byte name, 32-byte HMAC-SHA256
 * key, 32-byte AES-256-CBC key; '#' starts a comment. The first key encrypts new tickets; every key
 * decrypts, and a ticket sealed with an older key is renewed with the first. Without a file, a
 * server context makes and rotates its own keys and keeps them across reloads. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/aes.h>
#include <openssl/cipher.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "tls/tls.h"

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int sli__ticket_keys_parse(const char *path, const char *text, size_t len, sli__ticket_key *out,
                           size_t *out_n, sli__error *e) {
  size_t n = 0, lineno = 0;
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    lineno++;
    const char *a = p, *b = le;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if (a < b && *a != '#') {
      if (b - a != 160)
        return sli__fail(e, SLI_E_CONFIG,
                         "ticket-key file '%s', line %zu: expected 160 hex digits, found %zu "
                         "characters (make keys with 'sli tickets rotate FILE')",
                         path, lineno, (size_t)(b - a));
      if (n == SLI_MAX_TICKET_KEYS)
        return sli__fail(e, SLI_E_CONFIG, "ticket-key file '%s' holds more than %d keys",
                         path, SLI_MAX_TICKET_KEYS);
      uint8_t raw[80];
      for (size_t i = 0; i < 80; i++) {
        int hi = hexval(a[2 * i]), lo = hexval(a[2 * i + 1]);
        if (hi < 0 || lo < 0) {
          OPENSSL_cleanse(raw, sizeof(raw));
          return sli__fail(e, SLI_E_CONFIG,
                           "ticket-key file '%s', line %zu: not a hex digit", path, lineno);
        }
        raw[i] = (uint8_t)(hi << 4 | lo);
      }
      memcpy(out[n].name, raw, 16);
      memcpy(out[n].hmac_key, raw + 16, 32);
      memcpy(out[n].aes_key, raw + 48, 32);
      OPENSSL_cleanse(raw, sizeof(raw));
      n++;
    }
    p = nl ? nl + 1 : end;
  }
  if (n == 0)
    return sli__fail(e, SLI_E_CONFIG, "ticket-key file '%s' holds no key", path);
  *out_n = n;
  return 0;
}

/* ticket_crypt sets up a ticket's encryption under keys[0], or its decryption under the key it
 * names (2: renew it under keys[0]; 0: unknown, a full handshake). */
static int ticket_crypt(const sli__ticket_key *keys, size_t n, uint8_t *key_name, uint8_t *iv,
                        EVP_CIPHER_CTX *cctx, HMAC_CTX *hctx, int encrypt) {
  if (n == 0) return encrypt ? -1 : 0;
  if (encrypt) {
    const sli__ticket_key *k = &keys[0];
    if (!RAND_bytes(iv, EVP_MAX_IV_LENGTH)) return -1;
    memcpy(key_name, k->name, 16);
    if (!EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes_key, iv) ||
        !HMAC_Init_ex(hctx, k->hmac_key, 32, EVP_sha256(), NULL))
      return -1;
    return 1;
  }
  for (size_t i = 0; i < n; i++) {
    const sli__ticket_key *k = &keys[i];
    if (CRYPTO_memcmp(key_name, k->name, 16) != 0) continue;
    if (!HMAC_Init_ex(hctx, k->hmac_key, 32, EVP_sha256(), NULL) ||
        !EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes_key, iv))
      return -1;
    return i == 0 ? 1 : 2; /* 2: renew the ticket under the current key */
  }
  return 0; /* unknown key: full handshake */
}

/* A server context's own keys, when no file gives them: made at random, kept by the context across
 * reloads (a reload used to discard every resumable session), rotated every two days as BoringSSL
 * rotates its own; the previous key still decrypts. */
#define ROTATE_MS (2 * 24 * 3600 * 1000LL)

struct sli__own_tickets {
  pthread_mutex_t mu;
  sli__ticket_key key[2]; /* the current, then the previous */
  size_t n;
  int64_t rotate_at;
};

static int fresh_key(sli__ticket_key *k) {
  return RAND_bytes(k->name, sizeof(k->name)) && RAND_bytes(k->hmac_key, sizeof(k->hmac_key)) &&
         RAND_bytes(k->aes_key, sizeof(k->aes_key));
}

sli__own_tickets *sli__own_tickets_new(void) {
  sli__own_tickets *o = sli__zalloc(sizeof(*o));
  if (!o) return NULL;
  if (!fresh_key(&o->key[0])) {
    free(o);
    return NULL;
  }
  o->n = 1;
  o->rotate_at = sli__now_ms() + ROTATE_MS;
  pthread_mutex_init(&o->mu, NULL);
  return o;
}

void sli__own_tickets_free(sli__own_tickets *o) {
  if (!o) return;
  pthread_mutex_destroy(&o->mu);
  OPENSSL_cleanse(o, sizeof(*o));
  free(o);
}

/* own_keys copies the context's own keys (rotating them when due) into `out`; returns how many. */
static size_t own_keys(sli__own_tickets *o, sli__ticket_key out[2]) {
  pthread_mutex_lock(&o->mu);
  int64_t now = sli__now_ms();
  sli__ticket_key next;
  if (now >= o->rotate_at && fresh_key(&next)) {
    o->key[1] = o->key[0];
    o->key[0] = next;
    o->n = 2;
    o->rotate_at = now + ROTATE_MS;
    OPENSSL_cleanse(&next, sizeof(next));
  }
  size_t n = o->n;
  memcpy(out, o->key, n * sizeof(*out));
  pthread_mutex_unlock(&o->mu);
  return n;
}

static int ticket_cb(SSL *ssl, uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *cctx,
                     HMAC_CTX *hctx, int encrypt) {
  sli__snapshot *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sli__snapshot_index);
  if (!s) return encrypt ? -1 : 0;
  if (s->n_tkeys || !s->own_tickets)
    return ticket_crypt(s->tkeys, s->n_tkeys, key_name, iv, cctx, hctx, encrypt);
  sli__ticket_key own[2];
  size_t n = own_keys(s->own_tickets, own);
  int r = ticket_crypt(own, n, key_name, iv, cctx, hctx, encrypt);
  OPENSSL_cleanse(own, sizeof(own));
  return r;
}

void sli__ticket_keys_install(SSL_CTX *ctx) { SSL_CTX_set_tlsext_ticket_key_cb(ctx, ticket_cb); }
