/* promtext.h — the metrics page in Prometheus' text format, one renderer for `sli serve --metrics`
 * (tools/metrics.c) and the shim's SLI_METRICS (shim/metrics.c). No I/O, no allocation. */
#ifndef SLI_PROMTEXT_H
#define SLI_PROMTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "sli.h"

/* PROMTEXT_NO_EXPIRY: no served certificate is known; the expiry gauge is left out. */
#define PROMTEXT_NO_EXPIRY INT64_MIN

/* promtext_page writes the page for the counters `st` and the seconds left on the served
 * certificate (`expiry_seconds`, negative once expired, or PROMTEXT_NO_EXPIRY) into `out` of `cap`
 * bytes. It returns the length, or 0 when `cap` is too small (never a cut page). */
size_t promtext_page(char *out, size_t cap, const sli_stats *st, int64_t expiry_seconds);

#endif
