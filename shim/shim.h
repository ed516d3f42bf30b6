/* shim.h — internals of libsli-preload.so, the LD_PRELOAD interposer. The shim is a client of the
 * public API (api/sli.h): it keeps a table fd -> TLS connection whose transport callbacks call the
 * *real* libc functions, and it never reaches into engine internals.
 *
 * The rule every file keeps: what the host sees must be what a kernel TCP socket would give it, and
 * nothing but TLS records may cross the wire on a TLS connection. Where the two cannot both hold
 * (a session cannot be in two processes at once), the shim fails closed and says why. */
#ifndef SLI_SHIM_H
#define SLI_SHIM_H

#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <netinet/in.h>

#include "sli.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* ---- real.c: the libc functions we wrap, resolved once with dlsym(RTLD_NEXT). ---- */
typedef struct addrinfo addrinfo_t;
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
  int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
  int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
  ssize_t (*preadv2)(int, const struct iovec *, int, off_t, int);
  ssize_t (*pwritev2)(int, const struct iovec *, int, off_t, int);
  ssize_t (*sendfile)(int, int, off_t *, size_t);
  ssize_t (*sendfile64)(int, int, off_t *, size_t);
  ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned int);
  int (*socket)(int, int, int);
  int (*socketpair)(int, int, int, int *);
  int (*accept)(int, struct sockaddr *, socklen_t *);
  int (*accept4)(int, struct sockaddr *, socklen_t *, int);
  int (*connect)(int, const struct sockaddr *, socklen_t);
  int (*bind)(int, const struct sockaddr *, socklen_t);
  int (*listen)(int, int);
  int (*close)(int);
  int (*close_range)(unsigned int, unsigned int, int);
  void (*closefrom)(int);
  int (*shutdown)(int, int);
  int (*setsockopt)(int, int, int, const void *, socklen_t);
  int (*getsockopt)(int, int, int, void *, socklen_t *);
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
  int (*epoll_create)(int);
  int (*epoll_create1)(int);
  int (*epoll_ctl)(int, int, int, struct epoll_event *);
  int (*epoll_wait)(int, struct epoll_event *, int, int);
  int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
  int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
  /* calls that create fds (a stale table entry for the number they return is dropped) */
  int (*open)(const char *, int, ...);
  int (*open64)(const char *, int, ...);
  int (*openat)(int, const char *, int, ...);
  int (*openat64)(int, const char *, int, ...);
  int (*__open_2)(const char *, int);
  int (*__open64_2)(const char *, int);
  int (*__openat_2)(int, const char *, int);
  int (*__openat64_2)(int, const char *, int);
  int (*creat)(const char *, mode_t);
  int (*creat64)(const char *, mode_t);
  int (*pipe)(int *);
  int (*pipe2)(int *, int);
  int (*eventfd)(unsigned int, int);
  int (*timerfd_create)(int, int);
  int (*signalfd)(int, const sigset_t *, int);
  int (*memfd_create)(const char *, unsigned int);
  int (*inotify_init)(void);
  int (*inotify_init1)(int);
  long (*syscall)(long, ...);
  /* processes */
  pid_t (*fork)(void);
  pid_t (*vfork)(void);
  void (*_exit)(int);
  int (*execve)(const char *, char *const[], char *const[]);
  int (*execv)(const char *, char *const[]);
  int (*execvp)(const char *, char *const[]);
  int (*execvpe)(const char *, char *const[], char *const[]);
  int (*fexecve)(int, char *const[], char *const[]);
  int (*execveat)(int, const char *, char *const[], char *const[], int);
  int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                     const posix_spawnattr_t *, char *const[], char *const[]);
  int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                      const posix_spawnattr_t *, char *const[], char *const[]);
  int (*posix_spawn_file_actions_adddup2)(posix_spawn_file_actions_t *, int, int);
  /* stdio and names */
  FILE *(*fdopen)(int, const char *);
  int (*getaddrinfo)(const char *, const char *, const addrinfo_t *, addrinfo_t **);
} real_fns;

HIDDEN extern real_fns real;
HIDDEN void shim_resolve(void);
#define ENSURE(fn) \
  if (__builtin_expect(!real.fn, 0)) shim_resolve()

/* ---- config.c: settings, contexts, logging. ---- */
enum { LOG_ERR_ = 0, LOG_WARN_ = 1, LOG_INFO_ = 2, LOG_DEBUG_ = 3 };

