/* sli.h — the secured layer interface: a small, stable C ABI for TLS.
 *
 * Objects: `sli_config` (a builder of settings), `sli_ctx` (a client or server context built from a
 * config), `sli_conn` (one TLS connection) and `sli_cert` (a parsed X.509 certificate).
 *
 * Conventions, stated once:
 * - Every function that can fail returns `int` (or `ssize_t` for I/O): 0 (or a byte count) is success,
 *   a negative SLI_* code is failure. SLI_WANT_READ and SLI_WANT_WRITE are negative too, so `rv < 0`
 *   separates data from everything else. sli never reports errors through `errno`.
 * - Every failure also says why, in one place whatever the call: `sli_last_error` returns the message
 *   of the calling thread's most recent failing call, naming the file, peer or argument at fault. An
 *   object that failed keeps its own copy too (`sli_config_error`, `sli_conn_error`,
 *   `sli_age_enc_error`, `sli_age_dec_error`), as do the `out_msg` buffers of the 1.0 calls.
 * - `*_free(NULL)` does nothing. Strings passed in are borrowed for the length of the call; sli copies
 *   what it keeps. Returned `const char *` are borrowed from their object, valid until the object is
 *   freed or, for error messages, until the next call on that object.
 * - Thread safety: not thread-safe unless said otherwise. `sli_ctx` and `sli_cert` are thread-safe
 *   (immutable settings, atomic reference count). `sli_config` is a builder used from one thread at a
 *   time; a context takes a snapshot of it, so later changes reach only contexts built or reloaded
 *   afterwards. A `sli_conn` is used by one thread at a time.
 * - Nothing in sli aborts or exits the host process.
 * - Times are `int64_t` Unix seconds. Every constructor takes `uint32_t flags`; unknown bits are
 *   SLI_E_INVAL. */
#ifndef SLI_H
#define SLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SLI_API __attribute__((visibility("default")))
#define SLI_WARN_UNUSED_RESULT __attribute__((warn_unused_result))
#else
#define SLI_API
#define SLI_WARN_UNUSED_RESULT
#endif

/* SLI_VERSION_MAJOR, SLI_VERSION_MINOR and SLI_VERSION_PATCH give the version of this header;
 * SLI_VERSION_HEX packs them 8 bits each. Since: 1.0 */
#define SLI_VERSION_MAJOR 1
#define SLI_VERSION_MINOR 1
#define SLI_VERSION_PATCH 0
#define SLI_VERSION_HEX ((SLI_VERSION_MAJOR << 16) | (SLI_VERSION_MINOR << 8) | SLI_VERSION_PATCH)

typedef struct sli_config sli_config;
typedef struct sli_ctx sli_ctx;
typedef struct sli_conn sli_conn;
typedef struct sli_cert sli_cert;
typedef struct sli_key sli_key;

/* ---- Return codes ------------------------------------------------------------------------------
 * Codes live in -1000…-1999, one block of 100 per category; they never overlap -errno. Codes are
 * never renumbered; a new code goes at the end of its block. */

/* BLOCKED (-10xx): the transport would block; repeat the same call with the same arguments. */
#define SLI_WANT_READ (-1001)
#define SLI_WANT_WRITE (-1002)
/* SLI_WANT_CLIENT_HELLO and SLI_WANT_PRIVATE_KEY: a server's handshake waits for the host's own
 * callback to finish later (`sli_conn_client_hello_done`, `sli_conn_private_key_done`), not for the
 * transport; call again once it has. Only hosts that set those callbacks see them. Since: 1.1 */
#define SLI_WANT_CLIENT_HELLO (-1003)
#define SLI_WANT_PRIVATE_KEY (-1004)
/* CLOSED (-11xx). SLI_E_CLOSED: the connection was closed (close_notify seen, or closed locally).
 * SLI_E_TRUNCATED: the peer closed the transport without close_notify — the data may be incomplete. */
#define SLI_E_CLOSED (-1101)
#define SLI_E_TRUNCATED (-1102)
/* IO (-12xx). SLI_E_IO: the transport failed (see `sli_conn_sys_error`), e.g. a reset.
 * SLI_E_TIMEOUT: the handshake did not finish within the handshake timeout. */
#define SLI_E_IO (-1201)
#define SLI_E_TIMEOUT (-1202)
/* ALERT (-13xx). SLI_E_ALERT: the peer sent a fatal alert (see `sli_conn_alert`). */
#define SLI_E_ALERT (-1301)
/* PROTO (-14xx): the peer broke or could not agree on the protocol. */
#define SLI_E_PROTO (-1401)
#define SLI_E_NO_SHARED_CIPHER (-1402)
#define SLI_E_VERSION (-1403)
#define SLI_E_NOT_TLS (-1404)
/* VERIFY (-15xx): one code per reason the peer's certificate was not accepted. SLI_E_SELF_SIGNED: the
 * peer's own certificate is self-signed; a chain ending in an unknown root is SLI_E_UNTRUSTED. */
#define SLI_E_UNTRUSTED (-1501)
#define SLI_E_EXPIRED (-1502)
#define SLI_E_NOT_YET_VALID (-1503)
#define SLI_E_HOSTNAME (-1504)
#define SLI_E_REVOKED (-1505)
#define SLI_E_BAD_SIGNATURE (-1506)
#define SLI_E_SELF_SIGNED (-1507)
#define SLI_E_NO_PEER_CERT (-1508)
#define SLI_E_VERIFY (-1509)
/* CONFIG (-16xx): a setting, file or key could not be used. */
#define SLI_E_PEM (-1601)
#define SLI_E_PEM_TRUNCATED (-1602)
#define SLI_E_LINE_ENDINGS (-1603)
#define SLI_E_NOT_PEM (-1604)
#define SLI_E_PASSWORD (-1605)
#define SLI_E_KEY_MISMATCH (-1606)
#define SLI_E_WEAK_KEY (-1607)
#define SLI_E_CIPHERS (-1608)
#define SLI_E_FILE (-1609)
#define SLI_E_NO_IDENTITY (-1610)
#define SLI_E_CONFIG (-1611)
/* SLI_E_KEY_ENCRYPTED: the key is protected in a way sli cannot open (an OpenSSH private key with a
 * passphrase: bcrypt_pbkdf is not available); remove the passphrase on a copy with `ssh-keygen -p`. */
#define SLI_E_KEY_ENCRYPTED (-1612)
/* CRYPTO (-17xx): blobs, keys and signatures. SLI_E_HEADER: not a blob of a known format or
 * version, or too short. SLI_E_HEADER_MAC: a header failed its authentication. SLI_E_PAYLOAD: the
 * payload was modified, truncated or extended, or the associated data differs. SLI_E_ARMOR: bad
 * base64 / ASCII armor. SLI_E_NO_MATCH: no key or identity given can open it (e.g. the keyring
 * lacks the key ID). SLI_E_SIGNATURE: a signature does not verify. */
#define SLI_E_HEADER (-1701)
#define SLI_E_HEADER_MAC (-1702)
#define SLI_E_PAYLOAD (-1703)
#define SLI_E_ARMOR (-1704)
#define SLI_E_NO_MATCH (-1705)
#define SLI_E_SIGNATURE (-1706)
/* USAGE (-18xx): the caller broke a rule of the API. */
#define SLI_E_INVAL (-1801)
#define SLI_E_STATE (-1802)
#define SLI_E_BUFSIZE (-1803)
#define SLI_E_UNSUPPORTED (-1804)
/* INTERNAL (-19xx). */
#define SLI_E_NOMEM (-1901)
#define SLI_E_INTERNAL (-1902)

/* Error categories returned by `sli_error_category`. Since: 1.0 */
#define SLI_ECAT_OK 0
#define SLI_ECAT_BLOCKED 1
#define SLI_ECAT_CLOSED 2
#define SLI_ECAT_IO 3
#define SLI_ECAT_ALERT 4
#define SLI_ECAT_PROTO 5
#define SLI_ECAT_VERIFY 6
#define SLI_ECAT_CONFIG 7
#define SLI_ECAT_CRYPTO 8
#define SLI_ECAT_USAGE 9
#define SLI_ECAT_INTERNAL 10

/* ---- Library ---------------------------------------------------------------------------------- */

/* sli_init initialises the library. Calling it is optional (every constructor calls it), idempotent
 * and thread-safe. It returns 0 on success or a negative SLI_E_* code. Since: 1.0 */
SLI_API int sli_init(void);

/* sli_version returns the runtime library version as SLI_VERSION_HEX does. Thread-safe. Since: 1.0 */
SLI_API uint32_t sli_version(void);

/* sli_version_string returns the runtime version as a static string such as "1.0.0". Since: 1.0 */
SLI_API const char *sli_version_string(void);

/* sli_err_name returns the symbolic name of `code` ("SLI_E_EXPIRED"), "SLI_OK" for 0, or "unknown
 * error". The string is static; never NULL. Thread-safe. Since: 1.0 */
SLI_API const char *sli_err_name(int code);

/* sli_strerror returns a one-line description of `code`, a static string, never NULL. Since: 1.0 */
SLI_API const char *sli_strerror(int code);

