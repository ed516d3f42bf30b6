/* tls.h — the TLS engine's types and helpers shared by the files of plugin/tls/. Never installed. */
#ifndef SLI_TLS_H
#define SLI_TLS_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pki/pki.h"

#define SLI_MAX_IDENTITIES 64
#define SLI_MAX_TICKET_KEYS 16

/* One certificate chain plus its private key; `key` NULL: the host keeps the key and signs through
 * its private-key callback (keyops.c). */
typedef struct sli__identity {
  STACK_OF(X509) *chain; /* leaf first */
  EVP_PKEY *key;
} sli__identity;

/* The host's callbacks (sli_config_set_*_cb, sli_config_insecure_keylog), copied into each snapshot. */
typedef struct sli__hooks {
  sli_alpn_select_fn alpn_fn;
  void *alpn_arg;
  sli_client_hello_fn hello_fn;
  void *hello_arg;
  sli_private_key_fn key_fn;
  void *key_arg;
  sli_session_store_fn store_fn;
  sli_session_lookup_fn lookup_fn;
  sli_session_remove_fn remove_fn;
  void *cache_arg;
  sli_keylog_fn keylog_fn;
  void *keylog_arg;
} sli__hooks;

typedef struct sli__ticket_key {
  uint8_t name[16];
  uint8_t hmac_key[32];
  uint8_t aes_key[32];
} sli__ticket_key;

struct sli_config {
  atomic_int refs;
  sli__error err; /* the last failure of a call on it (sli_config_error) */

  sli__identity ids[SLI_MAX_IDENTITIES];
  size_t n_ids;
  /* SLI_CERT / SLI_KEY / password waiting for their partner (sli_config_set_option). */
  char *pending_cert, *pending_key, *pending_password;

  STACK_OF(X509) *ca; /* trusted CAs; NULL: the system store for clients, none for servers */
  STACK_OF(X509_CRL) *crls;
  int client_cert;
  char *policy;
  char *ciphers; /* user cipher list, or NULL for the policy's */
  uint16_t min_version, max_version;
  uint8_t *alpn_wire;
  size_t alpn_len;
  sli__ticket_key tkeys[SLI_MAX_TICKET_KEYS];
  size_t n_tkeys;
  int resumption;
  uint32_t handshake_timeout_ms;
  int insecure_nocert, insecure_noname;
  sli__hooks hooks;
  char *keylog_file; /* SLI_INSECURE_KEYLOG */
};

/* A snapshot: an SSL_CTX plus what its callbacks need. Owned by the SSL_CTX's ex_data; freed with it. */
/* sessions.c: a client context's kept sessions. */
typedef struct sli__session_cache sli__session_cache;
/* tickets.c: a server context's own session-ticket keys (when no file gives them). */
typedef struct sli__own_tickets sli__own_tickets;

typedef struct sli__snapshot {
  int is_server;
  sli__session_cache *sessions; /* a client's, owned by its sli_ctx (NULL: resumption off) */
  sli__own_tickets *own_tickets; /* a server's own ticket keys, owned by its sli_ctx */
  sli__identity ids[SLI_MAX_IDENTITIES];
  size_t n_ids;
  uint8_t *alpn_wire;
  size_t alpn_len;
  sli__ticket_key tkeys[SLI_MAX_TICKET_KEYS];
  size_t n_tkeys;
  uint32_t handshake_timeout_ms;
  int verify_cert, verify_name;
  sli__hooks hooks;
  char *keylog_file;
} sli__snapshot;

/* A context's counters (sli_ctx_stats), shared by its connections. */
typedef struct sli__stats {
  _Atomic uint64_t handshakes, resumed, failed[16], bytes_in, bytes_out, live;
} sli__stats;

struct sli_ctx {
  atomic_int refs;
  sli__stats stats;
  int is_server;
  int own_identity; /* a server built with configured identities: a reload must keep some */
  sli__session_cache *sessions; /* a client's kept sessions, across reloads */
  sli__own_tickets *own_tickets; /* a server's own ticket keys, across reloads */
  pthread_mutex_t lock; /* guards `ssl_ctx` swaps */
  SSL_CTX *ssl_ctx;
};


/* tls_init.c: sli__tls_init initialises the library and the TLS engine's ex_data indexes once;
 * every entry point that makes a config or context calls it. */
