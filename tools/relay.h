/* relay.h — one connection accepted by `sli serve` / `sli proxy`, on a libuv loop (relay.c): TLS
 * from the client relayed to a plain backend (chosen by the client's SNI name among the routes) or
 * echoed; or, in client mode, a plain client relayed to a TLS server (verified). The rules it keeps: no byte it accepted is dropped (each direction's end is
 * passed on — the client's close_notify as a FIN to the backend, the backend's FIN as close_notify
 * — after the bytes queued before it); memory per connection is bounded (a side is read only
 * while the other side's queue is under RELAY_HIGH_WATER); a failure reaches the other side as an
 * error (a reset), never as a clean end, and the log. */
#ifndef SLI_RELAY_H
#define SLI_RELAY_H

#include <sys/socket.h>

#include <uv.h>

#include "sli.h"

/* A side is not read while the other side has this much queued (bytes), and read again under
 * RELAY_LOW_WATER. */
#define RELAY_HIGH_WATER (256 * 1024)
#define RELAY_LOW_WATER (64 * 1024)

typedef struct relay_conn relay_conn;

/* relay_route: clients whose SNI name is `name` ("*.example.com": any one label in front) go to
 * `backend`. */
typedef struct relay_route {
  char name[256];
  struct sockaddr_storage backend;
} relay_route;

/* The settings every loop's relay_server shares (read-only once serving). */
typedef struct relay_settings {
  sli_ctx *ctx;                    /* a server context; a client context in client mode */
  int echo;                        /* else the backend's address (the default route): */
  int has_backend;
  struct sockaddr_storage backend;
  const relay_route *routes;       /* by SNI name, first match */
  int n_routes;
  int client_mode;                 /* plain in, TLS out to `backend`, verified as `servername` */
  char servername[256];
  uint32_t handshake_timeout_ms;
  int proxy_protocol;              /* 0 none, 1 or 2: the PROXY protocol header to the backend */
} relay_settings;

/* One loop's connections. */
typedef struct relay_server {
  uv_loop_t *loop;
  const relay_settings *set;
  relay_conn *live;                /* the connections not yet closed */
  size_t n_live;
  void (*on_last_closed)(struct relay_server *); /* called when n_live falls to 0 */
} relay_server;

/* relay_start serves the accepted connection `fd` (non-blocking) until its end. */
void relay_start(relay_server *srv, int fd);

/* relay_cut ends every live connection now, with a reset to each side (a drain that ran out of
 * time): none is taken for a clean end. Returns how many were cut. */
size_t relay_cut(relay_server *srv);

/* relay_name is the command's name in log lines ("serve", "proxy"); relay_log prints
 * "sli NAME: ..." on stderr, one whole line at a time from any thread. */
extern const char *relay_name;
void relay_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