/* sli_error_category returns the SLI_ECAT_* category of `code` (SLI_ECAT_OK for codes >= 0,
 * SLI_ECAT_INTERNAL for unknown negative codes). Since: 1.0 */
SLI_API int sli_error_category(int code);

/* sli_last_error returns the message of the most recent failing sli call on the calling thread — a
 * call that returned a negative SLI_E_* code, or NULL from `sli_config_new` — or NULL if none has
 * failed on this thread. Every failing call records its message there, including those that also
 * keep it in their object or in an `out_msg` buffer. A successful call does not clear it, so read it
 * right after the failure; SLI_WANT_READ and SLI_WANT_WRITE are not failures and leave it as it is.
 * Each thread has its own: a failure on one thread never shows on another, so it also serves calls
 * on objects shared by threads (a keyring, a key). The string belongs to the thread and changes with
 * its next failure. Since: 1.1 */
SLI_API const char *sli_last_error(void);

/* SLI_LOG_ERROR, SLI_LOG_WARN, SLI_LOG_NOTICE, SLI_LOG_INFO and SLI_LOG_DEBUG are the levels of the
 * library's log messages, most severe first. Since: 1.1 */
#define SLI_LOG_ERROR 1
#define SLI_LOG_WARN 2
#define SLI_LOG_NOTICE 3
#define SLI_LOG_INFO 4
#define SLI_LOG_DEBUG 5

/* sli_log_fn receives one log message (one line, no newline) at `level`, with the `arg` given to
 * `sli_set_log_callback`. It may be called from any thread that calls into sli, and must not call
 * back into sli. Since: 1.1 */
typedef void (*sli_log_fn)(int level, const char *message, void *arg);

/* sli_set_log_callback routes the library's notices and warnings — a self-signed default identity
 * generated, verification turned off, a weakened policy, ignored DH parameters, a missing system CA
 * store — to `fn`, for those at `level` or more severe. The library never writes to the host's file
 * descriptors: without a callback (the default, or `fn` NULL) the messages are dropped. Failures are
 * not logged: they are returned, with `sli_last_error` saying why. Thread-safe. Since: 1.1 */
SLI_API void sli_set_log_callback(sli_log_fn fn, int level, void *arg);

/* sli_free zeroes `len` bytes at `p` and frees it; for memory returned by `_alloc` functions.
 * `sli_free(NULL, 0)` does nothing. Since: 1.0 */
SLI_API void sli_free(void *p, size_t len);

/* ---- Configuration ------------------------------------------------------------------------------
 * A `sli_config` starts with secure defaults: policy "default" (TLS 1.2 and 1.3, ECDHE key exchange,
 * AEAD ciphers only), certificate and host name verification on, the system CA store for clients,
 * session resumption on, no client certificates asked, a handshake timeout of 30 seconds. */

/* Client certificate modes for `sli_config_set_client_cert`. Since: 1.0 */
#define SLI_CLIENT_CERT_NONE 0
#define SLI_CLIENT_CERT_OPTIONAL 1
#define SLI_CLIENT_CERT_REQUIRED 2

/* Protocol versions for `sli_config_set_min_version`, `sli_config_set_max_version`. Since: 1.0 */
#define SLI_TLS1_2 0x0303
#define SLI_TLS1_3 0x0304

/* sli_config_new returns a new configuration with the defaults above, or NULL if out of memory. Free
 * it with `sli_config_free`; contexts built from it keep their own reference. Since: 1.0 */
SLI_API sli_config *sli_config_new(void);

/* sli_config_free drops a reference to `cfg`; NULL is a no-op. Since: 1.0 */
SLI_API void sli_config_free(sli_config *cfg);

/* sli_config_error returns a message describing the last failure of a call on `cfg` (including a
 * failed `sli_ctx_new_*` or `sli_ctx_reload` from it), or NULL. Since: 1.0 */
SLI_API const char *sli_config_error(const sli_config *cfg);

/* sli_config_set_keypair_file sets the identity: `cert_file` holds the leaf certificate followed by
 * its chain, `key_file` the private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519), encrypted
 * with `password` if it is not NULL. The files are read and checked now: bad PEM, lone-CR line
 * endings, a DER file, a truncated file, a wrong password and a key that does not match the
 * certificate each return their own code, with a message naming the file. It returns 0 on success
 * or a negative SLI_E_* code. Since: 1.0 */
SLI_API int sli_config_set_keypair_file(sli_config *cfg, const char *cert_file, const char *key_file,
                                        const char *password);

/* sli_config_set_keypair_mem is `sli_config_set_keypair_file` for PEM held in memory. Since: 1.0 */
SLI_API int sli_config_set_keypair_mem(sli_config *cfg, const char *cert_pem, size_t cert_len,
                                       const char *key_pem, size_t key_len, const char *password);

/* sli_config_add_keypair_file adds a further server identity, chosen when the client's SNI name
 * matches one of the certificate's names; the first identity is the default. Since: 1.0 */
SLI_API int sli_config_add_keypair_file(sli_config *cfg, const char *cert_file, const char *key_file,
                                        const char *password);

/* sli_config_set_ca_file sets the trusted CA certificates (PEM) used to verify peers; `path` may
 * also be a directory, whose *.pem / *.crt files are all loaded. It returns 0 on success or a
 * negative SLI_E_* code. Since: 1.0 */
SLI_API int sli_config_set_ca_file(sli_config *cfg, const char *path);

/* sli_config_set_ca_mem sets the trusted CA certificates from PEM in memory. Since: 1.0 */
SLI_API int sli_config_set_ca_mem(sli_config *cfg, const char *pem, size_t len);

/* sli_config_set_crl_file sets a PEM file of certificate revocation lists; peers whose certificate is
 * listed fail with SLI_E_REVOKED. Since: 1.0 */
SLI_API int sli_config_set_crl_file(sli_config *cfg, const char *path);

/* sli_config_set_client_cert sets whether a server asks for client certificates:
 * SLI_CLIENT_CERT_NONE, _OPTIONAL (verified if sent) or _REQUIRED (mutual TLS). Since: 1.0 */
SLI_API int sli_config_set_client_cert(sli_config *cfg, int mode);

/* sli_config_set_policy selects a named policy: "default" (TLS 1.2-1.3, ECDHE, AEAD), "modern"
 * (TLS 1.3 only) or "compat" (adds ECDHE CBC-SHA suites for old TLS 1.2 peers; prints a notice).
 * RC4, 3DES, NULL and export suites are never available. Since: 1.0 */
SLI_API int sli_config_set_policy(sli_config *cfg, const char *name);

/* sli_config_set_ciphers sets the TLS 1.2 cipher suites with an OpenSSL-syntax list such as
 * "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384". A list naming RC4, 3DES, NULL or
 * export suites, or a suite without forward secrecy, returns SLI_E_CIPHERS naming it. TLS 1.3 suites
 * are fixed by BoringSSL (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305). Since: 1.0 */
SLI_API int sli_config_set_ciphers(sli_config *cfg, const char *ciphers);

/* sli_config_set_min_version sets the lowest protocol version (SLI_TLS1_2 or SLI_TLS1_3). Versions
 * below TLS 1.2 are not available. Since: 1.0 */
SLI_API int sli_config_set_min_version(sli_config *cfg, int version);

/* sli_config_set_max_version sets the highest protocol version (SLI_TLS1_2 or SLI_TLS1_3). */
SLI_API int sli_config_set_max_version(sli_config *cfg, int version);

/* sli_config_set_dhparams_file accepts a `dhparams.pem` from an older configuration and ignores it
 * with a notice: sli offers no finite-field DHE, ECDHE provides forward secrecy. Since: 1.0 */
SLI_API int sli_config_set_dhparams_file(sli_config *cfg, const char *path);

/* sli_config_set_alpn sets the ALPN protocols, a comma-separated list in order of preference such as
 * "h2,http/1.1". Since: 1.0 */
SLI_API int sli_config_set_alpn(sli_config *cfg, const char *list);

/* sli_config_set_ticket_keys_file loads session-ticket keys shared by several processes or hosts, so
 * each resumes the others' sessions. The file holds one key a line, 160 hex digits (80 bytes: name,
 * HMAC key, AES key); the first line encrypts new tickets, every line decrypts. Rotate by adding a
 * line at the top and reloading (`sli tickets rotate FILE`). Without a file, each server context
 * makes its own keys, rotates them every two days (the previous one still decrypts) and keeps them
 * across `sli_ctx_reload`, so a reload costs no resumption. Since: 1.0 */
SLI_API int sli_config_set_ticket_keys_file(sli_config *cfg, const char *path);

/* sli_config_set_session_resumption turns session resumption on (1, the default) or off (0). On, a
 * server resumes its clients' sessions, and a client context keeps the sessions its servers give
 * (keyed by server name and address) and offers one to its next connection to the same server. */
SLI_API int sli_config_set_session_resumption(sli_config *cfg, int on);

/* sli_config_set_handshake_timeout sets how long a handshake may take, in milliseconds (0: no
 * limit), counted from the connection's creation (see `sli_conn_deadline_ms`). Expiry fails the
 * connection with SLI_E_TIMEOUT. Since: 1.0 */
