/* metrics.h — the Prometheus page of `sli serve --metrics` (metrics.c). */
#ifndef SLI_METRICS_H
#define SLI_METRICS_H

#include <stdint.h>

#include <uv.h>

#include "sli.h"

typedef struct metrics {
  uv_loop_t *loop;
  uv_tcp_t listener;
  sli_ctx *ctx;
  int64_t (*not_after)(void *arg); /* the served certificate's end, Unix seconds (0: unknown) */
  void *arg;
} metrics;

/* metrics_start serves the page on the listening socket `fd`: 0, or -1. */
int metrics_start(metrics *m, int fd);
/* metrics_stop closes the listener. */
void metrics_stop(metrics *m);

#endif
