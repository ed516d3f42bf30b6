/* loops.h — the event loops of `sli serve` / `sli proxy` (loops.c): one libuv loop per thread, each
 * with its own listening socket on the same address (SO_REUSEPORT: the kernel spreads new
 * connections) or, under systemd socket activation, all sharing the one socket systemd gave. Each
 * loop relays its own connections (relay.c); they share the settings and the TLS context. */
#ifndef SLI_LOOPS_H
#define SLI_LOOPS_H

#include <uv.h>

#include "relay.h"

typedef struct serve_loop serve_loop;

typedef struct serve_loops {
  serve_loop *loops;
  int n;
  uint32_t drain_ms;
  int shared_lfd;      /* systemd's one socket, all loops on it (closed by loops_stop); else -1 */
  uv_async_t all_done; /* on the main loop: every loop has stopped */
} serve_loops;

/* loops_start starts `n` loops on threads, relaying with `set`, the first listening on `lfd` and
 * the others on sockets of their own bound like it (SO_REUSEPORT; `shared`: all on `lfd`, as
 * systemd's socket). `main_loop` gets all_done when the last loop has stopped. 0, or -1 (said on
 * stderr). */
int loops_start(serve_loops *l, int n, int lfd, int shared, const relay_settings *set,
                uint32_t drain_ms, uv_loop_t *main_loop, uv_async_cb all_done);

/* loops_stop asks every loop to drain: no new connection, the live ones finish within drain_ms,
 * then are cut with a reset. A second call cuts them at once. Returns the live connections. */
size_t loops_stop(serve_loops *l);

/* loops_join waits for the threads (after all_done) and frees them. */
void loops_join(serve_loops *l);

#endif