typedef struct shim_config {
  int active;      /* ports or targets configured and valid */
  int fail_closed; /* the configuration is invalid: refuse the configured ports and targets */
  int all_ports;   /* with fail_closed: the port list itself could not be parsed */
  uint16_t ports[64];
  int n_ports;
  int optional;          /* SLI_MODE=optional: TLS and plaintext on one port */
  int sniff_timeout_ms;  /* SLI_SNIFF_TIMEOUT_MS */
  int handshake_timeout_ms;
  int log_level;
  sli_ctx *server_ctx, *client_ctx;
} shim_config;

HIDDEN extern shim_config cfg;
HIDDEN void shim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* bufpool.c: the 16 KiB-class buffers of a connection (read-ahead, plaintext, cork) */
#define SHIM_BUF_SIZE (16384 + 512)
HIDDEN void *shim_buf_get(void); /* NULL: out of memory */
HIDDEN void shim_buf_put(void *p); /* NULL: nothing */
HIDDEN void shim_buf_atfork_child(void);
HIDDEN int shim_port_is_tls(uint16_t port);
HIDDEN int shim_failure_logged(void); /* 1: log this failed connection (at most 20 a second) */
HIDDEN sli_ctx *shim_ctx(int server); /* made on first need; NULL: failed (fail closed) */
HIDDEN const char *shim_setting(const char *name); /* the environment, else SLI_CONFIG, else NULL */
HIDDEN sli_config *shim_engine_config(void); /* the engine's settings; NULL: refused (logged) */

/* ---- metrics.c: SLI_METRICS, counters shared across fork and served by one thread ---- */
HIDDEN int shim_metrics_setting(const char *value); /* 0, or -1 (logged) */
HIDDEN void shim_metrics_init(void);      /* the shared counters, at start-up */
HIDDEN void shim_metrics_maybe(void);     /* serve here if no living process does */
HIDDEN void shim_metrics_atfork_child(void);
HIDDEN void shim_count_handshake(int resumed);
HIDDEN void shim_count_failure(int code); /* a handshake that failed with `code` */
HIDDEN void shim_count_ended(void);       /* an established session ended */
HIDDEN void shim_count_bytes(size_t in, size_t out);

/* ---- reload.c: certificates that rotate under the host ---- */
HIDDEN void shim_reload_note_built(void); /* a context was made from the files as they are now */
HIDDEN void shim_reload_maybe(void);      /* at a new connection: reload if the files changed */
HIDDEN int shim_reload_signal(const char *value); /* SLI_RELOAD_SIGNAL: 0, or -1 (logged) */
HIDDEN void shim_reload_atfork_child(void); /* the lock, free in the child whoever held it */
HIDDEN int64_t shim_cert_not_after(void); /* the served certificate's end (Unix seconds), or 0 */

/* ---- targets.c: SLI_CLIENT_TARGETS, matched on every address a target name resolves to. ---- */
#define TARGET_ADDRS 32
typedef struct shim_target {
  char host[256];
  uint16_t port;
  char servername[256];
  atomic_int n_addrs;
  struct sockaddr_in6 addrs[TARGET_ADDRS]; /* normalised: IPv4 as IPv4-mapped IPv6 */
} shim_target;
HIDDEN extern int shim_n_targets;
HIDDEN int targets_parse(const char *value); /* 0, or -1 after logging */
HIDDEN const shim_target *shim_target_match(const struct sockaddr *sa, socklen_t len);

/* ---- fdtable.c: fd -> connection, and the connections' memory. ---- */
enum { ST_SNIFF, ST_TLS, ST_PLAIN, ST_FAILED };
enum { CLAIM_OPEN = 0, CLAIM_ENDED = -1, CLAIM_RELAY = -2 /* being handed to an exec relay */ };

typedef struct ep_reg ep_reg;

