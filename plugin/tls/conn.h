/* conn.h — the connection object, shared by conn.c (I/O) and info.c (what was negotiated). */
#ifndef SLI_CONN_H
#define SLI_CONN_H

#include "tls/tls.h"

/* States of a host callback that may finish later (client hello, private key). */
enum { SLI__HOOK_IDLE, SLI__HOOK_CALLING, SLI__HOOK_WAITING, SLI__HOOK_DONE };

/* sli__is_refusal: is `r` a code a host callback may refuse with — a negative SLI_E_* code that is
 * not a WANT? Anything else it returns (a WANT of another hook, -1, -errno, a positive number)
 * breaks the contract: the connection fails with SLI_E_INVAL. */
static inline int sli__is_refusal(int r) {
  return r <= -1000 && r > -2000 && sli_error_category(r) != SLI_ECAT_BLOCKED;
}

struct sli_conn {
  SSL *ssl;
  sli_ctx *ctx; /* reference */
  int fd;       /* -1 with callback transport */
  int is_socket;
  sli_read_fn rfn;
  sli_write_fn wfn;
  void *arg;
  void *user_data; /* the host's, for its own use (sli_conn_set_user_data) */

  uint32_t timeout_ms;
  int64_t deadline_ms; /* the handshake's deadline, counted from the connection's creation */
  int handshake_done;
  int failure_counted; /* its failed handshake is in the context's stats */
  int session_offered; /* a client: the kept session (if any) was offered */
  SSL_SESSION *fresh_session; /* a client: the newest session its server gave (sessions.c) */
  int peer_closed;   /* the peer's close_notify arrived: reads return 0, writes still work */
  int shutdown_sent; /* our close_notify went out: writes fail, reads go on until the peer's */
  int transport_err, transport_eof;
  char contract[96]; /* how a callback broke its contract (returned more than asked), or "" */
  int write_failed; /* the transport refused a write: writes fail, reads go on */
  int read_truncated; /* the peer's direction ended without close_notify: reads fail, writes go on */
  int first_byte; /* the peer's first byte, or -1: tells plaintext from TLS */
  int want;  /* SLI_WANT_* of the last call, or 0 */
  int fatal; /* sticky failure code */
  int sys_err;
  int alert;
  int verify_result;

  /* The host's answers that may come later, from another thread (hello.c, keyops.c), under
   * hook_lock; hook_cond wakes a blocking call waiting for them. */
  pthread_mutex_t hook_lock;
  pthread_cond_t hook_cond;
  int hello_state, hello_status; /* SLI__HOOK_* */
  sli__identity hello_id;        /* chosen by the host (chain NULL: none) */
  int key_state, key_status;
  uint8_t *key_sig;
  size_t key_sig_len;
  int hook_code;      /* a host callback failed the handshake with this code, or 0 */
  int orphaned;       /* freed by the host while an answer was pending: the answer frees it */
  char hook_msg[160]; /* and why */

  char servername[256];
  char peer[64];
  char alpn[256];
  sli_cert *peer_cert;
  sli__error err; /* the last failure of a call on it (sli_conn_error) */
};

/* sli__hook_fail records that a host callback ended the handshake with `code`, and why; map_error
 * reports it when the engine's call returns (conn.c). Returns 0, the BoringSSL callbacks' failure. */
int sli__hook_fail(sli_conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* sli__hook_lock_answer: how a *_done function starts. It takes hook_lock and returns 0, the lock
 * held; or, if the host freed `c` while the answer was pending, frees it now (this answer was its
 * last use) and returns 1, no lock held (conn.c). */
int sli__hook_lock_answer(sli_conn *c);

/* sli__conn_release frees what a connection holds besides its SSL and its context, and itself
 * (conn.c); the last step of sli_conn_free, or of the answer to a connection freed while it waited. */
void sli__conn_release(sli_conn *c);

#endif