SLI_API int sli_config_set_handshake_timeout(sli_config *cfg, uint32_t ms);

/* sli_config_insecure_noverifycert turns certificate verification off for clients. WARNING: any
 * peer can then impersonate the server. Since: 1.0 */
SLI_API int sli_config_insecure_noverifycert(sli_config *cfg);

/* sli_config_insecure_noverifyname turns host name verification off for clients. Since: 1.0 */
SLI_API int sli_config_insecure_noverifyname(sli_config *cfg);

/* SLI_SETTING_MAP is the one list of the settings `sli_config_set_option` takes by name — the same
 * names as the `sli` CLI's TLS flags, the LD_PRELOAD shim's environment variables and SLI_CONFIG
 * files — in the order they are applied when several are given at once. X(ID, NAME, FLAG, VALUE,
 * HELP): ID a token naming the setting, NAME its name, FLAG the CLI flag (a flag whose VALUE is ""
 * takes no argument and means "1"), VALUE what the value is, HELP one line. The CLI, the shim, their
 * documentation and the tests all expand this list. Since: 1.1 */
#define SLI_SETTING_MAP(X)                                                                          \
  X(KEY_PASSWORD_FILE, "SLI_KEY_PASSWORD_FILE", "--password-file", "FILE",                          \
    "the password of the encrypted private keys given after it: the first line of FILE")            \
  X(PASSWORD_FILE, "SLI_PASSWORD_FILE", "--passphrase-file", "FILE",                                \
    "another name for SLI_KEY_PASSWORD_FILE")                                                       \
  X(CERT, "SLI_CERT", "--cert", "FILE",                                                             \
    "the certificate chain, leaf first (PEM); with SLI_KEY an identity, a further pair adds one "   \
    "chosen by SNI")                                                                                \
  X(KEY, "SLI_KEY", "--key", "FILE", "the private key of SLI_CERT (PEM or OpenSSH)")                \
  X(CA, "SLI_CA", "--ca", "FILE",                                                                   \
    "trusted CA certificates (PEM): a client verifies the server with them (else the system's), a " \
    "server verifies client certificates")                                                          \
  X(CRL, "SLI_CRL", "--crl", "FILE", "certificate revocation lists (PEM) checked with SLI_CA")      \
  X(CLIENT_CERT, "SLI_CLIENT_CERT", "--client-cert", "none|optional|required",                      \
    "whether a server asks for a client certificate (default none)")                                \
  X(POLICY, "SLI_POLICY", "--policy", "default|modern|compat",                                      \
    "versions and suites: modern is TLS 1.3 only, compat adds ECDHE CBC-SHA suites")                \
  X(CIPHERS, "SLI_CIPHERS", "--ciphers", "LIST",                                                    \
    "TLS 1.2 suites in OpenSSL syntax, within what the policy allows")                              \
  X(MIN_VERSION, "SLI_MIN_VERSION", "--min-version", "1.2|1.3", "the lowest version (default 1.2)") \
  X(MAX_VERSION, "SLI_MAX_VERSION", "--max-version", "1.2|1.3", "the highest version (default 1.3)") \
  X(ALPN, "SLI_ALPN", "--alpn", "LIST",                                                             \
    "application protocols, comma-separated, most preferred first")                                 \
  X(TICKET_KEYS, "SLI_TICKET_KEYS", "--ticket-keys", "FILE",                                        \
    "session-ticket keys shared by processes that resume each other's sessions (sli tickets)")      \
  X(SESSION_RESUMPTION, "SLI_SESSION_RESUMPTION", "--session-resumption", "0|1",                    \
    "session resumption (default 1)")                                                               \
  X(HANDSHAKE_TIMEOUT, "SLI_HANDSHAKE_TIMEOUT", "--handshake-timeout", "MS",                        \
    "the time a handshake may take, in milliseconds (default 30000)")                               \
  X(DHPARAMS, "SLI_DHPARAMS", "--dhparams", "FILE",                                                 \
    "accepted from older configurations and ignored: key exchange is always ECDHE")                 \
  X(INSECURE, "SLI_INSECURE", "--insecure", "",                                                     \
    "clients do not verify the server's certificate or name: anyone can impersonate it")           \
  X(INSECURE_KEYLOG, "SLI_INSECURE_KEYLOG", "--insecure-keylog", "FILE",                            \
    "append every connection's TLS secrets to FILE (NSS key log, for Wireshark): for debugging")

/* sli_config_set_option sets one setting of SLI_SETTING_MAP by its name. SLI_CERT and SLI_KEY take
 * effect once both are set; a further pair adds an identity chosen by SNI. SLI_KEY_PASSWORD_FILE
 * must come before the key it unlocks. SLI_INSECURE with any value but "1" changes nothing. An
 * unknown name or a malformed value is SLI_E_INVAL. It returns 0 on success or a negative SLI_E_*
 * code, with `sli_config_error` saying why. Since: 1.0 */
SLI_API int sli_config_set_option(sli_config *cfg, const char *name, const char *value);

/* ---- Contexts ---------------------------------------------------------------------------------- */

/* sli_ctx_new_server builds a server context from a snapshot of `cfg` into `*out` (NULL on failure).
 * With no identity configured it uses the per-install default identity (a self-signed ECDSA P-256
 * certificate generated once, see `sli_default_identity`), saying so through the log callback
 * (`sli_set_log_callback`). `flags` must be 0.
 * It returns 0 on success or a negative SLI_E_* code; `sli_config_error(cfg)` explains. Since: 1.0 */
SLI_API int sli_ctx_new_server(sli_ctx **out, sli_config *cfg, uint32_t flags);

/* sli_ctx_new_client builds a client context from a snapshot of `cfg` into `*out`. Since: 1.0 */
SLI_API int sli_ctx_new_client(sli_ctx **out, sli_config *cfg, uint32_t flags);

/* sli_ctx_reload atomically replaces the settings of `ctx` with a snapshot of `cfg`: connections
 * created afterwards use it, live connections keep the settings they started with. If building the
 * new snapshot fails, `ctx` is unchanged and `sli_config_error(cfg)` says why. A server context
 * made with its own certificate and key refuses a `cfg` without one (SLI_E_NO_IDENTITY): it never
 * falls back to the default identity on a reload. Thread-safe. Since: 1.0 */
SLI_API int sli_ctx_reload(sli_ctx *ctx, sli_config *cfg, uint32_t flags);

/* sli_stats holds a context's counters since it was made (reloads keep them): handshakes completed
 * and, of them, resumed; handshakes failed, indexed by the SLI_ECAT_* category of their error;
 * plaintext bytes read and written; connections made and not yet freed. Fields are only ever
 * added at the end. Since: 1.1 */
typedef struct sli_stats {
  uint64_t handshakes, resumed;
  uint64_t failed[16];
  uint64_t bytes_in, bytes_out;
  uint64_t live;
} sli_stats;

/* sli_ctx_stats copies the counters of `ctx` into `out`, of `size` bytes (pass sizeof(sli_stats):
 * a program built against an older header gets the fields it knows). Cheap (atomic loads) and
 * thread-safe. It returns 0 or SLI_E_INVAL. Since: 1.1 */
SLI_API int sli_ctx_stats(const sli_ctx *ctx, sli_stats *out, size_t size);

/* sli_ctx_free drops a reference to `ctx`; NULL is a no-op. Connections keep their own reference. */
SLI_API void sli_ctx_free(sli_ctx *ctx);

/* sli_ctx_up_ref adds a reference to `ctx`, dropped by `sli_ctx_free`. Since: 1.0 */
SLI_API void sli_ctx_up_ref(sli_ctx *ctx);

/* sli_default_identity ensures the per-install default identity exists and writes the paths of its
 * certificate and key into `out_cert` / `out_key` (each `cap` bytes). The state directory is
 * $SLI_STATE_DIR, else $XDG_STATE_HOME/sli, else /var/lib/sli (root) or ~/.local/state/sli; the key
 * is created 0600. It returns 0 on success or a negative SLI_E_* code. Since: 1.0 */
SLI_API int sli_default_identity(char *out_cert, char *out_key, size_t cap);

/* ---- Connections ------------------------------------------------------------------------------- */

/* sli_read_fn is a caller-supplied transport read: it reads up to `len` bytes into `buf` and returns
 * the count, 0 at end of stream, SLI_WANT_READ if it would block, or on failure the negative of the
 * errno behind it (-ECONNRESET) or SLI_E_IO (errno set, or not) — either way `sli_conn_sys_error`
 * then tells the system error. It must not call
 * back into `conn`. A count above `len` breaks the contract: the connection fails with SLI_E_INVAL
 * and a message saying so. Since: 1.0 */
typedef ssize_t (*sli_read_fn)(sli_conn *conn, void *buf, size_t len, void *arg);

/* sli_write_fn is a caller-supplied transport write; it returns the count written, SLI_WANT_WRITE if
 * it would block, or SLI_E_IO. A count above `len` fails the connection with SLI_E_INVAL, as for
 * sli_read_fn. Since: 1.0 */
typedef ssize_t (*sli_write_fn)(sli_conn *conn, const void *buf, size_t len, void *arg);

