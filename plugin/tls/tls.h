/* tls.h — the TLS engine's types and helpers shared by the files of plugin/tls/. Never installed. */
#ifndef SLI_TLS_H
#define SLI_TLS_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pki/pki.h"

#define SLI_MAX_IDENTITIES 64
#define SLI_MAX_TICKET_KEYS 16

/* One certificate chain plus its private key. */
typedef struct sli__identity {
  STACK_OF(X509) *chain; /* leaf first */
  EVP_PKEY *key;
} sli__identity;

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

/* verify.c */
int sli__verify_code(long x509_err);

#endif
