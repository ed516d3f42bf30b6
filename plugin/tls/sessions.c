/* sessions.c — client session resumption, on by default as the header promises: a client context
 * keeps the sessions its servers give it (TLS 1.3 tickets, TLS 1.2 sessions), keyed by the server's
 * name and address, and offers one to the next connection to the same server. A TLS 1.3 ticket is
 * offered once (the server sends fresh ones); a TLS 1.2 session until it is replaced. Sessions also
 * leave and enter a process as bytes (sli_conn_session_export / sli_conn_session_import). A server
 * may keep its TLS 1.2 sessions in a store of the host's (sli_config_set_session_cache_cbs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
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

/* ---- A server's TLS 1.2 sessions in the host's store (sli_config_set_session_cache_cbs) ---- */

#define LOOKUP_FIRST 16384
#define LOOKUP_MAX (1 << 20)

static sli__snapshot *snapshot_of(const SSL_CTX *ctx) {
  return SSL_CTX_get_ex_data(ctx, sli__snapshot_index);
}

static int store_session(SSL *ssl, SSL_SESSION *sess) {
  sli__snapshot *s = snapshot_of(SSL_get_SSL_CTX(ssl));
  unsigned id_len = 0;
  const uint8_t *id = SSL_SESSION_get_id(sess, &id_len);
  if (!s || !s->hooks.store_fn || !id_len) return 0;
  uint8_t *b = NULL;
  size_t n = 0;
  if (SSL_SESSION_to_bytes(sess, &b, &n)) {
    int64_t expires = (int64_t)SSL_SESSION_get_time(sess) + (int64_t)SSL_SESSION_get_timeout(sess);
    s->hooks.store_fn(id, id_len, b, n, expires, s->hooks.cache_arg);
    OPENSSL_cleanse(b, n);
    OPENSSL_free(b);
  }
  ERR_clear_error();
  return 0; /* BoringSSL keeps its reference */
}

/* lookup_session: the host copies the session into our buffer; SLI_E_BUFSIZE with the size needed
 * earns one more try with a buffer that large (up to 1 MiB). A stored session that is not one, or
 * has expired, is removed from the store (BoringSSL's own removal only sees its internal cache,
 * which is off here). */
static SSL_SESSION *lookup_session(SSL *ssl, const uint8_t *id, int id_len, int *out_copy) {
  *out_copy = 0; /* the session returned is the caller's */
  sli__snapshot *s = snapshot_of(SSL_get_SSL_CTX(ssl));
  if (!s || !s->hooks.lookup_fn || id_len <= 0) return NULL;
  size_t cap = LOOKUP_FIRST;
  for (int attempt = 0; attempt < 2; attempt++) {
    uint8_t *buf = malloc(cap);
    if (!buf) return NULL;
    size_t len = cap;
    int r = s->hooks.lookup_fn(id, (size_t)id_len, buf, &len, s->hooks.cache_arg);
    SSL_SESSION *sess = NULL;
    if (r == 0 && len <= cap) sess = SSL_SESSION_from_bytes(buf, len, SSL_get_SSL_CTX(ssl));
    OPENSSL_cleanse(buf, cap);
    free(buf);
    ERR_clear_error();
    if (r == SLI_E_BUFSIZE && attempt == 0 && len > 0 && len <= LOOKUP_MAX) {
      if (len > cap) cap = len;
      continue;
    }
    if (r == 0 && len > cap) return NULL; /* the callback broke its contract: a miss, nothing more */
    if (r == 0 && (!sess || (int64_t)SSL_SESSION_get_time(sess) +
                                    (int64_t)SSL_SESSION_get_timeout(sess) <= (int64_t)time(NULL))) {
      SSL_SESSION_free(sess); /* garbage, or expired: the store forgets it */
      s->hooks.remove_fn(id, (size_t)id_len, s->hooks.cache_arg);
      return NULL;
    }
    return sess;
  }
  return NULL;
}

static void remove_session(SSL_CTX *ctx, SSL_SESSION *sess) {
  sli__snapshot *s = snapshot_of(ctx);
  unsigned id_len = 0;
  const uint8_t *id = SSL_SESSION_get_id(sess, &id_len);
  if (s && s->hooks.remove_fn && id_len) s->hooks.remove_fn(id, id_len, s->hooks.cache_arg);
}

void sli__session_store_install(SSL_CTX *ctx) {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, store_session);
  SSL_CTX_sess_set_get_cb(ctx, lookup_session);
  SSL_CTX_sess_set_remove_cb(ctx, remove_session);
}

int sli_config_set_session_cache_cbs(sli_config *cfg, sli_session_store_fn store,
                                     sli_session_lookup_fn lookup, sli_session_remove_fn remove,
                                     void *arg) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_set_session_cache_cbs: cfg is NULL");
  int n = !!store + !!lookup + !!remove;
  if (n != 0 && n != 3)
    return sli__fail(&cfg->err, SLI_E_INVAL,
                     "sli_config_set_session_cache_cbs: store, lookup and remove go together");
  cfg->hooks.store_fn = store;
  cfg->hooks.lookup_fn = lookup;
  cfg->hooks.remove_fn = remove;
  cfg->hooks.cache_arg = n ? arg : NULL;
  return 0;
}