/* sli_conn_new_fd creates a connection on the socket `fd` into `*out`. On a client context
 * `servername` is the name sent as SNI and verified against the certificate (a name or an IP
 * address); it must be NULL on a server context. The caller keeps `fd`: `sli_conn_free` does not
 * close it. A blocking fd gives blocking calls (bounded by the handshake timeout while the handshake
 * runs); a non-blocking one gives SLI_WANT_* returns. It returns 0 on success or a negative SLI_E_*
 * code. Since: 1.0 */
SLI_API int sli_conn_new_fd(sli_conn **out, sli_ctx *ctx, int fd, const char *servername,
                            uint32_t flags);

/* sli_conn_new_cbs creates a connection whose transport is the caller's callbacks, for any event
 * loop; `arg` is passed to them and kept until `sli_conn_free`. Since: 1.0 */
SLI_API int sli_conn_new_cbs(sli_conn **out, sli_ctx *ctx, sli_read_fn read_fn,
                             sli_write_fn write_fn, void *arg, const char *servername, uint32_t flags);

/* sli_conn_handshake runs the handshake; `sli_conn_read` and `sli_conn_write` run it implicitly. It
 * returns 0 once it is complete, SLI_WANT_READ / SLI_WANT_WRITE, or a negative SLI_E_* code (a VERIFY
 * code when the peer's certificate was refused). Since: 1.0 */
SLI_API int sli_conn_handshake(sli_conn *conn);

/* sli_conn_read reads up to `len` bytes of application data from `conn` into `buf`, running the
 * handshake first if needed. It returns the number of bytes read, 0 after a clean close_notify,
 * SLI_E_TRUNCATED if the peer closed without close_notify, SLI_WANT_READ or SLI_WANT_WRITE if the
 * transport would block, or another negative SLI_E_* code; `sli_conn_error` then describes the
 * failure. A `len` of 0 is SLI_E_INVAL, the connection left as it was. Since: 1.0 */
SLI_API ssize_t sli_conn_read(sli_conn *conn, void *buf, size_t len);

/* sli_conn_write writes up to `len` bytes from `buf`. It returns the number of bytes accepted (which
 * may be less than `len`), SLI_WANT_READ / SLI_WANT_WRITE (repeat the call with the same data), or a
 * negative SLI_E_* code. Since: 1.0 */
SLI_API ssize_t sli_conn_write(sli_conn *conn, const void *buf, size_t len);

/* sli_conn_pending returns the number of decrypted bytes buffered in `conn` and not yet read: an
 * event loop must drain them before it waits on the transport again. Cannot fail. Since: 1.0 */
SLI_API size_t sli_conn_pending(const sli_conn *conn);

/* sli_conn_want returns SLI_WANT_READ or SLI_WANT_WRITE if the last call on `conn` stopped because
 * the transport would block in that direction (a read may want to write and the reverse), else 0. */
SLI_API int sli_conn_want(const sli_conn *conn);

/* sli_conn_close sends close_notify, closing our direction only (a half-close, RFC 8446 §6.1):
 * `sli_conn_read` goes on returning what the peer sends until its own close_notify (0), and after the
 * peer's close_notify `sli_conn_write` still works until this call. It returns 0, SLI_WANT_* (repeat
 * it), or a negative SLI_E_* code. It never closes the caller's fd. Since: 1.0 */
SLI_API int sli_conn_close(sli_conn *conn);

/* sli_conn_free frees `conn` without sending anything; NULL is a no-op. Since: 1.0 */
SLI_API void sli_conn_free(sli_conn *conn);

/* sli_conn_error returns a message about the last failure on `conn`, naming the peer and the reason,
 * or NULL. Since: 1.0 */
SLI_API const char *sli_conn_error(const sli_conn *conn);

/* sli_conn_sys_error returns the errno saved with the last SLI_E_IO on `conn`, or 0: from the fd
 * transport, or from a callback that returned the negative of an errno value or set errno before
 * returning SLI_E_IO. Since: 1.0 */
SLI_API int sli_conn_sys_error(const sli_conn *conn);

/* sli_conn_deadline_ms returns the milliseconds left before the handshake's deadline — its clock
 * starts when the connection is made, not at the first call — so that a host waiting on readiness
 * can arm a timer: when it fires, any call on `conn` fails with SLI_E_TIMEOUT. 0 once the deadline
 * has passed; -1 when none applies (the handshake is complete, failed, or has no timeout).
 * Since: 1.1 */
SLI_API int64_t sli_conn_deadline_ms(const sli_conn *conn);

/* sli_conn_set_peer_addr gives a callback-transport connection its peer's address (the host has it
 * from accept or connect), for `sli_conn_peer_addr` and for messages ("[peer 192.0.2.7:443]"); the
 * fd transport finds it itself. IPv4 or IPv6, else SLI_E_INVAL. Since: 1.1 */
SLI_API int sli_conn_set_peer_addr(sli_conn *conn, const struct sockaddr *addr, socklen_t len);

/* sli_conn_session_export writes the session of `conn`, once its handshake is complete, into a
 * newly allocated buffer (free with `sli_free(*out, *out_len)`) that a client in another process
 * can give to `sli_conn_session_import` to resume it; SLI_E_INVAL if there is none to resume. The
 * bytes hold secrets: keep them as a key. Within one process a client context resumes by itself.
 * Since: 1.1 */
SLI_API int sli_conn_session_export(const sli_conn *conn, uint8_t **out, size_t *out_len);

/* sli_conn_session_import offers an exported session in the handshake of the client connection
 * `conn`, before its first call; a session the server no longer accepts costs a full handshake, not
 * a failure. SLI_E_INVAL for bytes that are not a session, a server connection, or too late.
 * Since: 1.1 */
SLI_API int sli_conn_session_import(sli_conn *conn, const uint8_t *in, size_t len);

/* sli_conn_set_user_data attaches the host's own pointer to `conn` (its session, its request
 * state), for `sli_conn_user_data` to return — from a callback that is given the connection, say.
 * sli never reads or frees it. Since: 1.1 */
SLI_API void sli_conn_set_user_data(sli_conn *conn, void *data);

/* sli_conn_user_data returns the pointer given to `sli_conn_set_user_data`, or NULL. Since: 1.1 */
SLI_API void *sli_conn_user_data(const sli_conn *conn);

/* sli_conn_peer_addr returns the peer's address as "192.0.2.7:443" or "[2001:db8::7]:443", or NULL
 * if unknown. Valid until `sli_conn_free`. Since: 1.1 */
SLI_API const char *sli_conn_peer_addr(const sli_conn *conn);

/* ---- Hooks for embedding servers ---------------------------------------------------------------
 * Callbacks set on a config reach every connection of the contexts built from it (a reload replaces
 * them with the new config's). They run on the thread that is inside a call on the connection, must
 * not call `sli_conn_read`, `_write`, `_handshake` or `_close` on it, and must keep their `arg` alive
 * as long as a context built from the config lives. A callback refuses with a negative SLI_E_* code
 * (not a WANT); any other value outside its contract fails that connection with SLI_E_INVAL and a
 * message. Those that may finish later (client hello, private key) make the handshake return their
 * own WANT code meanwhile; their `*_done` call may come from any thread, after which the host calls
 * the handshake again. A blocking fd's call waits for it, in slices that also notice the handshake
 * deadline and a peer that left (SLI_E_TIMEOUT, SLI_E_TRUNCATED). `sli_conn_free` may be called
 * while an answer is pending: the `*_done` call then frees what is left, so it must still come. */

/* SLI_ALPN_NONE is returned by an sli_alpn_select_fn to negotiate no protocol. Since: 1.1 */
#define SLI_ALPN_NONE (-1)

/* sli_alpn_select_fn chooses a server connection's application protocol among the `n` the client
 * offers (`offered`, most preferred first, NUL-terminated copies valid for the call; a name holding
 * a NUL byte is left out). It returns the
 * index of the one chosen, SLI_ALPN_NONE to go on without one, or a negative SLI_E_* code to refuse
 * the handshake with the no_application_protocol alert. Since: 1.1 */
typedef int (*sli_alpn_select_fn)(sli_conn *conn, const char *const *offered, size_t n, void *arg);

/* sli_config_set_alpn_select_cb makes a server ask `fn` for the protocol of each connection whose
 * client offers ALPN, instead of choosing by the list of `sli_config_set_alpn`. NULL restores that.
 * It returns 0 or SLI_E_INVAL. Since: 1.1 */
SLI_API int sli_config_set_alpn_select_cb(sli_config *cfg, sli_alpn_select_fn fn, void *arg);

/* sli_client_hello_fn sees a server connection's ClientHello once its SNI name is known
 * (`sli_conn_servername`, `sli_conn_peer_addr`), before a certificate is chosen. It may choose the
 * identity with `sli_conn_set_identity`. It returns 0 to go on (with the identity it set, else the
 * configured one for the name), SLI_WANT_CLIENT_HELLO to finish later with
 * `sli_conn_client_hello_done`, or a negative SLI_E_* code to refuse the handshake. Since: 1.1 */
typedef int (*sli_client_hello_fn)(sli_conn *conn, void *arg);

