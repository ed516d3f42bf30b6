/* alpn.c — a server's choice of application protocol (ALPN): the first of its own list, in its
 * order of preference, that the client offers; or the host's choice from its callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/conn.h"

static int by_list(const sli__snapshot *s, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                   unsigned in_len) {
  for (size_t i = 0; i < s->alpn_len; i += 1 + s->alpn_wire[i]) {
    const uint8_t *mine = s->alpn_wire + i;
    for (unsigned j = 0; j < in_len; j += 1u + in[j]) {
      if (in[j] == mine[0] && j + 1u + in[j] <= in_len && memcmp(in + j + 1, mine + 1, mine[0]) == 0) {
        *out = in + j + 1;
        *out_len = in[j];
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

/* by_host: the offered list as C strings for the host's callback; its answer as BoringSSL's. */
static int by_host(SSL *ssl, const sli__snapshot *s, const uint8_t **out, uint8_t *out_len,
                   const uint8_t *in, unsigned in_len) {
  sli_conn *c = SSL_get_ex_data(ssl, sli__conn_index);
  if (!c) return SSL_TLSEXT_ERR_NOACK;
  /* every name the client offers (a list of up to 64 KiB), but those holding a NUL byte, which a C
   * string cannot carry: each name and its NUL fit in the list's own length */
  size_t max = in_len / 2 + 1, n = 0, at = 0;
  const char **names = malloc(max * sizeof(*names));
  const uint8_t **wire = malloc(max * sizeof(*wire));
  char *text = malloc(in_len + 1);
  if (!names || !wire || !text) {
    free(names);
    free(wire);
    free(text);
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  for (unsigned j = 0; j < in_len && n < max; j += 1u + in[j]) {
    if (j + 1u + in[j] > in_len) break; /* BoringSSL checked the list; never trust twice */
    if (memchr(in + j + 1, 0, in[j])) continue;
    memcpy(text + at, in + j + 1, in[j]);
    text[at + in[j]] = 0;
    names[n] = text + at;
    wire[n++] = in + j;
    at += in[j] + 1u;
  }
  int r = s->hooks.alpn_fn(c, names, n, s->hooks.alpn_arg);
  const uint8_t *chosen = r >= 0 && (size_t)r < n ? wire[r] : NULL;
  free(names);
  free(wire);
  free(text);
  if (chosen) {
    *out = chosen + 1;
    *out_len = chosen[0];
    return SSL_TLSEXT_ERR_OK;
  }
  if (r == SLI_ALPN_NONE) return SSL_TLSEXT_ERR_NOACK;
  if (sli__is_refusal(r))
    sli__hook_fail(c, r, "the host's ALPN callback refused every protocol the client offers (%s)",
                   sli_err_name(r));
  else
    sli__hook_fail(c, SLI_E_INVAL, "the ALPN callback returned %d for a list of %zu protocols", r, n);
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int select_alpn(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                       unsigned in_len, void *arg) {
  sli__snapshot *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sli__snapshot_index);
  if (!s) return SSL_TLSEXT_ERR_NOACK;
  if (s->hooks.alpn_fn) return by_host(ssl, s, out, out_len, in, in_len);
  if (!s->alpn_wire) return SSL_TLSEXT_ERR_NOACK;
  return by_list(s, out, out_len, in, in_len);
}

int sli__alpn_install(SSL_CTX *ctx, sli__snapshot *snap, const sli_config *cfg) {
  if (cfg->alpn_wire) {
    snap->alpn_wire = malloc(cfg->alpn_len);
    if (!snap->alpn_wire) return SLI_E_NOMEM;
    memcpy(snap->alpn_wire, cfg->alpn_wire, cfg->alpn_len);
    snap->alpn_len = cfg->alpn_len;
  }
  if (snap->alpn_wire || snap->hooks.alpn_fn) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
  return 0;
}

int sli_config_set_alpn_select_cb(sli_config *cfg, sli_alpn_select_fn fn, void *arg) {
  if (!cfg) return sli__fail(NULL, SLI_E_INVAL, "sli_config_set_alpn_select_cb: cfg is NULL");
  cfg->hooks.alpn_fn = fn;
  cfg->hooks.alpn_arg = fn ? arg : NULL;
  return 0;
}
