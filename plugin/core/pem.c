/* pem.c — PEM text as administrators bring it, checked before any parser sees it: DER instead of
 * PEM, lone-CR line endings, a truncated block, each with a named error. Parsing the blocks into
 * keys and certificates is pki/load.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static const char *memfind(const char *h, size_t hl, const char *needle) {
  size_t nl = strlen(needle);
  if (nl > hl) return NULL;
  for (size_t i = 0; i + nl <= hl; i++)
    if (h[i] == needle[0] && memcmp(h + i, needle, nl) == 0) return h + i;
  return NULL;
}

int sli__pem_check(const char *what, const char *data, size_t len, char **out_norm,
                   size_t *out_norm_len, sli__error *e) {
  *out_norm = NULL;
  *out_norm_len = 0;
  if (len == 0) return sli__fail(e, SLI_E_PEM, "%s is empty", what);
  const char *begin = memfind(data, len, "-----BEGIN ");
  if (!begin) {
    int binary = (unsigned char)data[0] == 0x30;
    for (size_t i = 0; i < len && !binary; i++)
      if (data[i] == 0 || ((unsigned char)data[i] < 0x09)) binary = 1;
    if (binary)
      return sli__fail(e, SLI_E_NOT_PEM,
                       "%s is not PEM: it looks like binary DER; convert it, e.g. "
                       "'openssl x509 -inform DER -in FILE -out FILE.pem' for a certificate or "
                       "'openssl pkey -inform DER -in FILE -out FILE.pem' for a key",
                       what);
    return sli__fail(e, SLI_E_PEM, "%s holds no PEM block (no '-----BEGIN' line)", what);
  }
  for (size_t i = 0; i < len; i++)
    if (data[i] == '\r' && (i + 1 >= len || data[i + 1] != '\n'))
      return sli__fail(e, SLI_E_LINE_ENDINGS,
                       "%s uses lone CR line endings (a CR without LF at byte %zu); convert it to "
                       "LF or CRLF",
                       what, i);
  /* CRLF -> LF */
  char *norm = malloc(len + 1);
  if (!norm) return sli__fail(e, SLI_E_NOMEM, "out of memory");
  size_t o = 0;
  for (size_t i = 0; i < len; i++)
    if (data[i] != '\r') norm[o++] = data[i];
  norm[o] = 0;
  /* Every BEGIN has its END. */
  const char *p = norm;
  size_t left = o;
  while ((begin = memfind(p, left, "-----BEGIN ")) != NULL) {
    const char *label = begin + 11;
    const char *dash = memfind(label, o - (size_t)(label - norm), "-----");
    if (!dash || memchr(label, '\n', (size_t)(dash - label))) {
      sli_free(norm, len + 1);
      return sli__fail(e, SLI_E_PEM, "%s has a malformed BEGIN line", what);
    }
    char end[128];
    size_t ll = (size_t)(dash - label);
    if (ll > 100) ll = 100;
    snprintf(end, sizeof(end), "-----END %.*s-----", (int)ll, label);
    const char *after = dash + 5;
    const char *end_line = memfind(after, o - (size_t)(after - norm), end);
    if (!end_line) {
      int rc = sli__fail(e, SLI_E_PEM_TRUNCATED, "%s is truncated: its '%.*s' block has no END line",
                         what, (int)ll, label);
      sli_free(norm, len + 1);
      return rc;
    }
    p = end_line + strlen(end);
    left = o - (size_t)(p - norm);
  }
  *out_norm = norm;
  *out_norm_len = o;
  return 0;
}
