/* internal.h — types and helpers shared by the files of plugin/. Never installed. */
#ifndef SLI_INTERNAL_H
#define SLI_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sli.h"

#define SLI_MSG_MAX 512
#define SLI_MAX_IDENTITIES 64
#define SLI_MAX_TICKET_KEYS 16

/* errors.c: printf into an error-message buffer; returns `code` for tail calls. */
int sli__msg(char *buf, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends the text of BoringSSL's first queued error (if any) to `buf` and clears the queue. */
void sli__append_ssl_error(char *buf, size_t cap);

/* One certificate chain plus its private key. */
typedef struct sli_identity {
  STACK_OF(X509) *chain; /* leaf first */
  EVP_PKEY *key;
} sli_identity;

typedef struct sli_ticket_key {
  uint8_t name[16];
  uint8_t hmac_key[32];
  uint8_t aes_key[32];
} sli_ticket_key;

struct sli_config {
  atomic_int refs;
  char err[SLI_MSG_MAX];
  int has_err;

  sli_identity ids[SLI_MAX_IDENTITIES];
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
  sli_ticket_key tkeys[SLI_MAX_TICKET_KEYS];
  size_t n_tkeys;
  int resumption;
  uint32_t handshake_timeout_ms;
  int insecure_nocert, insecure_noname;
};

/* A snapshot: an SSL_CTX plus what its callbacks need. Owned by the SSL_CTX's ex_data; freed with it. */
typedef struct sli_snapshot {
  int is_server;
  sli_identity ids[SLI_MAX_IDENTITIES];
  size_t n_ids;
  uint8_t *alpn_wire;
  size_t alpn_len;
  sli_ticket_key tkeys[SLI_MAX_TICKET_KEYS];
  size_t n_tkeys;
  uint32_t handshake_timeout_ms;
  int verify_cert, verify_name;
} sli_snapshot;

struct sli_ctx {
  atomic_int refs;
  int is_server;
  pthread_mutex_t lock; /* guards `ssl_ctx` swaps */
  SSL_CTX *ssl_ctx;
};

struct sli_cert {
  atomic_int refs;
  X509 *x509;
  STACK_OF(X509) *chain; /* includes x509 first; may be NULL */
  char *subject, *issuer, *fingerprint, *chain_pem;
  char **sans;
  size_t n_sans;
};

/* library.c */
extern int sli__snapshot_index; /* SSL_CTX ex_data index holding the sli_snapshot */
extern int sli__conn_index;     /* SSL ex_data index holding the sli_conn */
int sli__ensure_init(void);
void *sli__zalloc(size_t n);
char *sli__strdup(const char *s);
int64_t sli__now_ms(void);

/* pem.c: files and PEM, with named errors. Each returns 0 or a negative code with `msg` filled. */
int sli__read_file(const char *path, char **out, size_t *out_len, char *msg, size_t cap);
int sli__pem_check(const char *what, const char *data, size_t len, char **out_norm,
                   size_t *out_norm_len, char *msg, size_t cap);
int sli__parse_chain(const char *what, const char *pem, size_t len, STACK_OF(X509) **out,
                     char *msg, size_t cap);
int sli__parse_key(const char *what, const char *pem, size_t len, const char *password,
                   EVP_PKEY **out, char *msg, size_t cap);
int sli__load_identity(sli_identity *id, const char *cert_what, const char *cert_pem,
                       size_t cert_len, const char *key_what, const char *key_pem, size_t key_len,
                       const char *password, char *msg, size_t cap);
void sli__identity_clear(sli_identity *id);
int sli__identity_copy(sli_identity *dst, const sli_identity *src);

/* config.c */
int sli__config_fail(sli_config *cfg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sli__config_clear_error(sli_config *cfg);

/* policy.c: apply versions and ciphers of `cfg` to `ctx`. */
int sli__policy_apply(SSL_CTX *ctx, const sli_config *cfg, char *msg, size_t cap);
int sli__ciphers_check(const char *list, char *msg, size_t cap);
int sli__policy_known(const char *name);

/* identity.c */
int sli__default_identity(sli_identity *out, char *msg, size_t cap);

/* tickets.c */
int sli__ticket_keys_parse(const char *path, const char *text, size_t len, sli_ticket_key *out,
                           size_t *out_n, char *msg, size_t cap);
void sli__ticket_keys_install(SSL_CTX *ctx);

/* verify.c */
int sli__verify_code(long x509_err);

/* cert.c */
sli_cert *sli__cert_from_x509(X509 *x509, STACK_OF(X509) *chain);

#endif
