/* armor.c — age's ASCII armor (age's armor package): "-----BEGIN AGE ENCRYPTED FILE-----", the
 * binary file in base64 lines of 64 characters (the last one shorter), "-----END AGE ENCRYPTED
 * FILE-----"; written as the encryptor goes, read line by line by the decryptor as strictly as
 * age reads it: canonical base64, no empty line, CRLF line endings and whitespace after the END
 * line accepted. */
#include <string.h>

#include <openssl/base64.h>

#include "age/age.h"

#define ARMOR_BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define ARMOR_END "-----END AGE ENCRYPTED FILE-----"

size_t sli__age_armored_size(size_t raw) {
  return raw / 48 * 65 + 65 + sizeof(ARMOR_BEGIN) + sizeof(ARMOR_END) + 4;
}

void sli__age_armor_write(sli__age_armor_writer *w, uint8_t *out, size_t *o, const uint8_t *d,
                          size_t n) {
  if (!w->begun) {
    memcpy(out + *o, ARMOR_BEGIN "\n", sizeof(ARMOR_BEGIN));
    *o += sizeof(ARMOR_BEGIN);
    w->begun = 1;
  }
  while (n) {
    size_t take = 48 - w->len < n ? 48 - w->len : n;
    memcpy(w->rest + w->len, d, take);
    w->len += take;
    d += take;
    n -= take;
    if (w->len == 48) {
      *o += EVP_EncodeBlock(out + *o, w->rest, 48);
      out[(*o)++] = '\n';
      w->len = 0;
    }
  }
}

void sli__age_armor_write_end(sli__age_armor_writer *w, uint8_t *out, size_t *o) {
  if (w->len) *o += EVP_EncodeBlock(out + *o, w->rest, w->len);
  if (w->len || !w->begun) out[(*o)++] = '\n';
  memcpy(out + *o, ARMOR_END "\n", sizeof(ARMOR_END));
  *o += sizeof(ARMOR_END);
}

/* armor_line reads one complete line (`len` characters, a NUL after them): the BEGIN line, a data
 * line whose bytes go to `sink`, the END line, or blanks after it. */
static int armor_line(sli__age_armor_reader *r, char *line, size_t len, sli__age_sink sink, void *arg,
                      sli__error *e) {
  while (len && (line[len - 1] == '\r')) len--;
  line[len] = 0;
  if (r->ended) { /* whitespace only, as age's bytes.TrimSpace has it */
    for (size_t i = 0; i < len; i++)
      if (!strchr(" \t\r\v\f", line[i]) || !line[i])
        return sli__fail(e, SLI_E_ARMOR, "data after the armor's END line");
    return 0;
  }
  if (r->stage == 1) { /* expecting BEGIN */
    if (strcmp(line, ARMOR_BEGIN) != 0) return sli__fail(e, SLI_E_ARMOR, "missing armor BEGIN line");
    r->stage = 2;
    return 0;
  }
  if (!strcmp(line, ARMOR_END)) {
    r->ended = 1;
    return 0;
  }
  if (len == 0) return sli__fail(e, SLI_E_ARMOR, "an empty line in the armor");
  if (len > 64 || len % 4) return sli__fail(e, SLI_E_ARMOR, "armor line of %zu characters", len);
  if (r->stage == 3) return sli__fail(e, SLI_E_ARMOR, "armor data after a short line");
  if (len < 64) r->stage = 3; /* the last data line */
  uint8_t raw[48];
  size_t rn;
  if (!EVP_DecodeBase64(raw, &rn, sizeof(raw), (const uint8_t *)line, len))
    return sli__fail(e, SLI_E_ARMOR, "bad base64 in the armor");
  /* strict, as age's decoder: the one encoding of those bytes (no stray bits before the padding) */
  char again[65];
  if (EVP_EncodeBlock((uint8_t *)again, raw, rn) != len || memcmp(again, line, len) != 0)
    return sli__fail(e, SLI_E_ARMOR, "non-canonical base64 in the armor (stray bits before the padding)");
  return sink(arg, raw, rn);
}

int sli__age_armor_read(sli__age_armor_reader *r, const uint8_t *in, size_t in_len, sli__age_sink sink,
                        void *arg, sli__error *e) {
  int rc = 0;
  while (in_len && !rc) {
    const uint8_t *nl = memchr(in, '\n', in_len);
    size_t take = nl ? (size_t)(nl - in) : in_len;
    if (r->line.len + take > 128) return sli__fail(e, SLI_E_ARMOR, "armor line too long");
    if (sli__age_buf_add(&r->line, in, take)) return sli__fail(e, SLI_E_NOMEM, "out of memory");
    in += take;
    in_len -= take;
    if (nl) {
      in++;
      in_len--;
      if (sli__age_buf_add(&r->line, "", 1)) return sli__fail(e, SLI_E_NOMEM, "out of memory");
      rc = armor_line(r, (char *)r->line.p, r->line.len - 1, sink, arg, e);
      r->line.len = 0;
    }
  }
  return rc;
}

int sli__age_armor_read_end(sli__age_armor_reader *r, sli__age_sink sink, void *arg, sli__error *e) {
  int rc = 0;
  if (r->line.len) { /* a last line without newline */
    if (sli__age_buf_add(&r->line, "", 1)) return sli__fail(e, SLI_E_NOMEM, "out of memory");
    rc = armor_line(r, (char *)r->line.p, r->line.len - 1, sink, arg, e);
    r->line.len = 0;
  }
  if (!rc && !r->ended) rc = sli__fail(e, SLI_E_ARMOR, "missing armor END line");
  return rc;
}
