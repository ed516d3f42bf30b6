/* promtext.c — the metrics page (promtext.h): what `sli serve --metrics` and the shim's
 * SLI_METRICS both serve, so a dashboard built for one reads the other. */
#include <stdio.h>

#include "promtext.h"

/* Failure reasons are the SLI_ECAT_* categories, in their order (index = category). */
static const char *const categories[] = {"ok",       "blocked", "closed", "io",     "alert",   "protocol",
                                         "verify",   "config",  "crypto", "usage",  "internal"};

size_t promtext_page(char *out, size_t cap, const sli_stats *st, int64_t expiry_seconds) {
  size_t at = 0;
#define P(...) at += (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, __VA_ARGS__)
  P("# HELP sli_handshakes_total TLS handshakes completed.\n# TYPE sli_handshakes_total counter\n");
  P("sli_handshakes_total %llu\n", (unsigned long long)st->handshakes);
  P("# HELP sli_handshakes_resumed_total Handshakes that resumed a session.\n");
  P("# TYPE sli_handshakes_resumed_total counter\nsli_handshakes_resumed_total %llu\n",
    (unsigned long long)st->resumed);
  P("# HELP sli_handshake_failures_total Handshakes that failed, by the category of their error.\n");
  P("# TYPE sli_handshake_failures_total counter\n");
  for (size_t c = 1; c < sizeof(categories) / sizeof(categories[0]); c++)
    P("sli_handshake_failures_total{reason=\"%s\"} %llu\n", categories[c],
      (unsigned long long)st->failed[c]);
  P("# HELP sli_bytes_received_total Plaintext bytes read from peers.\n");
  P("# TYPE sli_bytes_received_total counter\nsli_bytes_received_total %llu\n",
    (unsigned long long)st->bytes_in);
  P("# HELP sli_bytes_sent_total Plaintext bytes written to peers.\n");
  P("# TYPE sli_bytes_sent_total counter\nsli_bytes_sent_total %llu\n", (unsigned long long)st->bytes_out);
  P("# HELP sli_connections Connections open now.\n# TYPE sli_connections gauge\n");
  P("sli_connections %llu\n", (unsigned long long)st->live);
  if (expiry_seconds != PROMTEXT_NO_EXPIRY) {
    P("# HELP sli_certificate_expiry_seconds Seconds until the served certificate expires.\n");
    P("# TYPE sli_certificate_expiry_seconds gauge\nsli_certificate_expiry_seconds %lld\n",
      (long long)expiry_seconds);
  }
#undef P
  return at < cap ? at : 0;
}