/* sli_config_set_client_hello_cb sets the ClientHello callback of server contexts (NULL: none).
 * It returns 0 or SLI_E_INVAL. Since: 1.1 */
SLI_API int sli_config_set_client_hello_cb(sli_config *cfg, sli_client_hello_fn fn, void *arg);

/* sli_conn_set_identity chooses the certificate chain (leaf first, as `sli_cert_load_file` reads it)
 * and private key a server connection presents, from its ClientHello callback or before
 * `sli_conn_client_hello_done` (the last call wins). `key` NULL means the key stays with the host: its signatures go
 * through the private-key callback (`sli_config_set_private_key_cb`). sli takes its own references.
 * SLI_E_KEY_MISMATCH if the key is not the certificate's, SLI_E_UNSUPPORTED for a key kind the
 * private-key callback cannot serve (see there), SLI_E_STATE outside the ClientHello. Since: 1.1 */
SLI_API int sli_conn_set_identity(sli_conn *conn, const sli_cert *chain, const sli_key *key);

/* sli_conn_client_hello_done ends a ClientHello callback that returned SLI_WANT_CLIENT_HELLO:
 * `status` 0 goes on, a negative SLI_E_* code refuses the handshake, anything else fails it with
 * SLI_E_INVAL (and returns SLI_E_INVAL). It may be called from any thread. SLI_E_STATE if no
 * ClientHello is waiting. Since: 1.1 */
SLI_API int sli_conn_client_hello_done(sli_conn *conn, int status);

/* sli_private_key_fn signs for a server whose key the host keeps (in an HSM, a KMS, another
 * process): `in` is the message to sign (not a digest) and `cert` the leaf certificate of the key,
 * both borrowed for the call. The signature is the one `sli_key_sign` makes with that key: RSA-PSS
 * with SHA-256, ECDSA P-256 with SHA-256 (DER) or Ed25519 — the only kinds such an identity may
 * have. The callback answers with `sli_conn_private_key_done`, now or later, and returns 0 (answered
 * now), SLI_WANT_PRIVATE_KEY (answering later) or a negative SLI_E_* code to fail the handshake.
 * Since: 1.1 */
typedef int (*sli_private_key_fn)(sli_conn *conn, const sli_cert *cert, const uint8_t *in,
                                  size_t in_len, void *arg);

/* sli_config_set_private_key_cb sets the private-key callback that signs for identities without a
 * private key (`sli_config_add_cert_file_async_key`, or `sli_conn_set_identity` with `key` NULL).
 * It returns 0 or SLI_E_INVAL. Since: 1.1 */
SLI_API int sli_config_set_private_key_cb(sli_config *cfg, sli_private_key_fn fn, void *arg);

/* sli_config_add_cert_file_async_key adds a server identity whose private key the host keeps: the
 * certificate chain in `cert_file` (leaf first), its signatures made by the private-key callback.
 * Like `sli_config_add_keypair_file`, the first identity is the default and others are chosen by
 * SNI. RSA (2048 bits or more), ECDSA P-256 and Ed25519 keys only (else SLI_E_UNSUPPORTED); a
 * context built without a private-key callback fails with SLI_E_CONFIG. Since: 1.1 */
SLI_API int sli_config_add_cert_file_async_key(sli_config *cfg, const char *cert_file);

/* sli_conn_private_key_done answers the private-key callback of `conn`: `sig` (`sig_len` bytes, copied)
 * is the signature, or NULL when the signing failed (the handshake then fails with
 * SLI_E_SIGNATURE); an empty signature or one longer than 2048 bytes fails it with SLI_E_INVAL (and
 * returns SLI_E_INVAL). It may be called from any thread. SLI_E_STATE if no signature is awaited.
 * Since: 1.1 */
SLI_API int sli_conn_private_key_done(sli_conn *conn, const uint8_t *sig, size_t sig_len);

/* sli_session_store_fn keeps a server's TLS 1.2 session under its ID (`id`, up to 32 bytes) until
 * `expires` (Unix seconds); `data` is the session, secrets included (keep it as a key). Its return
 * value is not used: a session the store could not keep is simply not found later. Since: 1.1 */
typedef int (*sli_session_store_fn)(const uint8_t *id, size_t id_len, const uint8_t *data,
                                    size_t len, int64_t expires, void *arg);

/* sli_session_lookup_fn copies the session stored under `id` into `out`, whose capacity is
 * `*out_len` (16 KiB at first), and sets `*out_len` to its length; it returns 0, SLI_E_BUFSIZE with
 * `*out_len` set to the size needed (up to 1 MiB) to be called once more with a buffer that large,
 * or another negative code for none (a full handshake follows). Since: 1.1 */
typedef int (*sli_session_lookup_fn)(const uint8_t *id, size_t id_len, uint8_t *out,
                                     size_t *out_len, void *arg);

/* sli_session_remove_fn forgets the session stored under `id`: what the lookup gave was not a
 * session, or it has expired. Since: 1.1 */
typedef void (*sli_session_remove_fn)(const uint8_t *id, size_t id_len, void *arg);

/* sli_config_set_session_cache_cbs gives server contexts a session store of the host's — one a
 * fleet shares, say — for TLS 1.2: such connections get a session ID kept through `store` instead of
 * a session ticket, and resume through `lookup` on any member. TLS 1.3 goes on resuming with tickets
 * (`sli_config_set_ticket_keys_file` shares them). The callbacks may be called from any thread that
 * runs a handshake. All three, or all NULL to go back to tickets; else SLI_E_INVAL. Since: 1.1 */
SLI_API int sli_config_set_session_cache_cbs(sli_config *cfg, sli_session_store_fn store,
                                             sli_session_lookup_fn lookup,
                                             sli_session_remove_fn remove, void *arg);

/* sli_keylog_fn receives one line of TLS secrets in the NSS key log format ("CLIENT_RANDOM ...",
 * "CLIENT_TRAFFIC_SECRET_0 ..."; no newline), which lets Wireshark decrypt the connection. Since: 1.1 */
typedef void (*sli_keylog_fn)(const sli_conn *conn, const char *line, void *arg);

/* sli_config_insecure_keylog hands every connection's secrets to `fn` (NULL: stop). WARNING: whoever
 * gets these lines can read and forge the connections' traffic; for debugging only. Logs a warning
 * when a context is built with it. SLI_INSECURE_KEYLOG=FILE (`--insecure-keylog FILE`) does the same
 * into a file, appended, mode 0600. It returns 0 or SLI_E_INVAL. Since: 1.1 */
SLI_API int sli_config_insecure_keylog(sli_config *cfg, sli_keylog_fn fn, void *arg);

/* sli_conn_alert returns the TLS alert number of the last fatal alert received or sent (80 when a
 * host callback refused the handshake, 120 when the ALPN callback did), or -1. */
SLI_API int sli_conn_alert(const sli_conn *conn);

/* ---- Connection information --------------------------------------------------------------------
 * These return borrowed strings valid until `sli_conn_free`, or NULL before the handshake. */

/* sli_conn_is_secured returns 1 if the handshake of `conn` completed, else 0. Since: 1.0 */
SLI_API int sli_conn_is_secured(const sli_conn *conn);

/* sli_conn_version returns the negotiated protocol, "TLSv1.2" or "TLSv1.3". Since: 1.0 */
SLI_API const char *sli_conn_version(const sli_conn *conn);

/* sli_conn_cipher returns the negotiated cipher suite's name. Since: 1.0 */
SLI_API const char *sli_conn_cipher(const sli_conn *conn);

/* sli_conn_alpn returns the negotiated ALPN protocol, or NULL if none. Since: 1.0 */
SLI_API const char *sli_conn_alpn(const sli_conn *conn);

/* sli_conn_servername returns the SNI name the client sent (server side) or asked for (client
 * side), or NULL. Since: 1.0 */
SLI_API const char *sli_conn_servername(const sli_conn *conn);

/* sli_conn_is_resumed returns 1 if the session was resumed, else 0. Since: 1.0 */
SLI_API int sli_conn_is_resumed(const sli_conn *conn);

/* sli_conn_verify_result returns 0 if the peer's certificate was verified, the VERIFY code saying
 * why it was not (SLI_E_UNTRUSTED, SLI_E_EXPIRED, SLI_E_NOT_YET_VALID, SLI_E_HOSTNAME,
 * SLI_E_REVOKED, SLI_E_BAD_SIGNATURE, SLI_E_SELF_SIGNED, SLI_E_VERIFY), or SLI_E_NO_PEER_CERT.
 * Since: 1.0 */
SLI_API int sli_conn_verify_result(const sli_conn *conn);

/* sli_conn_peer_cert returns the peer's leaf certificate, borrowed until `sli_conn_free`, or NULL.
 * Since: 1.0 */
SLI_API const sli_cert *sli_conn_peer_cert(sli_conn *conn);

/* ---- Certificates ------------------------------------------------------------------------------ */

/* sli_cert_load_file parses the PEM certificate chain in `path` (leaf first) into `*out`. Bad input
 * returns the same named codes as `sli_config_set_keypair_file`; `out_msg`, if not NULL, receives a
 * description of the failure, cut to `msg_cap` bytes. Since: 1.0 */
