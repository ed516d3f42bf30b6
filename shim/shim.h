/* shim.h — internals of libsli-preload.so, the LD_PRELOAD interposer. The shim is a client of the
 * public API (api/sli.h): it keeps a table fd -> TLS connection whose transport callbacks call the
 * *real* libc functions, and it never reaches into engine internals. */
#ifndef SLI_SHIM_H
#define SLI_SHIM_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sli.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* ---- real.c: the libc functions we wrap, resolved once with dlsym(RTLD_NEXT). ---- */
typedef struct real_fns {
  ssize_t (*read)(int, void *, size_t);
  ssize_t (*write)(int, const void *, size_t);
  ssize_t (*readv)(int, const struct iovec *, int);
  ssize_t (*writev)(int, const struct iovec *, int);
  ssize_t (*recv)(int, void *, size_t, int);
  ssize_t (*send)(int, const void *, size_t, int);
  ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
  ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
  ssize_t (*recvmsg)(int, struct msghdr *, int);
  ssize_t (*sendmsg)(int, const struct msghdr *, int);
  ssize_t (*sendfile)(int, int, off_t *, size_t);
  ssize_t (*sendfile64)(int, int, off_t *, size_t);
  ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned int);
  int (*socket)(int, int, int);
  int (*accept)(int, struct sockaddr *, socklen_t *);
  int (*accept4)(int, struct sockaddr *, socklen_t *, int);
  int (*connect)(int, const struct sockaddr *, socklen_t);
  int (*bind)(int, const struct sockaddr *, socklen_t);
  int (*listen)(int, int);
  int (*close)(int);
  int (*close_range)(unsigned int, unsigned int, int);
  int (*shutdown)(int, int);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*fcntl)(int, int, ...);
  int (*fcntl64)(int, int, ...);
  int (*ioctl)(int, unsigned long, ...);
  int (*poll)(struct pollfd *, nfds_t, int);
  int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
  int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
  int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
  int (*epoll_ctl)(int, int, int, struct epoll_event *);
  int (*epoll_wait)(int, struct epoll_event *, int, int);
  int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
} real_fns;

HIDDEN extern real_fns real;
HIDDEN void shim_resolve(void);

/* ---- config.c: settings, contexts, logging. ---- */
enum { LOG_ERR_ = 0, LOG_WARN_ = 1, LOG_INFO_ = 2, LOG_DEBUG_ = 3 };
typedef struct shim_target {
  struct sockaddr_storage addr; /* resolved address of HOST:PORT */
  socklen_t addr_len;
  char host[256];
  char servername[256];
} shim_target;

typedef struct shim_config {
  int active;      /* ports or targets configured and valid */
  int fail_closed; /* the configuration is invalid: refuse the configured ports and targets */
  int all_ports;   /* with fail_closed: the port list itself could not be parsed */
  uint16_t ports[64];
  int n_ports;
  shim_target targets[32];
  int n_targets;
  int optional;          /* SLI_MODE=optional: TLS and plaintext on one port */
  int sniff_timeout_ms;  /* SLI_SNIFF_TIMEOUT_MS */
  int handshake_timeout_ms;
  int log_level;
  sli_ctx *server_ctx, *client_ctx;
} shim_config;

HIDDEN extern shim_config cfg;
HIDDEN void shim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
HIDDEN int shim_port_is_tls(uint16_t port);
HIDDEN const shim_target *shim_target_match(const struct sockaddr *sa, socklen_t len);

/* ---- fdtable.c: fd -> connection. ---- */
enum { ST_SNIFF, ST_TLS, ST_PLAIN, ST_FAILED };