typedef struct tconn {
  pthread_mutex_t lock;   /* held around engine calls and buffer changes, never while waiting */
  atomic_int refs;        /* fd slots + pins (a call in progress) + the service thread */
  atomic_int fdrefs;      /* fd numbers in this process that name this connection */
  int io_fd;              /* an fd of the socket, for real I/O (a private dup once the host closed) */
  int private_fd;         /* io_fd is our own dup (the host's fds are all closed) */
  int host_closed;        /* the host closed its last fd: finish the session, then free it */
  int is_server;
  int state;
  int connecting;         /* client: the TCP connect may not have completed */
  _Atomic int32_t *claim; /* shared across fork: the owning pid, CLAIM_OPEN or CLAIM_ENDED */
  _Atomic int32_t *holders; /* shared (the word after claim): processes holding an fd of it */
  void *claim_slab;
  int nonowner_logged;
  int hs_counted;   /* the handshake is in the metrics' counts (SLI_METRICS) */
  int counted_live; /* in the metrics' live count (SLI_METRICS): the owner's end takes it out */
  sli_conn *conn;
  int64_t sniff_deadline_ms;
  int64_t hs_deadline_ms; /* the handshake must finish by then (SLI_HANDSHAKE_TIMEOUT) */
  int started;            /* the handshake was started */
  /* plaintext decrypted by a readiness check and not yet read by the host */
  unsigned char *rbuf; /* from bufpool.c while rcap is SHIM_BUF_SIZE, malloc'd when grown */
  size_t rcap;
  size_t rlen, roff;
  int reof;          /* a read result (EOF or error) is waiting for the host */
  int rerr_pending;  /* its errno (0: EOF) */
  int peer_closed;   /* the peer's close_notify or FIN was seen */
  int rerr;          /* errno of the last failed transport read */
  int ferr;          /* errno reported once the connection failed */
  /* plaintext the host wrote before the handshake (or the optional-mode decision) finished:
   * accepted as a kernel would, sent once the session is up */
  unsigned char *pbuf;
  size_t plen;
  /* ciphertext produced and not yet accepted by the kernel */
  unsigned char *obuf;
  size_t olen, ocap;
  int sending;       /* a thread sends the detached head of the output without the lock */
  int werr;          /* sticky write errno */
  int shut_wr;       /* the host shut down writing: close_notify queued (or due once up) */
  int notify_sent;   /* our close_notify is queued */
  int fin_pending;   /* the host's FIN (shutdown SHUT_WR) goes to the kernel once all is sent */
  int reset;         /* the kernel reported the connection reset (or timed out) to our call */
  int soerr;         /* that error, owed to the host's next call or getsockopt(SO_ERROR) */
  int lowat;          /* the host's SO_RCVLOWAT (0: 1), counted in plaintext */
  uint8_t svc_driving; /* the service thread runs the handshake: no read-ahead */
  int waiting;         /* host threads waiting for input on it (wait_in) */
  uint8_t nb_known;   /* 2: the file is known non-blocking (our F_SETFL/FIONBIO/accept4 say so) */
  /* TCP_CORK / MSG_MORE, emulated: plaintext held to go out in one record at the uncork */
  uint8_t corked;     /* the host's TCP_CORK */
  uint8_t kcorked;    /* the kernel's socket corked by us: a corked transfer longer than a record
                         then goes out in full segments, as the host's cork would make it */
  unsigned char *cbuf;
  size_t clen;
  int64_t cork_deadline_ms; /* the kernel sends corked data after 200 ms: so do we */
  uint8_t cork_armed;        /* cork_deadline_ms is set for the bytes held now */
  /* service.c's timer list (under its own lock): corked bytes due, a driven session's deadline */
  struct tconn *timer_next;
  int timer_listed;
  int64_t timer_ms;
  /* bytes read from the socket ahead of the engine's need (one recv per record, not two) */
  unsigned char *ra;
  size_t ralen, raoff;
  /* what the kernel last said about the socket (epoll: edges; cleared when a call gets EAGAIN) */
  uint8_t k_in, k_out, k_rdhup, k_hup, k_err;
  ep_reg *regs;      /* epoll registrations of this connection */
  /* the service thread (residue flushing, lingering closes) */
  int svc_reg;       /* registered with the service thread's epoll (holds a reference) */
  int svc_armed;
  int lingering;
  int64_t linger_deadline_ms;
  struct tconn *linger_next;
  char peer[64];
  struct tconn *live_prev, *live_next, *free_next;
} tconn;

typedef struct fdent {
  _Atomic(tconn *) tc; /* a TLS (or sniffing) connection, or NULL */
  uint8_t listener;    /* 0 unknown, 1 TLS listener, 2 plain */
  uint8_t epolled;     /* registered in an epoll set through our epoll_ctl */
  uint8_t cloexec;     /* the host's view of FD_CLOEXEC (the kernel always has it on TLS fds) */
  uint8_t epset;       /* an epoll fd we track */
  uint8_t priv;        /* the shim's own descriptor (shim_private_set): never the host's to close */
  uint32_t placed_gen; /* the fork generation in which this process placed the fd here (dup2, or
                          FD_CLOEXEC cleared): its meaning to hand it to an exec'd program */
} fdent;

HIDDEN extern fdent *fdtab;
/* Private descriptors — a lingering connection's dup, the service thread's epoll and eventfd, the
 * metrics sockets: the host never opened them, so its close() gets EBADF and its closefrom and
 * close_range skip them, as if the numbers were not open (fdtable.c). */