SLI_API int sli_cert_load_file(sli_cert **out, const char *path, char *out_msg, size_t msg_cap);

/* sli_cert_load_mem is `sli_cert_load_file` for PEM in memory. Since: 1.0 */
SLI_API int sli_cert_load_mem(sli_cert **out, const char *pem, size_t len, char *out_msg,
                              size_t msg_cap);

/* sli_cert_up_ref returns `cert` with one more reference, for the host to keep past the object it
 * was borrowed from (the peer certificate of a connection about to be freed, say); release it with
 * `sli_cert_free`. NULL gives NULL. Thread-safe. Since: 1.1 */
SLI_API sli_cert *sli_cert_up_ref(const sli_cert *cert);

/* sli_cert_free drops a reference to `cert`; NULL is a no-op. Since: 1.0 */
SLI_API void sli_cert_free(sli_cert *cert);

/* sli_cert_subject returns the subject as a one-line string, in the certificate's order, as
 * `openssl x509 -noout -subject` prints it ("C = FR, O = Acme, CN = db.example.com"). */
SLI_API const char *sli_cert_subject(const sli_cert *cert);

/* sli_cert_issuer returns the issuer as a one-line string. Since: 1.0 */
SLI_API const char *sli_cert_issuer(const sli_cert *cert);

/* sli_cert_san_count returns the number of subject alternative names (DNS, IP, email, URI). */
SLI_API size_t sli_cert_san_count(const sli_cert *cert);

/* sli_cert_san returns SAN number `i` as "DNS:name", "IP:addr", "email:x" or "URI:x", or NULL. */
SLI_API const char *sli_cert_san(const sli_cert *cert, size_t i);

/* sli_cert_not_before returns the start of the validity period in Unix seconds. Since: 1.0 */
SLI_API int64_t sli_cert_not_before(const sli_cert *cert);

/* sli_cert_not_after returns the end of the validity period in Unix seconds. Since: 1.0 */
SLI_API int64_t sli_cert_not_after(const sli_cert *cert);

/* sli_cert_fingerprint_sha256 returns the SHA-256 fingerprint of the DER certificate as upper-case
 * hex pairs separated by colons, as `openssl x509 -fingerprint -sha256` prints it. Since: 1.0 */
SLI_API const char *sli_cert_fingerprint_sha256(const sli_cert *cert);

/* sli_cert_chain_pem returns the certificate and the chain that came with it, as PEM. Since: 1.0 */
SLI_API const char *sli_cert_chain_pem(const sli_cert *cert);

/* ---- Sealed blobs (database fields) -------------------------------------------------------------
 * A sealed blob is AES-256-GCM with a 33-byte overhead: version (1 byte, 0x01), key ID (4 bytes,
 * big-endian), nonce (12 random bytes), ciphertext, tag (16 bytes). The version and key ID are
 * authenticated together with the caller's associated data `ad`. A keyring holds several keys with
 * one primary: sealing uses the primary, opening finds the key by its ID, so keys rotate without
 * re-encrypting old data. Random 96-bit nonces: rotate a key before it seals 2^32 blobs.
 * A `sli_keyring` is immutable and thread-safe; sealing and opening with it may run concurrently. */
typedef struct sli_keyring sli_keyring;

/* SLI_SEAL_OVERHEAD is the number of bytes a sealed blob adds to its plaintext. Since: 1.0 */
#define SLI_SEAL_OVERHEAD 33

/* sli_seal_overhead returns SLI_SEAL_OVERHEAD. Since: 1.0 */
SLI_API size_t sli_seal_overhead(void);

/* sli_keyring_generate creates a keyring holding one fresh random key, the primary, in `*out`.
 * It returns 0 on success or a negative SLI_E_* code. Since: 1.0 */
SLI_API int sli_keyring_generate(sli_keyring **out);

/* sli_keyring_rotate creates in `*out` a copy of `kr` with a fresh key added as the new primary;
 * the older keys stay for opening. `kr` is unchanged. Since: 1.0 */
SLI_API int sli_keyring_rotate(sli_keyring **out, const sli_keyring *kr);

/* sli_keyring_load_file reads a keyring file (see the README for its format) into `*out`; on failure
 * `out_msg` (if not NULL) receives a description naming the file and line, cut to `msg_cap` bytes.
 * Since: 1.0 */
SLI_API int sli_keyring_load_file(sli_keyring **out, const char *path, char *out_msg,
                                  size_t msg_cap);

/* sli_keyring_save_file writes `kr` to `path` atomically (a temporary file renamed), mode 0600. It
 * returns 0 on success or a negative SLI_E_* code (SLI_E_FILE when the file cannot be written,
 * `sli_last_error` naming it and the system's reason). Since: 1.0 */
SLI_API int sli_keyring_save_file(const sli_keyring *kr, const char *path);

/* sli_keyring_free drops a reference to `kr` and wipes its keys when it is the last; NULL is a
 * no-op. Since: 1.0 */
SLI_API void sli_keyring_free(sli_keyring *kr);

/* sli_keyring_count returns the number of keys in `kr`. Since: 1.0 */
SLI_API size_t sli_keyring_count(const sli_keyring *kr);

/* sli_keyring_key_id returns the ID of key `i` (0 is the primary), or 0 if `i` is out of range. */
SLI_API uint32_t sli_keyring_key_id(const sli_keyring *kr, size_t i);

/* sli_keyring_key_created returns the creation time of key `i` in Unix seconds, or 0. Since: 1.0 */
SLI_API int64_t sli_keyring_key_created(const sli_keyring *kr, size_t i);

/* sli_seal seals `in` with the primary key of `kr`, binding `ad` (may be NULL with `ad_len` 0).
 * On entry `*out_len` is the capacity of `out`; on success it is set to `in_len` +
 * SLI_SEAL_OVERHEAD. If `out` is too small it returns SLI_E_BUFSIZE and sets `*out_len` to the size
 * needed (`out` NULL with `*out_len` 0 is a size query). `out` must not overlap `in`. It returns 0
 * on success or a negative SLI_E_* code.
 * Since: 1.0 */
SLI_API int sli_seal(const sli_keyring *kr, uint8_t *out, size_t *out_len, const uint8_t *in,
                     size_t in_len, const uint8_t *ad, size_t ad_len);

/* sli_open opens a sealed blob with the key its header names, checking `ad`. Errors:
 * SLI_E_HEADER (too short or unknown version), SLI_E_NO_MATCH (the key ID is not in `kr`),
 * SLI_E_PAYLOAD (any modified byte, truncation, extension or different `ad`), SLI_E_BUFSIZE (see
 * sli_seal; the size needed is `in_len` - SLI_SEAL_OVERHEAD). On any other failure `out` is zeroed
 * and `*out_len` set to 0: no partial plaintext. Since: 1.0 */
SLI_API SLI_WARN_UNUSED_RESULT int sli_open(const sli_keyring *kr, uint8_t *out, size_t *out_len,
                                            const uint8_t *in, size_t in_len, const uint8_t *ad,
                                            size_t ad_len);

/* sli_seal_alloc is sli_seal with a newly allocated output in `*out`, freed with
 * `sli_free(*out, *out_len)`. Since: 1.0 */
SLI_API int sli_seal_alloc(const sli_keyring *kr, uint8_t **out, size_t *out_len,
                           const uint8_t *in, size_t in_len, const uint8_t *ad, size_t ad_len);

/* sli_open_alloc is sli_open with a newly allocated output (`*out` is NULL on failure). */
SLI_API SLI_WARN_UNUSED_RESULT int sli_open_alloc(const sli_keyring *kr, uint8_t **out,
                                                  size_t *out_len, const uint8_t *in, size_t in_len,
                                                  const uint8_t *ad, size_t ad_len);

/* sli_sealed_key_id writes the key ID named by the header of sealed blob `in` into `*out_id`
 * without opening it (to say which key sealed a blob). It returns 0 or SLI_E_HEADER. Since: 1.0 */
SLI_API int sli_sealed_key_id(const uint8_t *in, size_t in_len, uint32_t *out_id);

/* ---- Key pairs and signatures -----------------------------------------------------------------
 * A `sli_key` is a private key (which can also act as its public key) or a public key alone. It is
 * immutable and thread-safe. Signatures: Ed25519 (pure), ECDSA with SHA-256 (DER), RSA-PSS with
 * SHA-256, MGF1-SHA-256 and a 32-byte salt — the forms `openssl dgst -sha256` (with
 * `-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest` for RSA) and `openssl pkeyutl
 * -rawin` (Ed25519) produce and check. (`sli_key` is declared at the top, with the other types.) */

/* Key types for `sli_key_generate` and `sli_key_type`. Since: 1.0 */
#define SLI_KEY_RSA 1
#define SLI_KEY_EC 2
#define SLI_KEY_ED25519 3
#define SLI_KEY_X25519 4

/* SLI_KEYGEN_INSECURE_WEAK lets `sli_key_generate` make RSA keys below 2048 bits. WARNING: such keys
 * can be broken; only for interoperating with legacy systems. Since: 1.0 */
#define SLI_KEYGEN_INSECURE_WEAK 0x1u

