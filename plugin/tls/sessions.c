/* sessions.c — client session resumption, on by default as the header promises: a client context
 * keeps the sessions its servers give it (TLS 1.3 tickets, TLS 1.2 sessions), keyed by the server's
 * name and address, and offers one to the next connection to the same server. A TLS 1.3 ticket is
 * offered once (the server sends fresh ones); a TLS 1.2 session until it is replaced. Sessions also
 * leave and enter a process as bytes (sli_conn_session_export / sli_conn_session_import). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "tls/conn.h"

#define CACHE_SLOTS 64

struct sli__session_cache {
  pthread_mutex_t mu;
  uint64_t clock;
  struct {
    char key[320];
    SSL_SESSION *sess;
    uint64_t used;
  } slot[CACHE_SLOTS];
};

sli__session_cache *sli__session_cache_new(void) {
  sli__session_cache *c = sli__zalloc(sizeof(*c));
  if (c) pthread_mutex_init(&c->mu, NULL);
  return c;
}

void sli__session_cache_free(sli__session_cache *c) {
  if (!c) return;
  for (size_t i = 0; i < CACHE_SLOTS; i++) SSL_SESSION_free(c->slot[i].sess);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* key: the server a client connection talks to — its name and, when known, its address. */
static void key(const sli_conn *c, char *out, size_t cap) {
  snprintf(out, cap, "%s|%s", c->servername, c->peer);
}

static sli__session_cache *cache_of(SSL *ssl) {
  sli__snapshot *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sli__snapshot_index);
  return s ? s->sessions : NULL;
}

/* new_session: BoringSSL hands over a session (a ticket or a TLS 1.2 session) the server gave. */
static int new_session(SSL *ssl, SSL_SESSION *sess) {
  sli__session_cache *cache = cache_of(ssl);
  sli_conn *c = SSL_get_ex_data(ssl, sli__conn_index);
  if (!cache || !c) return 0;
  SSL_SESSION_up_ref(sess); /* the newest one this connection got, for sli_conn_session_export */
  SSL_SESSION_free(c->fresh_session);
  c->fresh_session = sess;
  char k[320];
  key(c, k, sizeof(k));
  pthread_mutex_lock(&cache->mu);
  size_t at = 0;
  for (size_t i = 0; i < CACHE_SLOTS; i++) {
    if (cache->slot[i].sess && !strcmp(cache->slot[i].key, k)) { /* the newest replaces */
      at = i;
      break;
    }
    if (cache->slot[i].used < cache->slot[at].used) at = i; /* else the least recently used */
  }
  SSL_SESSION_free(cache->slot[at].sess);
  snprintf(cache->slot[at].key, sizeof(cache->slot[at].key), "%s", k);
  cache->slot[at].sess = sess; /* the reference BoringSSL gave us */
  cache->slot[at].used = ++cache->clock;
  pthread_mutex_unlock(&cache->mu);
  return 1;
}

void sli__sessions_install(SSL_CTX *ctx) {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, new_session);
}

void sli__session_offer(sli_conn *c) {
  sli__session_cache *cache = cache_of(c->ssl);
  if (!cache || SSL_get_session(c->ssl)) return; /* none kept, or one imported */
  char k[320];
  key(c, k, sizeof(k));
  SSL_SESSION *sess = NULL;
  pthread_mutex_lock(&cache->mu);
  for (size_t i = 0; i < CACHE_SLOTS && !sess; i++) {
    if (!cache->slot[i].sess || strcmp(cache->slot[i].key, k)) continue;
    sess = cache->slot[i].sess;
    if (SSL_SESSION_get_protocol_version(sess) >= TLS1_3_VERSION) { /* a ticket: offered once */
      cache->slot[i].sess = NULL;
      cache->slot[i].used = 0;
    } else {
      SSL_SESSION_up_ref(sess);
      cache->slot[i].used = ++cache->clock;
    }
  }
  pthread_mutex_unlock(&cache->mu);
  if (sess) SSL_set_session(c->ssl, sess);
  SSL_SESSION_free(sess);
}

int sli_conn_session_export(const sli_conn *c, uint8_t **out, size_t *out_len) {
  if (!c || !out || !out_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_conn_session_export: conn, out and out_len are needed");
  *out = NULL;
  *out_len = 0;
  /* TLS 1.3: the newest ticket the server sent; TLS 1.2: the session itself */
  SSL_SESSION *s = c->fresh_session ? c->fresh_session : SSL_get_session(c->ssl);
  if (!c->handshake_done || !s || !SSL_SESSION_is_resumable(s))
    return sli__fail(NULL, SLI_E_INVAL, "sli_conn_session_export: no resumable session (yet)");
  uint8_t *b = NULL;
  size_t n = 0;
  if (!SSL_SESSION_to_bytes(s, &b, &n))
    return sli__fail_ssl(NULL, SLI_E_NOMEM, "sli_conn_session_export: cannot serialise the session");
  *out = malloc(n);
  if (*out) {
    memcpy(*out, b, n);
    *out_len = n;
  }
  OPENSSL_free(b);
  return *out ? 0 : sli__fail(NULL, SLI_E_NOMEM, "sli_conn_session_export: out of memory");
}

int sli_conn_session_import(sli_conn *c, const uint8_t *in, size_t len) {
  if (!c || !in) return sli__fail(NULL, SLI_E_INVAL, "sli_conn_session_import: conn and in are needed");
  if (SSL_is_server(c->ssl) || c->session_offered)
    return sli__fail(&c->err, SLI_E_INVAL, "sli_conn_session_import: only before a client's handshake");
  SSL_SESSION *s = SSL_SESSION_from_bytes(in, len, SSL_get_SSL_CTX(c->ssl));
  if (!s) return sli__fail_ssl(&c->err, SLI_E_INVAL, "sli_conn_session_import: not a session");
  int ok = SSL_set_session(c->ssl, s);
  SSL_SESSION_free(s);
  return ok ? 0 : sli__fail_ssl(&c->err, SLI_E_INVAL, "sli_conn_session_import: refused");
}