HIDDEN void shim_private_set(int fd, int on);
HIDDEN int shim_private(int fd);
HIDDEN int shim_close_range_skipping(unsigned first, unsigned last, int flags);
HIDDEN int shim_private_move(int fd); /* to another number: the new one, or -1 */
HIDDEN void shim_private_vacate_conn(int fd); /* dup2 onto a connection's private dup: it moves */
HIDDEN void svc_vacate(int fd);
/* shim_thread_start starts a detached thread running fn, every signal blocked on it, and returns
 * once it runs (service.c): 0, or an errno. */
HIDDEN int shim_thread_start(void *(*fn)(void *), size_t stack); /* dup2 onto the service thread's epoll or eventfd: it moves */
HIDDEN extern size_t fdtab_cap;
HIDDEN extern pid_t shim_pid;    /* this process (updated after fork) */
HIDDEN extern atomic_int shim_live; /* live connections in this process */
HIDDEN extern uint32_t shim_fork_gen;
HIDDEN extern int shim_helper_fork; /* the next fork makes a finisher or relay */
HIDDEN extern int shim_exiting; /* the exit finisher owns this process's unfinished sessions */

/* shim_is_tls says whether `fd` names a connection: the fast path of every wrapper (no pin). */
static inline int shim_is_tls(int fd) {
  return fd >= 0 && (size_t)fd < fdtab_cap && atomic_load_explicit(&fdtab[fd].tc, memory_order_acquire);
}

HIDDEN void fdtab_init(void);
/* tc_get pins the connection of `fd` (a reference that keeps its memory and socket alive) or
 * returns NULL; tc_put drops a pin. */
HIDDEN tconn *tc_get_slow(int fd);
static inline tconn *tc_get(int fd) { return shim_is_tls(fd) ? tc_get_slow(fd) : NULL; }
HIDDEN void tc_put(tconn *tc);
HIDDEN tconn *tconn_new(int fd, int is_server, const char *servername, int sniff);
HIDDEN void fdtab_install(int fd, tconn *tc, int cloexec); /* takes the caller's reference */
HIDDEN void fdtab_close(int fd);       /* the host closes fd: drop it, end the session if last */
HIDDEN void fdtab_drop_stale(int fd);  /* fd was closed behind our back: forget it quietly */
HIDDEN void fdtab_alias(int oldfd, int newfd, int cloexec);
HIDDEN int shim_foreign(void);         /* a vfork child or raw clone: touch no shared state */
HIDDEN void live_lock_all(void);
HIDDEN void live_unlock_all(int child);
HIDDEN tconn *live_first(void);        /* iteration with the live lock held */
HIDDEN void live_lock(void);
HIDDEN void live_unlock(void);

/* ---- claim.c: which process owns a session after fork (words in shared memory). ---- */
HIDDEN _Atomic int32_t *claim_alloc(void **slab);
HIDDEN void claim_free(void *slab);
HIDDEN void claim_after_fork(void); /* claim lock held */
HIDDEN void claim_lock(void);
HIDDEN void claim_unlock(void);
/* tc_owned says whether this process may do I/O on `tc`, claiming it if nobody has since a fork. */
static inline int tc_owned(tconn *tc) {
  if (__builtin_expect(shim_exiting, 0)) return 0;
  int32_t v = atomic_load_explicit(tc->claim, memory_order_acquire);
  if (v == shim_pid) return 1;
  if (v != CLAIM_OPEN) return 0;
  return atomic_compare_exchange_strong(tc->claim, &v, shim_pid) || v == shim_pid;
}

/* tc_end_claim marks the session ended — only if this process owns it (a process that lost it,
 * e.g. to the exit finisher, must not end it for the owner). */
static inline void tc_end_claim(tconn *tc) {
  int32_t me = shim_pid;
  if (atomic_compare_exchange_strong(tc->claim, &me, CLAIM_ENDED) && tc->counted_live) {
    tc->counted_live = 0;
    shim_count_ended();
  }
}

/* ---- tls_io.c: one connection's reads, writes, waits and readiness (tc->lock taken inside). ---- */
#define SHIM_MSG_ALL 0x40000000 /* internal tc_write flag: accept every byte (splice from a pipe) */
HIDDEN ssize_t tc_read(tconn *tc, void *buf, size_t len, int flags);
HIDDEN ssize_t tc_write(tconn *tc, const void *buf, size_t len, int flags);
HIDDEN ssize_t tc_readv(tconn *tc, const struct iovec *iov, int n, int flags);
HIDDEN ssize_t tc_writev(tconn *tc, const struct iovec *iov, int n, int flags);
HIDDEN size_t tc_readable_bytes(tconn *tc);
HIDDEN void tc_shutdown(tconn *tc, int how);
/* tc_ready says which of `want` (POLL* bits) the host would see now; tc->lock held. With `probe`,
 * a socket state the kernel may know better is asked with a zero-timeout poll. */
