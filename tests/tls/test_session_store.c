/* test_session_store.c — sli_config_set_session_cache_cbs: a store of the host's that server
 * contexts share for their TLS 1.2 sessions. Two server contexts of a fleet, built from configs
 * sharing one store, resume each other's TLS 1.2 sessions (which separate contexts with their
 * own ticket keys do not); TLS 1.3 goes on with tickets and never reaches the store; bytes that are
 * not a session, and an expired session (which is removed from the store), cost a full handshake,
 * not a failure; a lookup answering SLI_E_BUFSIZE is asked again with a buffer of the size it
 * named; the callbacks go all three together or all NULL. Black-box through libsli.so.1, an sli
 * client against sli servers over socketpairs. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char state_dir[] = "/tmp/sli-sstore-XXXXXX";
static char ca_file[4096];

/* ---- The host's store: a small array keyed by session ID, shared by the fleet ---- */

enum lookup_mode {
  LOOKUP_NORMAL,       /* copies the session, or SLI_E_BUFSIZE if the buffer is too small */
  LOOKUP_GARBAGE,      /* answers bytes that are not a session */
  LOOKUP_BUFSIZE_ONCE, /* the first call pretends the buffer is too small (SLI_E_BUFSIZE) */
  LOOKUP_EXPIRED,      /* answers the session with its creation time moved back to 1970 */
};

#define SLOTS 8

typedef struct {
  pthread_mutex_t mu;
  struct {
    uint8_t id[32];
    size_t id_len;
    uint8_t *data;
    size_t len;
    int64_t expires;
  } slot[SLOTS];
  enum lookup_mode mode;
  int stores, lookups, removes, found, bufsize_answers;
  int bad_id_len;            /* a call whose ID was empty or over 32 bytes */
  size_t lookup_cap[4];      /* the capacity (*out_len on entry) of the first lookups */
  uint8_t last_store_id[32], last_lookup_id[32], last_remove_id[32];
  size_t last_store_id_len, last_lookup_id_len, last_remove_id_len;
  int64_t last_expires;
} host_store;

/* One fleet member's view of the store (each server's config has its own arg): counts by member. */
typedef struct {
  host_store *st;
  int stores, lookups, removes;
} member;

static void store_init(host_store *st, enum lookup_mode mode) {
  memset(st, 0, sizeof(*st));
  pthread_mutex_init(&st->mu, NULL);
  st->mode = mode;
}

static void store_free(host_store *st) {
  for (int i = 0; i < SLOTS; i++) free(st->slot[i].data);
  pthread_mutex_destroy(&st->mu);
}

static int find(host_store *st, const uint8_t *id, size_t id_len) {
  for (int i = 0; i < SLOTS; i++)
    if (st->slot[i].data && st->slot[i].id_len == id_len && !memcmp(st->slot[i].id, id, id_len))
      return i;
  return -1;
}