extern int sli__snapshot_index; /* SSL_CTX ex_data index holding the sli__snapshot */
extern int sli__conn_index;     /* SSL ex_data index holding the sli_conn */
int sli__tls_init(void);

/* identity.c: sli__load_identity parses a chain and its key and checks that they match;
 * sli__identity_copy takes references; sli__identity_clear drops them. */
int sli__load_identity(sli__identity *id, const char *cert_what, const char *cert_pem,
                       size_t cert_len, const char *key_what, const char *key_pem, size_t key_len,
                       const char *password, sli__error *e);
void sli__identity_clear(sli__identity *id);
int sli__identity_copy(sli__identity *dst, const sli__identity *src);

/* sli__policy_apply applies the versions and cipher suites of `cfg` to `ctx` (policy.c). */
int sli__policy_apply(SSL_CTX *ctx, const sli_config *cfg, sli__error *e);
/* sli__ciphers_check refuses a cipher list that names a banned suite: 0 or SLI_E_CIPHERS. */
int sli__ciphers_check(const char *list, sli__error *e);
/* sli__policy_known says whether `name` is a policy (default, modern, compat). */
int sli__policy_known(const char *name);

/* sli__default_identity loads the per-install default identity into `out`, making it the first
 * time (identity.c). */
int sli__default_identity(sli__identity *out, sli__error *e);

/* sli__ticket_keys_parse reads the keys of a ticket-key file's text; `path` names it in messages
 * (tickets.c). */
int sli__ticket_keys_parse(const char *path, const char *text, size_t len, sli__ticket_key *out,
                           size_t *out_n, sli__error *e);
/* sli__ticket_keys_install makes `ctx` seal and open tickets with its snapshot's keys. */
void sli__ticket_keys_install(SSL_CTX *ctx);
/* sli__own_tickets_new makes a server context's own first key (NULL: out of memory or
 * randomness); sli__own_tickets_free wipes and frees them (NULL: nothing). */
sli__own_tickets *sli__own_tickets_new(void);
void sli__own_tickets_free(sli__own_tickets *o);

/* sessions.c: the cache a client context keeps; sli__sessions_install makes `ctx` hand new
 * sessions to it; sli__session_offer gives a client connection the session kept for its server
 * (if any) before its handshake. */
struct sli_conn;
sli__session_cache *sli__session_cache_new(void);
void sli__session_cache_free(sli__session_cache *c);
void sli__sessions_install(SSL_CTX *ctx);
void sli__session_offer(struct sli_conn *c);

/* hello.c: the server's ClientHello — sli__use_identity_ctx makes `id` a context's default identity
 * (0 or SLI_E_CONFIG); sli__hello_install makes the context choose each connection's identity (by
 * SNI, or the host's ClientHello callback) and send TLS 1.2 sessions to the host's store. */
int sli__use_identity_ctx(SSL_CTX *ctx, const sli__identity *id);
void sli__hello_install(SSL_CTX *ctx, const sli__snapshot *snap);

/* keyops.c: signatures by the host's private-key callback. sli__async_key_prefs gives the one
 * signature algorithm an identity whose leaf certificate is `leaf` signs with (0: a kind it cannot). */
extern const SSL_PRIVATE_KEY_METHOD sli__key_method;
#define SLI__ASYNC_KEY_KINDS "a key kept by the host must be RSA (2048 bits or more), ECDSA P-256 or Ed25519"
size_t sli__async_key_prefs(X509 *leaf, const uint16_t **out);

/* alpn.c: the server's ALPN choice (its list, or the host's callback). */
int sli__alpn_install(SSL_CTX *ctx, sli__snapshot *snap, const sli_config *cfg);

/* keylog.c: the insecure key log (a host callback, SLI_INSECURE_KEYLOG's file). */
int sli__keylog_install(SSL_CTX *ctx, sli__snapshot *snap, const sli_config *cfg, sli__error *e);
int sli__keylog_file_set(sli_config *cfg, const char *path);

/* sessions.c: a server's TLS 1.2 sessions in the host's store. */
void sli__session_store_install(SSL_CTX *ctx);

/* verify.c */
int sli__verify_code(long x509_err);

#endif