HIDDEN short tc_ready_locked(tconn *tc, short want);
/* poll/select: the events to wait for on the socket, and what is ready without waiting. */
HIDDEN short tc_poll_prepare(tconn *tc, short want, short *ready_now, int64_t *deadline,
                             uint8_t *waits); /* tc_poll_check(..., waits) must follow */
HIDDEN short tc_poll_check(tconn *tc, short want, short got, uint8_t waits);
HIDDEN int64_t tc_deadline_locked(tconn *tc);
HIDDEN void tc_end_locked(tconn *tc); /* the host closed its last fd (lock held, fd still open) */
HIDDEN int tc_finish_step_locked(tconn *tc); /* lingering: 1 when nothing is left to do */
HIDDEN void flush_locked(tconn *tc);
HIDDEN void tc_flush_blocking(tconn *tc, int64_t deadline_ms);
HIDDEN int tc_finish_blocking(tconn *tc, int64_t deadline_ms);
HIDDEN int tc_take_soerr(tconn *tc);
HIDDEN void tc_set_cork(tconn *tc, int on);
HIDDEN void tc_uncork_locked(tconn *tc);
HIDDEN void tc_mark_failed(tconn *tc);
HIDDEN const char *tc_peer(tconn *tc);
HIDDEN void tconn_free_engine(tconn *tc);
HIDDEN extern sli_read_fn tc_transport_read;
HIDDEN extern sli_write_fn tc_transport_write;
HIDDEN int64_t shim_now_ms(void);
HIDDEN int shim_fd_nonblocking(int fd);

/* ---- readiness.c (poll, select) and epoll.c. ---- */
HIDDEN int shim_poll(struct pollfd *fds, nfds_t n, int timeout_ms, const sigset_t *mask);
HIDDEN void epoll_fd_closed(int fd);          /* fd (a member, or an epoll fd) is being closed */
HIDDEN void epoll_tc_changed(tconn *tc);      /* tc->lock held: readiness may have changed */
HIDDEN void epoll_fd_became_tls(int fd);
HIDDEN void epoll_fd_left_tls(int fd, tconn *tc);
HIDDEN void epoll_tc_level(tconn *tc);        /* tc->lock held: plaintext still buffered */
HIDDEN void epoll_tc_unregister_all(tconn *tc, int fd); /* before a private dup outlives fd */
HIDDEN void epoll_after_fork_child(void);

/* ---- service.c: one background thread, started on first need. ---- */
HIDDEN void svc_arm_locked(tconn *tc);    /* residue to push without the host's help */
HIDDEN void svc_linger_locked(tconn *tc); /* a closed connection still has work: finish it */
HIDDEN void svc_forget_locked(tconn *tc); /* before tc's io_fd changes or closes */
HIDDEN void svc_after_fork_child(void);
HIDDEN void svc_timer_locked(tconn *tc, int64_t when_ms); /* look at tc again then */
HIDDEN void svc_untimer_locked(tconn *tc);                /* off the timer list (closed) */
/* tls_io.c, for the service thread (lock held) */
HIDDEN int tc_needs_drive_locked(tconn *tc);
HIDDEN void tc_drive_locked(tconn *tc);
HIDDEN int64_t tc_drive_deadline_locked(tconn *tc);
HIDDEN void tc_timer_due_locked(tconn *tc);

/* ---- lifecycle.c: accept, connect, close, shutdown, dup, fcntl. ---- */
HIDDEN void shim_closing(int fd); /* the host is closing fd (still open): end what it names */
/* shim_fastopen: sendto/sendmsg with MSG_FASTOPEN to `addr` (a connect without connect()). */
HIDDEN ssize_t shim_fastopen(int fd, const void *buf, size_t len, int flags,
                             const struct sockaddr *addr, socklen_t alen);

/* ---- process.c: fork, exit; exec.c: exec and spawn; stdio.c. ---- */
HIDDEN void process_drain_at_exit(int flush_stdio);
HIDDEN void close_all_except(const int *keep, int n);
HIDDEN int exec_prepare(void);
HIDDEN void exec_failed(void); /* the exec returned: the fds it was to close are held again */
HIDDEN void stdio_fd_became_tls(int fd);
HIDDEN void stdio_fd_left_tls(int fd);
HIDDEN void stdio_flush_ours(void);

#endif