static int cb_store(const uint8_t *id, size_t id_len, const uint8_t *data, size_t len,
                    int64_t expires, void *arg) {
  member *m = arg;
  host_store *st = m->st;
  pthread_mutex_lock(&st->mu);
  st->stores++;
  m->stores++;
  int rc = SLI_E_NOMEM;
  if (id_len == 0 || id_len > 32) {
    st->bad_id_len++;
  } else {
    memcpy(st->last_store_id, id, id_len);
    st->last_store_id_len = id_len;
    st->last_expires = expires;
    int at = find(st, id, id_len);
    for (int i = 0; i < SLOTS && at < 0; i++)
      if (!st->slot[i].data) at = i;
    uint8_t *copy = malloc(len);
    if (at >= 0 && copy) {
      memcpy(copy, data, len);
      free(st->slot[at].data);
      memcpy(st->slot[at].id, id, id_len);
      st->slot[at].id_len = id_len;
      st->slot[at].data = copy;
      st->slot[at].len = len;
      st->slot[at].expires = expires;
      rc = 0;
    } else {
      free(copy);
    }
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* der_len reads a DER length at p (short or long form) within end; returns the header size or 0. */
static size_t der_len(const uint8_t *p, const uint8_t *end, size_t *out) {
  if (p >= end) return 0;
  if (!(p[0] & 0x80)) {
    *out = p[0];
    return 1;
  }
  size_t n = p[0] & 0x7f, v = 0;
  if (n == 0 || n > sizeof(size_t) || (size_t)(end - p) < 1 + n) return 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | p[1 + i];
  *out = v;
  return 1 + n;
}

/* backdate sets the session's creation time ([1] EXPLICIT INTEGER in BoringSSL's SSL_SESSION DER)
 * to a small positive value of the same length: 0x01 then zeros, still minimal DER — 1970. */
static int backdate(uint8_t *der, size_t len) {
  const uint8_t *end = der + len;
  uint8_t *p = der;
  size_t n, h;
  if (len < 2 || *p++ != 0x30 || !(h = der_len(p, end, &n)) || n > (size_t)(end - p - h)) return -1;
  p += h;
  end = p + n;
  while (p < end) {
    uint8_t tag = *p++;
    if ((tag & 0x1f) == 0x1f || !(h = der_len(p, end, &n)) || n > (size_t)(end - p - h)) return -1;
    p += h;
    if (tag == 0xA1) { /* [1] EXPLICIT INTEGER time */
      size_t ilen;
      if (n < 3 || p[0] != 0x02 || !(h = der_len(p + 1, p + n, &ilen)) || 1 + h + ilen != n ||
          ilen == 0)
        return -1;
      uint8_t *v = p + 1 + h;
      v[0] = 0x01;
      memset(v + 1, 0, ilen - 1);
      return 0;
    }
    p += n;
  }
  return -1;
}

static int cb_lookup(const uint8_t *id, size_t id_len, uint8_t *out, size_t *out_len, void *arg) {
  member *m = arg;
  host_store *st = m->st;
  pthread_mutex_lock(&st->mu);
  if (st->lookups < 4) st->lookup_cap[st->lookups] = *out_len;
  st->lookups++;
  m->lookups++;
  int rc = SLI_E_NO_MATCH;
  if (id_len == 0 || id_len > 32) {
    st->bad_id_len++;
    goto done;
  }
  memcpy(st->last_lookup_id, id, id_len);
  st->last_lookup_id_len = id_len;
  int at = find(st, id, id_len);
  if (at < 0) goto done;
  st->found++;
  size_t len = st->slot[at].len;
  if (st->mode == LOOKUP_GARBAGE) {
    static const uint8_t junk[] = "\x30\x10 these are not the bytes of any session at all";
    len = sizeof(junk) - 1;
    if (*out_len < len) goto done;
    memcpy(out, junk, len);
    *out_len = len;
    rc = 0;
    goto done;
  }
  if (*out_len < len || (st->mode == LOOKUP_BUFSIZE_ONCE && st->bufsize_answers == 0)) {
    st->bufsize_answers++;
    *out_len = len; /* the real size */
    rc = SLI_E_BUFSIZE;
    goto done;
  }
  memcpy(out, st->slot[at].data, len);
  *out_len = len;
  rc = 0;
  if (st->mode == LOOKUP_EXPIRED && backdate(out, len)) rc = SLI_E_NO_MATCH; /* unparsed: none */
done:
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static void cb_remove(const uint8_t *id, size_t id_len, void *arg) {
  member *m = arg;
  host_store *st = m->st;
  pthread_mutex_lock(&st->mu);
  st->removes++;
  m->removes++;
  if (id_len == 0 || id_len > 32) {
    st->bad_id_len++;
  } else {
    memcpy(st->last_remove_id, id, id_len);
    st->last_remove_id_len = id_len;
    int at = find(st, id, id_len);
    if (at >= 0) {
      free(st->slot[at].data);
      st->slot[at].data = NULL;
    }
  }
  pthread_mutex_unlock(&st->mu);
}

/* ---- Contexts and connections ---- */

/* A client identity for mutual TLS: a CA and a certificate it issued, both PEM. */
typedef struct {
  char *ca, *cert, *key;
  size_t ca_len, cert_len, key_len;
} mtls;

/* server_ctx: a server context with the default identity; the store's callbacks with `m`'s view
 * when `m` is not NULL; client certificates from `id`'s CA required when `id` is not NULL. */
static sli_ctx *server_ctx_mtls(member *m, const mtls *id) {
  sli_config *cfg = sli_config_new();
  sli_ctx *s = NULL;
  if (cfg && !sli_config_set_handshake_timeout(cfg, 5000) &&
      (!m || !sli_config_set_session_cache_cbs(cfg, cb_store, cb_lookup, cb_remove, m)) &&
      (!id || (!sli_config_set_ca_mem(cfg, id->ca, id->ca_len) &&
               !sli_config_set_client_cert(cfg, SLI_CLIENT_CERT_REQUIRED))))
    sli_ctx_new_server(&s, cfg, 0);
  sli_config_free(cfg);
  return s;
}

static sli_ctx *server_ctx(member *m) { return server_ctx_mtls(m, NULL); }

/* client_ctx: a client context trusting the default identity, up to `max_version` (0: TLS 1.3),
 * presenting `id`'s certificate when `id` is not NULL. */
static sli_ctx *client_ctx_mtls(int max_version, const mtls *id) {
  sli_config *cfg = sli_config_new();
  sli_ctx *c = NULL;
  if (cfg && !sli_config_set_ca_file(cfg, ca_file) &&
      !sli_config_set_handshake_timeout(cfg, 5000) &&
      (!max_version || !sli_config_set_max_version(cfg, max_version)) &&
      (!id || !sli_config_set_keypair_mem(cfg, id->cert, id->cert_len, id->key, id->key_len, NULL)))
    sli_ctx_new_client(&c, cfg, 0);
  sli_config_free(cfg);
  return c;
}

static sli_ctx *client_ctx(int max_version) { return client_ctx_mtls(max_version, NULL); }

typedef struct {
  sli_conn *conn;
  int rc, resumed;
} server_side;

static void *serve(void *arg) {
  server_side *ss = arg;
  ss->rc = sli_conn_handshake(ss->conn);
  if (ss->rc == 0) {
    ss->resumed = sli_conn_is_resumed(ss->conn);
    char buf[16];
    ssize_t n = sli_conn_read(ss->conn, buf, sizeof(buf));
    if (n > 0) sli_conn_write(ss->conn, buf, (size_t)n); /* a write: TLS 1.3 tickets go with it */
    sli_conn_close(ss->conn);
  }
  return NULL;
}

typedef struct {
  int c_rc, s_rc;         /* the handshakes' results */
  int c_resumed, s_resumed;
  char version[16];       /* the client's sli_conn_version */
  int echoed;             /* the ping came back */
} outcome;

/* exchange: one connection of `client` to `server` ("localhost"): a handshake and a ping. `import`
 * is offered if not NULL; `export` (if not NULL) receives the client's session afterwards. */
static outcome exchange(sli_ctx *server, sli_ctx *client, const uint8_t *import, size_t ilen,
                        uint8_t **export, size_t *elen) {
  outcome o = {.c_rc = -9999, .s_rc = -9999, .c_resumed = -1, .s_resumed = -1};
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return o;
  server_side ss = {NULL, -9999, -1};
  sli_conn *c = NULL;
  pthread_t th;
  if (sli_conn_new_fd(&ss.conn, server, fds[0], NULL, 0) ||
      pthread_create(&th, NULL, serve, &ss)) {
    sli_conn_free(ss.conn);
    close(fds[0]);
    close(fds[1]);
    return o;
  }
  if (!sli_conn_new_fd(&c, client, fds[1], "localhost", 0) &&
      (!import || !sli_conn_session_import(c, import, ilen))) {
    o.c_rc = sli_conn_handshake(c);
    if (o.c_rc == 0) {
      o.c_resumed = sli_conn_is_resumed(c);
      const char *v = sli_conn_version(c);
      snprintf(o.version, sizeof(o.version), "%s", v ? v : "?");
      char buf[16];
      o.echoed = sli_conn_write(c, "ping", 4) == 4 && sli_conn_read(c, buf, sizeof(buf)) == 4;
      if (export && sli_conn_session_export(c, export, elen)) *export = NULL;
    }
    sli_conn_close(c);
  }
  sli_conn_free(c);
  shutdown(fds[1], SHUT_RDWR);
  pthread_join(th, NULL);
  o.s_rc = ss.rc;
  o.s_resumed = ss.resumed;
  sli_conn_free(ss.conn);
  close(fds[0]);
  close(fds[1]);
  return o;
}

/* first_session: a TLS 1.2 client context's full handshake with `server` (with `id`'s
 * certificate if not NULL), its session exported. */
static int first_session_mtls(sli_ctx *server, const mtls *id, uint8_t **sess, size_t *len) {
  sli_ctx *client = client_ctx_mtls(SLI_TLS1_2, id);
  CHECK(client);
  outcome o = exchange(server, client, NULL, 0, sess, len);
  sli_ctx_free(client);
  CHECK_EQ(o.c_rc, 0);
  CHECK_EQ(o.s_rc, 0);
  CHECK(o.echoed);
  CHECK(strcmp(o.version, "TLSv1.2") == 0);
  CHECK_EQ(o.c_resumed, 0);
  CHECK_EQ(o.s_resumed, 0);
  CHECK(*sess && *len > 0);
  return 0;
}

static int first_session(sli_ctx *server, uint8_t **sess, size_t *len) {
  return first_session_mtls(server, NULL, sess, len);
}

/* offer: a fresh TLS 1.2 client context (nothing of its own to offer) presents `sess` to
 * `server`. */
static outcome offer_mtls(sli_ctx *server, const mtls *id, const uint8_t *sess, size_t len) {
  outcome o = {.c_rc = -9999, .s_rc = -9999, .c_resumed = -1, .s_resumed = -1};
  sli_ctx *client = client_ctx_mtls(SLI_TLS1_2, id);
  if (client) o = exchange(server, client, sess, len, NULL, NULL);
  sli_ctx_free(client);
  return o;
}

static outcome offer(sli_ctx *server, const uint8_t *sess, size_t len) {
  return offer_mtls(server, NULL, sess, len);
}

/* big_client_identity: a client certificate whose chain, as the client sends it, is about 25 KB:
 * the leaf and five unrelated self-signed certificates, each with about 4 KB of DNS names. A
 * server's session keeps the chain its client sent: a session larger than a first lookup buffer of
 * 16 KiB. */
static int big_client_identity(mtls *id) {
  sli_key *ca_key = NULL, *k = NULL;
  char *csr = NULL, *leaf = NULL;
  size_t csr_len = 0, leaf_len = 0;
  enum { N = 70, PADS = 5 };
  static char names[N][64];
  const char *sans[N];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof(names[i]), "DNS:replica-%03d.a-long-cluster-name.db.example.org", i);
    sans[i] = names[i];
  }
  CHECK_EQ(sli_key_generate(&ca_key, SLI_KEY_EC, 256, 0), 0);
  CHECK_EQ(sli_key_generate(&k, SLI_KEY_EC, 256, 0), 0);
  CHECK_EQ(sli_cert_selfsign_alloc(ca_key, "/CN=store CA", NULL, 0, 2, SLI_CERT_CA, &id->ca,
                                   &id->ca_len), 0);
  CHECK_EQ(sli_csr_create_alloc(k, "/CN=db-client", sans, N, &csr, &csr_len), 0);
  CHECK_EQ(sli_ca_issue_alloc(id->ca, id->ca_len, ca_key, csr, csr_len, 2, &leaf, &leaf_len), 0);
  size_t used = strlen(leaf); /* the *_alloc lengths count the closing NUL */
  char *pem = malloc(used + 1);
  CHECK(pem);
  memcpy(pem, leaf, used);
  for (int i = 0; i < PADS; i++) {
    char *pad = NULL, subj[32];
    size_t pad_len = 0;
    snprintf(subj, sizeof(subj), "/CN=padding %d", i);
    CHECK_EQ(sli_cert_selfsign_alloc(k, subj, sans, N, 2, 0, &pad, &pad_len), 0);
    size_t add = strlen(pad);
    char *grown = realloc(pem, used + add + 1);
    CHECK(grown);
    pem = grown;
    memcpy(pem + used, pad, add);
    used += add;
    sli_free(pad, pad_len);
  }
  pem[used] = 0;
  id->cert = pem;
  id->cert_len = used;
  CHECK_EQ(sli_key_private_pem_alloc(k, NULL, &id->key, &id->key_len), 0);
  sli_free(leaf, leaf_len);
  sli_free(csr, csr_len);
  sli_key_free(ca_key);
  sli_key_free(k);
  return 0;
}

static void mtls_free(mtls *id) {
  sli_free(id->ca, id->ca_len);
  free(id->cert);
  sli_free(id->key, id->key_len);
}

/* ---- The cases ---- */

/* 1. A fleet: B resumes the session A kept in the shared store; without the store it does not. */
static int test_fleet_shares_tls12_sessions(void) {
  host_store st;
  store_init(&st, LOOKUP_NORMAL);
  member ma = {&st, 0, 0, 0}, mb = {&st, 0, 0, 0};
  sli_ctx *a = server_ctx(&ma), *b = server_ctx(&mb);
  CHECK(a && b);
  uint8_t *sess = NULL;
  size_t len = 0;
  int64_t before = (int64_t)time(NULL);
  CHECK_EQ(first_session(a, &sess, &len), 0);
  int64_t after = (int64_t)time(NULL);
  /* A kept the session in the store: once, by a non-empty ID of at most 32 bytes, for two hours */
  CHECK_EQ(st.stores, 1);
  CHECK_EQ(ma.stores, 1);
  CHECK_EQ(st.bad_id_len, 0);
  CHECK(st.last_store_id_len > 0 && st.last_store_id_len <= 32);
  CHECK(st.last_expires > after);
  CHECK(st.last_expires >= before + 7200 - 60 && st.last_expires <= after + 7200 + 60);
  /* another client context, offering that session, to B: both ends resumed, through B's lookup */
  outcome o = offer(b, sess, len);
  CHECK_EQ(o.c_rc, 0);
  CHECK_EQ(o.s_rc, 0);
  CHECK(o.echoed);
  CHECK_EQ(o.c_resumed, 1);
  CHECK_EQ(o.s_resumed, 1);
  CHECK(mb.lookups >= 1);
  CHECK_EQ(st.found, mb.lookups);
  CHECK(st.last_lookup_id_len == st.last_store_id_len &&
        !memcmp(st.last_lookup_id, st.last_store_id, st.last_store_id_len));
  CHECK_EQ(st.stores, 1); /* a resumption keeps no new session */
  CHECK_EQ(st.removes, 0);
  sli_free(sess, len);
  sli_ctx_free(a);
  sli_ctx_free(b);
  store_free(&st);

  /* the same sequence without the store: each server its own ticket keys, B cannot resume */
  sli_ctx *pa = server_ctx(NULL), *pb = server_ctx(NULL);
  CHECK(pa && pb);
  sess = NULL;
  CHECK_EQ(first_session(pa, &sess, &len), 0);
  o = offer(pb, sess, len);
  CHECK_EQ(o.c_rc, 0);
  CHECK_EQ(o.s_rc, 0);
  CHECK_EQ(o.c_resumed, 0);
  CHECK_EQ(o.s_resumed, 0);
  /* while the session itself is good: its own server resumes it */
  o = offer(pa, sess, len);
  CHECK_EQ(o.c_rc, 0);
  CHECK_EQ(o.c_resumed, 1);
  CHECK_EQ(o.s_resumed, 1);
  sli_free(sess, len);
  sli_ctx_free(pa);
  sli_ctx_free(pb);
  return 0;
}

/* 2. TLS 1.3 with the store set: tickets as before, the store never used. */
static int test_tls13_keeps_tickets(void) {
  host_store st;
  store_init(&st, LOOKUP_NORMAL);
  member m = {&st, 0, 0, 0};
  sli_ctx *server = server_ctx(&m), *client = client_ctx(0);
  CHECK(server && client);
  outcome o1 = exchange(server, client, NULL, 0, NULL, NULL);
  outcome o2 = exchange(server, client, NULL, 0, NULL, NULL);
  CHECK_EQ(o1.c_rc, 0);
  CHECK_EQ(o1.s_rc, 0);
  CHECK(strcmp(o1.version, "TLSv1.3") == 0);
  CHECK_EQ(o1.c_resumed, 0);
  CHECK_EQ(o2.c_rc, 0);
  CHECK_EQ(o2.s_rc, 0);
  CHECK(strcmp(o2.version, "TLSv1.3") == 0);
  CHECK_EQ(o2.c_resumed, 1);
  CHECK_EQ(o2.s_resumed, 1);
  CHECK_EQ(st.stores, 0);
  CHECK_EQ(st.lookups, 0);
  CHECK_EQ(st.removes, 0);
  sli_ctx_free(server);
  sli_ctx_free(client);
  store_free(&st);
  return 0;
}

/* 3. A lookup answering bytes that are not a session: a full handshake, not a failure. */
static int test_garbage_lookup_full_handshake(void) {
  host_store st;
  store_init(&st, LOOKUP_NORMAL);
  member m = {&st, 0, 0, 0};
  sli_ctx *server = server_ctx(&m);
  CHECK(server);
  uint8_t *sess = NULL;
  size_t len = 0;
  CHECK_EQ(first_session(server, &sess, &len), 0);
  CHECK_EQ(st.stores, 1);
  st.mode = LOOKUP_GARBAGE;
  outcome o = offer(server, sess, len);
  CHECK(st.found >= 1); /* the lookup did answer its garbage */
  CHECK_EQ(o.c_rc, 0);
  CHECK_EQ(o.s_rc, 0);
  CHECK(o.echoed);
  CHECK_EQ(o.c_resumed, 0);
  CHECK_EQ(o.s_resumed, 0);
  CHECK_EQ(st.stores, 2); /* the full handshake kept its new session */
  CHECK_EQ(st.removes, 1); /* and the garbage was removed from the store */
  sli_free(sess, len);
  sli_ctx_free(server);
  store_free(&st);
  return 0;
}

/* 4. The buffer protocol: a session larger than the buffer offered gets SLI_E_BUFSIZE with its real
 * size; the lookup is called again with a buffer that large, and the session resumes. */
static int test_lookup_bufsize_retry(void) {
  mtls id = {0};
  CHECK_EQ(big_client_identity(&id), 0);
  host_store st;
  store_init(&st, LOOKUP_NORMAL);
  member m = {&st, 0, 0, 0};
  sli_ctx *server = server_ctx_mtls(&m, &id);
  CHECK(server);
  uint8_t *sess = NULL;
  size_t len = 0;
  CHECK_EQ(first_session_mtls(server, &id, &sess, &len), 0);
  CHECK_EQ(st.stores, 1);
  size_t real = st.slot[find(&st, st.last_store_id, st.last_store_id_len)].len;
  outcome o = offer_mtls(server, &id, sess, len);
  CHECK_EQ(st.lookups, 2);         /* called again after SLI_E_BUFSIZE */
  CHECK_EQ(st.bufsize_answers, 1);
  CHECK(st.lookup_cap[0] < real);  /* the first buffer was too small (else nothing was tested) */
  CHECK(st.lookup_cap[1] >= real); /* the second is as large as the size the lookup named */
  CHECK_EQ(o.c_rc, 0);
  CHECK_EQ(o.s_rc, 0);
  CHECK(o.echoed);
  CHECK_EQ(o.c_resumed, 1);
  CHECK_EQ(o.s_resumed, 1);
  sli_free(sess, len);
  sli_ctx_free(server);
  store_free(&st);
  mtls_free(&id);
  return 0;
}

/* 4b. The same protocol when the lookup pretends, once, that a buffer that would do is too small:
 * SLI_E_BUFSIZE with the real size earns a second call with a buffer that large, and resumption. */
static int test_lookup_bufsize_pretend_once(void) {
  host_store st;
  store_init(&st, LOOKUP_NORMAL);
  member m = {&st, 0, 0, 0};
  sli_ctx *server = server_ctx(&m);
  CHECK(server);
  uint8_t *sess = NULL;
  size_t len = 0;
  CHECK_EQ(first_session(server, &sess, &len), 0);
  CHECK_EQ(st.stores, 1);
  size_t real = st.slot[find(&st, st.last_store_id, st.last_store_id_len)].len;
  st.mode = LOOKUP_BUFSIZE_ONCE;
  outcome o = offer(server, sess, len);
  CHECK_EQ(st.bufsize_answers, 1);
  CHECK_EQ(st.lookups, 2);          /* called again after SLI_E_BUFSIZE */
  CHECK(st.lookup_cap[1] >= real); /* with a buffer of the size it named */
  CHECK_EQ(o.c_rc, 0);
  CHECK_EQ(o.s_rc, 0);
  CHECK_EQ(o.c_resumed, 1);
  CHECK_EQ(o.s_resumed, 1);
  sli_free(sess, len);
  sli_ctx_free(server);
  store_free(&st);
  return 0;
}

/* 5. An expired session from the store: removed from it by its ID, and a full handshake. */
static int test_expired_session_removed(void) {
  host_store st;
  store_init(&st, LOOKUP_NORMAL);
  member m = {&st, 0, 0, 0};
  sli_ctx *server = server_ctx(&m);
  CHECK(server);
  uint8_t *sess = NULL;
  size_t len = 0;
  CHECK_EQ(first_session(server, &sess, &len), 0);
  CHECK_EQ(st.stores, 1);
  uint8_t id[32];
  size_t id_len = st.last_store_id_len;
  memcpy(id, st.last_store_id, id_len);
  /* the test's own check that the rewrite finds the time and keeps the bytes a session */
  size_t at = (size_t)find(&st, id, id_len);
  uint8_t *copy = malloc(st.slot[at].len);
  CHECK(copy);
  memcpy(copy, st.slot[at].data, st.slot[at].len);
  CHECK_EQ(backdate(copy, st.slot[at].len), 0);
  CHECK(memcmp(copy, st.slot[at].data, st.slot[at].len) != 0);
  {
    /* still a session to the library's parser: a client connection accepts the bytes */
    sli_ctx *probe = client_ctx(SLI_TLS1_2);
    sli_conn *pc = NULL;
    int fds[2];
    CHECK(probe && socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    CHECK_EQ(sli_conn_new_fd(&pc, probe, fds[1], "localhost", 0), 0);
    CHECK_EQ(sli_conn_session_import(pc, copy, st.slot[at].len), 0);
    sli_conn_free(pc);
    close(fds[0]);
    close(fds[1]);
    sli_ctx_free(probe);
  }
  free(copy);
  st.mode = LOOKUP_EXPIRED;
  outcome o = offer(server, sess, len);
  CHECK(st.found >= 1); /* the lookup answered the backdated session */
  CHECK_EQ(o.c_rc, 0);
  CHECK_EQ(o.s_rc, 0);
  CHECK(o.echoed);
  CHECK_EQ(o.c_resumed, 0);
  CHECK_EQ(o.s_resumed, 0);
  CHECK_EQ(st.removes, 1);
  CHECK(st.last_remove_id_len == id_len && !memcmp(st.last_remove_id, id, id_len));
  CHECK_EQ(find(&st, id, id_len), -1);
  CHECK_EQ(st.stores, 2); /* the full handshake kept its new session */
  sli_free(sess, len);
  sli_ctx_free(server);
  store_free(&st);
  return 0;
}

/* 6. Usage: the three together or none; a refused call changes nothing; all NULL goes back to
 * tickets. */
static int test_usage(void) {
  host_store st;
  store_init(&st, LOOKUP_NORMAL);
  member m = {&st, 0, 0, 0};
  sli_config *cfg = sli_config_new();
  CHECK(cfg);
  CHECK_EQ(sli_config_set_session_cache_cbs(NULL, cb_store, cb_lookup, cb_remove, &m), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_session_cache_cbs(cfg, cb_store, NULL, NULL, &m), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_session_cache_cbs(cfg, cb_store, cb_lookup, NULL, &m), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_session_cache_cbs(cfg, cb_store, NULL, cb_remove, &m), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_session_cache_cbs(cfg, NULL, cb_lookup, cb_remove, &m), SLI_E_INVAL);
  CHECK_EQ(sli_config_set_session_cache_cbs(cfg, NULL, NULL, NULL, NULL), 0);
  /* set, then all NULL: back to tickets — a TLS 1.2 client resumes, the store untouched */
  CHECK_EQ(sli_config_set_session_cache_cbs(cfg, cb_store, cb_lookup, cb_remove, &m), 0);
  CHECK_EQ(sli_config_set_session_cache_cbs(cfg, NULL, NULL, NULL, &m), 0);
  sli_ctx *server = NULL, *client = client_ctx(SLI_TLS1_2);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  CHECK(client);
  outcome o1 = exchange(server, client, NULL, 0, NULL, NULL);
  outcome o2 = exchange(server, client, NULL, 0, NULL, NULL);
  CHECK_EQ(o1.c_rc, 0);
  CHECK(strcmp(o1.version, "TLSv1.2") == 0);
  CHECK_EQ(o1.c_resumed, 0);
  CHECK_EQ(o2.c_rc, 0);
  CHECK_EQ(o2.c_resumed, 1);
  CHECK_EQ(o2.s_resumed, 1);
  CHECK_EQ(st.stores + st.lookups + st.removes, 0);
  sli_ctx_free(server);
  sli_config_free(cfg);
  /* a refused call leaves no store behind: a fresh config's server keeps TLS 1.2 out of it */
  cfg = sli_config_new();
  CHECK(cfg);
  CHECK_EQ(sli_config_set_session_cache_cbs(cfg, cb_store, NULL, NULL, &m), SLI_E_INVAL);
  server = NULL;
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0);
  o1 = exchange(server, client, NULL, 0, NULL, NULL);
  CHECK_EQ(o1.c_rc, 0);
  CHECK(strcmp(o1.version, "TLSv1.2") == 0);
  CHECK_EQ(st.stores + st.lookups + st.removes, 0);
  sli_ctx_free(server);
  sli_config_free(cfg);
  sli_ctx_free(client);
  store_free(&st);
  return 0;
}

int main(void) {
  alarm(30); /* a hang fails the program instead of blocking the suite */
  if (!mkdtemp(state_dir)) return 1;
  setenv("SLI_STATE_DIR", state_dir, 1);
  char key_file[4096];
  if (sli_default_identity(ca_file, key_file, sizeof(ca_file))) return 1;
  run("fleet_shares_tls12_sessions", test_fleet_shares_tls12_sessions);
  run("tls13_keeps_tickets", test_tls13_keeps_tickets);
  run("garbage_lookup_full_handshake", test_garbage_lookup_full_handshake);
  run("lookup_bufsize_retry", test_lookup_bufsize_retry);
  run("lookup_bufsize_pretend_once", test_lookup_bufsize_pretend_once);
  run("expired_session_removed", test_expired_session_removed);
  run("usage", test_usage);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
