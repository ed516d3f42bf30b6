/* relay.h — one TLS connection accepted by `sli serve`, relayed to a plain backend or echoed, on a
 * libuv loop (relay.c). The rules it keeps: no byte it accepted is dropped (each direction's end is
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

typedef struct relay_server {
  uv_loop_t *loop;
  sli_ctx *ctx;
  int echo;                        /* else the backend's address: */
  struct sockaddr_storage backend;
  uint32_t handshake_timeout_ms;
  int proxy_protocol;              /* 0 none, 1 or 2: the PROXY protocol header to the backend */
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
 * "sli NAME: ..." on stderr. */
extern const char *relay_name;
void relay_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