typedef struct tconn {
  pthread_mutex_t lock;   /* held around engine calls and buffer changes, never while waiting */
  atomic_int refs;        /* memory: fds plus short-lived pins (the epoll hot-list snapshot) */
  atomic_int fdrefs;      /* fds (dup) sharing this connection; the session ends at zero */
  int io_fd;              /* an fd of the socket, for real I/O */
  int is_server;
  int state;
  pid_t owner;            /* the process that may send close_notify */
  sli_conn *conn;
  int64_t sniff_deadline_ms;
  int64_t hs_deadline_ms; /* the handshake must finish by then (SLI_HANDSHAKE_TIMEOUT) */
  /* plaintext decrypted by a readiness check and not yet read by the host */
  unsigned char *rbuf;
  size_t rlen, roff;
  int reof;          /* a read result (EOF or error) is waiting for the host */
  int rerr_pending;  /* its errno (0: EOF) */
  int rerr;          /* errno of the last failed transport read */
  int ferr;          /* errno reported once the connection failed */
  int started, hot;
  int write_blocked; /* the host got EAGAIN from a write: owe it a POLLOUT once output drains */
  /* ciphertext produced and not yet accepted by the kernel */
  unsigned char *obuf;
  size_t olen, ocap;
  int werr;  /* sticky write errno */
  int shut_wr;
  char peer[64];
} tconn;

typedef struct fdent {
  tconn *tc;         /* a TLS (or sniffing) connection, or NULL */
  uint8_t listener;  /* 0 unknown, 1 TLS listener, 2 plain */
  uint8_t epolled;   /* registered in an epoll set through our epoll_ctl */
} fdent;

HIDDEN extern fdent *fdtab;
HIDDEN extern size_t fdtab_cap;

/* shim_tc returns the connection of `fd`, or NULL: the fast path of every wrapper. */
static inline tconn *shim_tc(int fd) {
  if (fd < 0 || (size_t)fd >= fdtab_cap) return NULL;
  return __atomic_load_n(&fdtab[fd].tc, __ATOMIC_ACQUIRE);
}

HIDDEN void fdtab_init(void);
HIDDEN tconn *tconn_new(int fd, int is_server, const char *servername, int sniff);
HIDDEN void fdtab_set(int fd, tconn *tc);
HIDDEN void fdtab_forget(int fd); /* drops fd's reference (closing the TLS session if last) */
HIDDEN void fdtab_alias(int oldfd, int newfd);

/* ---- tls_io.c: reading, writing, readiness checks on one connection. ---- */
HIDDEN ssize_t tc_read(tconn *tc, void *buf, size_t len, int flags);
HIDDEN ssize_t tc_write(tconn *tc, const void *buf, size_t len, int flags);
HIDDEN ssize_t tc_readv(tconn *tc, const struct iovec *iov, int n, int flags);
HIDDEN ssize_t tc_writev(tconn *tc, const struct iovec *iov, int n, int flags);
/* tc_poll_prepare maps the host's interest to the events to wait for on the socket and says whether
 * the connection is ready now (buffered plaintext, a pending result, a finished flush). */
HIDDEN short tc_poll_prepare(tconn *tc, short want, short *ready_now, int64_t *deadline);
/* tc_poll_check turns the socket's events into the host's, decrypting to confirm POLLIN. */
HIDDEN short tc_poll_check(tconn *tc, short want, short got);
HIDDEN int tc_has_output(tconn *tc);
HIDDEN void tc_flush(tconn *tc);
HIDDEN size_t tc_readable_bytes(tconn *tc);
HIDDEN void tc_close(tconn *tc);
HIDDEN void tc_shutdown_write(tconn *tc);
HIDDEN void tc_track(tconn *tc);
HIDDEN const char *tc_peer(tconn *tc);
HIDDEN int shim_hot_snapshot(tconn **out, int max);
HIDDEN void shim_hot_remove(tconn *tc);
HIDDEN void shim_hot_reset_after_fork(void);
HIDDEN void fdtab_drop_stale(int fd);
HIDDEN void fdtab_after_fork(void);
HIDDEN void tconn_release(tconn *tc);
HIDDEN int shim_fd_blocking(int fd);
HIDDEN int64_t shim_now_ms(void);

#endif