/* sli_key_generate makes a new key pair in `*out`: `type` SLI_KEY_RSA (`param` = bits: 0 for 2048,
 * or 3072, 4096; below 2048 is SLI_E_WEAK_KEY without SLI_KEYGEN_INSECURE_WEAK), SLI_KEY_EC (`param`
 * = 256, 384 or 521 for P-256 (0), P-384, P-521), SLI_KEY_ED25519 or SLI_KEY_X25519 (`param` 0). It
 * returns 0 on success or a negative SLI_E_* code. Since: 1.0 */
SLI_API int sli_key_generate(sli_key **out, int type, int param, uint32_t flags);

/* sli_key_load_file reads a PEM private key (PKCS#8, PKCS#1 or SEC1, encrypted with `password` if
 * it is not NULL), an unencrypted OpenSSH private key ("OPENSSH PRIVATE KEY", Ed25519 or RSA; a
 * passphrase-protected one is SLI_E_KEY_ENCRYPTED), a PEM public key (SubjectPublicKeyInfo) or an
 * OpenSSH public-key line into `*out`; bad input gets the named codes of
 * `sli_config_set_keypair_file` and a message in `out_msg`. Since: 1.0 */
SLI_API int sli_key_load_file(sli_key **out, const char *path, const char *password, char *out_msg,
                              size_t msg_cap);

/* sli_key_free drops a reference to `k`, wiping private material when it is the last; NULL is a
 * no-op. Since: 1.0 */
SLI_API void sli_key_free(sli_key *k);

/* sli_key_type returns the SLI_KEY_* type of `k`. Since: 1.0 */
SLI_API int sli_key_type(const sli_key *k);

/* sli_key_bits returns the size of `k` in bits (RSA modulus, curve size, 255 for the 25519 keys). */
SLI_API int sli_key_bits(const sli_key *k);

/* sli_key_has_private returns 1 if `k` holds a private key, else 0. Since: 1.0 */
SLI_API int sli_key_has_private(const sli_key *k);

/* sli_key_private_pem_alloc writes the private key as PEM PKCS#8 into a newly allocated NUL-terminated
 * string (free with `sli_free(*out, *out_len)`), encrypted (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC)
 * when `passphrase` is not NULL. Since: 1.0 */
SLI_API int sli_key_private_pem_alloc(const sli_key *k, const char *passphrase, char **out,
                                      size_t *out_len);

/* sli_key_public_pem_alloc writes the public key as PEM SubjectPublicKeyInfo. Since: 1.0 */
SLI_API int sli_key_public_pem_alloc(const sli_key *k, char **out, size_t *out_len);

/* sli_key_openssh_public_alloc writes an OpenSSH public-key line ("ssh-ed25519 AAAA… comment") for
 * RSA and Ed25519 keys; other types are SLI_E_UNSUPPORTED. `comment` may be NULL. Since: 1.0 */
SLI_API int sli_key_openssh_public_alloc(const sli_key *k, const char *comment, char **out,
                                         size_t *out_len);

/* sli_key_openssh_private_alloc writes private key `k` (RSA or Ed25519) as an unencrypted OpenSSH
 * private key ("-----BEGIN OPENSSH PRIVATE KEY-----", what ssh-keygen writes, read by ssh and age),
 * NUL-terminated, `*out_len` counting the NUL; free it with `sli_free(*out, *out_len)`, which wipes
 * it. It returns SLI_E_UNSUPPORTED for other types and SLI_E_INVAL for a public key. sli cannot
 * protect such a file with a passphrase (OpenSSH uses bcrypt_pbkdf); `ssh-keygen -p` can. Since: 1.0 */
SLI_API int sli_key_openssh_private_alloc(const sli_key *k, const char *comment, char **out,
                                          size_t *out_len);

/* sli_key_sig_max_size returns the largest signature `k` makes, or 0 if it cannot sign. */
SLI_API size_t sli_key_sig_max_size(const sli_key *k);

/* sli_key_sign signs `in` with private key `k` (see above for the algorithm per type). On entry
 * `*out_len` is the capacity of `out`; on success the signature length. SLI_E_BUFSIZE sets
 * `*out_len` to the size needed. X25519 keys cannot sign (SLI_E_UNSUPPORTED). Since: 1.0 */
SLI_API int sli_key_sign(const sli_key *k, uint8_t *out, size_t *out_len, const uint8_t *in,
                         size_t in_len);

/* sli_key_verify checks signature `sig` over `in` with `k` (public or private). It returns 0 if it
 * verifies, SLI_E_SIGNATURE if not, or another negative SLI_E_* code. Since: 1.0 */
SLI_API SLI_WARN_UNUSED_RESULT int sli_key_verify(const sli_key *k, const uint8_t *sig,
                                                  size_t sig_len, const uint8_t *in, size_t in_len);

/* sli_signer makes or checks the signature `sli_key_sign` makes, over a message given in pieces (a
 * file as it is read). ECDSA and RSA-PSS hash each piece as it comes: constant memory. Ed25519
 * (pure EdDSA, which reads the message twice) keeps the message until the end. Not thread-safe;
 * one signature per signer. Since: 1.1 */
typedef struct sli_signer sli_signer;

/* sli_signer_new makes a signer for `k` into `*out`: `verify` 0 to sign (a private key), 1 to
 * verify. It returns 0 or a negative SLI_E_* code (SLI_E_UNSUPPORTED for X25519). Since: 1.1 */
SLI_API int sli_signer_new(sli_signer **out, const sli_key *k, int verify);

/* sli_signer_update feeds the next `len` bytes of the message. Since: 1.1 */
SLI_API int sli_signer_update(sli_signer *s, const uint8_t *in, size_t len);

/* sli_signer_sign_final writes the signature, as `sli_key_sign` does (`*out_len` the capacity on
 * entry, SLI_E_BUFSIZE and the size needed if short). Since: 1.1 */
SLI_API int sli_signer_sign_final(sli_signer *s, uint8_t *out, size_t *out_len);

/* sli_signer_verify_final returns 0 if `sig` is the signature of the message fed, else
 * SLI_E_SIGNATURE. Since: 1.1 */
SLI_API SLI_WARN_UNUSED_RESULT int sli_signer_verify_final(sli_signer *s, const uint8_t *sig,
                                                           size_t sig_len);

/* sli_signer_free frees `s`; NULL is a no-op. Since: 1.1 */
SLI_API void sli_signer_free(sli_signer *s);

/* ---- Certificate requests and certificates --------------------------------------------------------
 * Subjects are written as OpenSSL does on its command line: "/CN=db.example.com/O=Acme/C=FR", with
 * the fields CN, C, ST, L, O, OU and emailAddress.
 * Subject alternative names are strings "DNS:name", "IP:address", "email:address" or "URI:uri" (a
 * SPIFFE ID such as "URI:spiffe://example.org/db", since 1.1). Output is PEM
 * in a newly allocated NUL-terminated string, freed with `sli_free(*out, *out_len)`. */

/* SLI_CERT_CA makes `sli_cert_selfsign_alloc` produce a CA certificate (CA:TRUE, keyCertSign) that
 * `sli_ca_issue_alloc` can issue from. Since: 1.0 */
#define SLI_CERT_CA 0x1u

/* sli_csr_create_alloc makes a PKCS#10 certificate request signed by `k` (RSA, ECDSA or Ed25519).
 * A malformed subject or SAN is SLI_E_INVAL. It returns 0 on success or a negative SLI_E_* code.
 * Since: 1.0 */
SLI_API int sli_csr_create_alloc(const sli_key *k, const char *subject, const char *const *sans,
                                 size_t n_sans, char **out, size_t *out_len);

/* sli_cert_selfsign_alloc makes a self-signed certificate for `k` valid for `days` days (0: 365):
 * for servers and clients (serverAuth, clientAuth; CA:TRUE with path length 0, as `openssl req
 * -x509` makes it, so that a client can trust exactly this certificate), or, with SLI_CERT_CA, a CA
 * certificate. Since: 1.0 */
SLI_API int sli_cert_selfsign_alloc(const sli_key *k, const char *subject, const char *const *sans,
                                    size_t n_sans, int days, uint32_t flags, char **out,
                                    size_t *out_len);

/* sli_ca_issue_alloc issues a leaf certificate (CA:FALSE, serverAuth and clientAuth) for the request
 * `csr_pem`, whose signature is checked first (SLI_E_SIGNATURE if it does not verify), signed by
 * `ca_key` under the CA certificate in `ca_cert_pem`, valid `days` days (0: 365), with the request's
 * subject and SANs. It refuses a CA certificate that does not match `ca_key` (SLI_E_KEY_MISMATCH) or
 * is not a CA (SLI_E_CONFIG). Since: 1.0 */
SLI_API int sli_ca_issue_alloc(const char *ca_cert_pem, size_t ca_cert_len, const sli_key *ca_key,
                               const char *csr_pem, size_t csr_len, int days, char **out,
                               size_t *out_len);

/* ---- age v1 file encryption ---------------------------------------------------------------------
 * The C2SP age v1 format, interoperable with the `age` tool: recipients are X25519 keys ("age1…")
 * or a passphrase (scrypt); the payload is streamed in 64 KiB ChaCha20-Poly1305 chunks with constant
 * memory. Recipients and identities are immutable and thread-safe; an encryptor or decryptor is used
 * by one thread at a time. Buffers in, buffers out: no I/O inside. */
typedef struct sli_age_recipient sli_age_recipient;
typedef struct sli_age_identity sli_age_identity;
typedef struct sli_age_enc sli_age_enc;
typedef struct sli_age_dec sli_age_dec;

/* SLI_AGE_ARMOR makes the encryptor write ASCII armor ("-----BEGIN AGE ENCRYPTED FILE-----").
 * Decryptors detect armor by themselves. Since: 1.0 */
#define SLI_AGE_ARMOR 0x1u

/* SLI_AGE_PARALLEL lets an encryptor or decryptor seal or open the whole chunks of one large
 * `_update` input (4 chunks or more: give it 1 MiB or more at a time) on two threads, the caller's
 * and a helper thread the object starts on first use (all signals blocked) and joins in its
 * `_free`. The file format is the same; without a thread to be had, the caller's does all. The
 * encryptor ignores it with SLI_AGE_ARMOR, the decryptor for armored input. Since: 1.0 */
#define SLI_AGE_PARALLEL 0x2u

/* SLI_AGE_CHUNK_BYTES is the plaintext size of a payload chunk; SLI_AGE_TAG_BYTES its tag. */
#define SLI_AGE_CHUNK_BYTES 65536
#define SLI_AGE_TAG_BYTES 16

/* sli_age_identity_generate makes a new X25519 identity. Since: 1.0 */
SLI_API int sli_age_identity_generate(sli_age_identity **out);

/* sli_age_identity_parse reads an "AGE-SECRET-KEY-1…" string; a malformed one is SLI_E_INVAL. */
SLI_API int sli_age_identity_parse(sli_age_identity **out, const char *s);

/* sli_age_identity_scrypt makes an identity that opens passphrase-encrypted files (work factors up
 * to 2^22 are accepted). Since: 1.0 */
SLI_API int sli_age_identity_scrypt(sli_age_identity **out, const char *passphrase);

/* sli_age_identity_encode writes the "AGE-SECRET-KEY-1…" string (NUL-terminated) into `out` of `cap`
 * bytes (75 are enough); SLI_E_BUFSIZE if smaller, SLI_E_INVAL for a passphrase identity. */
SLI_API int sli_age_identity_encode(const sli_age_identity *id, char *out, size_t cap);

/* sli_age_identity_from_key makes an identity from private key `k`: an X25519 key is a native age
 * identity; an Ed25519 or RSA key (for instance an OpenSSH key read with `sli_key_load_file`) opens
 * the files age encrypts to its "ssh-ed25519" / "ssh-rsa" recipient. It returns SLI_E_INVAL for a
 * public key, SLI_E_UNSUPPORTED for other types and SLI_E_WEAK_KEY for RSA below 2048 bits. The
 * identity keeps a reference to the key. Since: 1.0 */
SLI_API int sli_age_identity_from_key(sli_age_identity **out, const sli_key *k);

/* sli_age_identity_recipient makes the recipient of an identity: "age1…" for X25519, the SSH public
 * key for an SSH identity; SLI_E_INVAL for a passphrase. Since: 1.0 */
SLI_API int sli_age_identity_recipient(const sli_age_identity *id, sli_age_recipient **out);

/* sli_age_identity_free frees `id`, wiping its key; NULL is a no-op. Since: 1.0 */
SLI_API void sli_age_identity_free(sli_age_identity *id);

/* sli_age_recipient_parse reads an "age1…" string or an OpenSSH public-key line ("ssh-ed25519 AAAA…
 * [comment]" or "ssh-rsa AAAA… [comment]", as in ~/.ssh/id_*.pub or authorized_keys). A malformed one
 * is SLI_E_INVAL, another SSH key type SLI_E_UNSUPPORTED, RSA below 2048 bits SLI_E_WEAK_KEY. Since: 1.0 */
SLI_API int sli_age_recipient_parse(sli_age_recipient **out, const char *s);

/* sli_age_recipient_scrypt makes a passphrase recipient with work factor 2^`log2_n` (0: 18). A file
 * with a passphrase recipient can have no other recipient. Since: 1.0 */
SLI_API int sli_age_recipient_scrypt(sli_age_recipient **out, const char *passphrase, int log2_n);

/* sli_age_recipient_from_key makes a recipient from key `k` (public or private): X25519 as "age1…",
 * Ed25519 and RSA as age's SSH recipient types. Errors as for `sli_age_identity_from_key`. */
SLI_API int sli_age_recipient_from_key(sli_age_recipient **out, const sli_key *k);

/* sli_age_recipient_encode writes the recipient as text into `out` of `cap` bytes: "age1…" (63 bytes
 * are enough) or an OpenSSH line without comment (up to 2800 bytes for RSA); SLI_E_BUFSIZE if `cap`
 * is too small, SLI_E_INVAL for a passphrase. Since: 1.0 */
SLI_API int sli_age_recipient_encode(const sli_age_recipient *r, char *out, size_t cap);

/* sli_age_recipient_free frees `r`; NULL is a no-op. Since: 1.0 */
SLI_API void sli_age_recipient_free(sli_age_recipient *r);

/* sli_age_enc_new starts encrypting to `n` recipients (`flags`: SLI_AGE_ARMOR, SLI_AGE_PARALLEL). It copies what it
 * needs. It returns 0 on success or a negative SLI_E_* code. Since: 1.0 */
SLI_API int sli_age_enc_new(sli_age_enc **out, const sli_age_recipient *const *rcpts, size_t n,
                            uint32_t flags);

/* sli_age_enc_update_bound returns the most `sli_age_enc_update` can write for `in_len` bytes,
 * whatever the state: a buffer of that size serves every call with at most `in_len` bytes. */
SLI_API size_t sli_age_enc_update_bound(const sli_age_enc *e, size_t in_len);

/* sli_age_enc_update consumes `in` and writes what is ready (header, full chunks) into `out`; on
 * entry `*out_len` is its capacity (at least the bound), on return the bytes written. Since: 1.0 */
SLI_API int sli_age_enc_update(sli_age_enc *e, uint8_t *out, size_t *out_len, const uint8_t *in,
                               size_t in_len);

/* sli_age_enc_final_bound returns the most `sli_age_enc_final` can write. Since: 1.0 */
SLI_API size_t sli_age_enc_final_bound(const sli_age_enc *e);

/* sli_age_enc_final writes the last chunk (and the armor's end). Since: 1.0 */
SLI_API int sli_age_enc_final(sli_age_enc *e, uint8_t *out, size_t *out_len);

/* sli_age_enc_error returns a message about the last failure of a call on `e` (a misuse, such as
 * `sli_age_enc_update` after `sli_age_enc_final`, or a buffer that is too small), or NULL; a failed
 * `sli_age_enc_new` has no encryptor and says why in `sli_last_error`. Since: 1.1 */
SLI_API const char *sli_age_enc_error(const sli_age_enc *e);

/* sli_age_enc_free frees `e`, wiping keys; NULL is a no-op. Since: 1.0 */
SLI_API void sli_age_enc_free(sli_age_enc *e);

/* sli_age_dec_new starts decrypting with `n` identities (`flags`: 0 or SLI_AGE_PARALLEL). It copies
 * them. Since: 1.0 */
SLI_API int sli_age_dec_new(sli_age_dec **out, const sli_age_identity *const *ids, size_t n,
                            uint32_t flags);

/* sli_age_dec_update_bound returns the most `sli_age_dec_update` can write for `in_len` bytes,
 * whatever the state. Since: 1.0 */
SLI_API size_t sli_age_dec_update_bound(const sli_age_dec *d, size_t in_len);

/* sli_age_dec_update consumes `in` and writes authenticated plaintext of the chunks it completed.
 * The file is complete and authentic only when `sli_age_dec_final` returns 0; a caller that must not
 * expose partial plaintext keeps the output until then. Errors: SLI_E_HEADER, SLI_E_HEADER_MAC,
 * SLI_E_NO_MATCH, SLI_E_PAYLOAD, SLI_E_ARMOR; after one, every call fails. Since: 1.0 */
SLI_API SLI_WARN_UNUSED_RESULT int sli_age_dec_update(sli_age_dec *d, uint8_t *out, size_t *out_len,
                                                      const uint8_t *in, size_t in_len);

/* sli_age_dec_final checks the end of the file and writes the last chunk's plaintext (at most
 * SLI_AGE_CHUNK_BYTES). A missing, short or extended last chunk is SLI_E_PAYLOAD. Since: 1.0 */
SLI_API SLI_WARN_UNUSED_RESULT int sli_age_dec_final(sli_age_dec *d, uint8_t *out, size_t *out_len);

/* sli_age_dec_error returns a message about the last failure of `d`, or NULL. Since: 1.0 */
SLI_API const char *sli_age_dec_error(const sli_age_dec *d);

/* sli_age_dec_free frees `d`, wiping keys and buffered plaintext; NULL is a no-op. Since: 1.0 */
SLI_API void sli_age_dec_free(sli_age_dec *d);

#ifdef __cplusplus
}
#endif
#endif /* SLI_H */
