/* decrypt.c — the age decryptor, sli_age_dec: input in pieces of any size, armor (armor.c) told
 * from binary by the first bytes, the header collected line by line and parsed (header.c), then the
 * payload opened chunk by chunk (stream.c), a full chunk held back until more input shows it is not
 * the last. Constant memory; after a failure every call fails with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/aead.h>
#include <openssl/err.h>
#include <openssl/mem.h>

#include "age/age.h"

#define HEADER_MAX (64 * 1024)

enum { D_START, D_HEADER, D_NONCE, D_PAYLOAD, D_DONE, D_FAILED };

struct sli_age_dec {
  int state, parallel;
  sli__worker *worker;         /* SLI_AGE_PARALLEL: started on first use */
  sli__age_buf start;          /* the first bytes, to tell armor from binary */
  sli__age_armor_reader armor; /* the armor decoder (its stage is 0 for binary input) */
  sli__age_buf header;         /* the header's lines, up to the MAC line */
  uint8_t file_key[16];        /* from the header, until the nonce is known */
  uint8_t nonce[16];
  size_t nonce_len;
  EVP_AEAD_CTX aead;
  int aead_ready;
  uint64_t counter;
  uint8_t ct[AGE_CHUNK + AGE_TAG]; /* the chunk being collected; a full one is held until more comes */
  size_t ct_len;
  sli_age_identity **ids;
  size_t n_ids;
  sli__error err; /* the last failure of a call on it (sli_age_dec_error); in D_FAILED, the one
                     that stopped it, which every later call returns */
};

/* dfail records a failure of the file: the decryptor stops, and every later call fails with it. */
static int dfail(sli_age_dec *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dfail(sli_age_dec *d, int code, const char *fmt, ...) {
  char msg[SLI_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  d->state = D_FAILED;
  return sli__fail(&d->err, code, "%s", msg);
}

/* stopped stops the decryptor if `rc`, a failure already recorded in its carrier, is one; it returns
 * `rc`. */
static int stopped(sli_age_dec *d, int rc) {
  if (rc) d->state = D_FAILED;
  return rc;
}

/* dec_usable checks the arguments every call of the decryptor shares; a stopped decryptor fails again
 * with the failure that stopped it. */
static int dec_usable(sli_age_dec *d, const char *fn, const size_t *out_len) {
  if (!d) return sli__fail(NULL, SLI_E_INVAL, "%s: the decryptor is NULL", fn);
  if (d->state == D_FAILED) return sli__fail(NULL, d->err.code, "%s", d->err.msg);
  if (!out_len) return sli__fail(&d->err, SLI_E_INVAL, "%s: out_len is NULL", fn);
  return 0;
}

int sli_age_dec_new(sli_age_dec **out, const sli_age_identity *const *ids, size_t n, uint32_t flags) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_dec_new: out is NULL");
  *out = NULL;
  if (!ids || n == 0) return sli__fail(NULL, SLI_E_INVAL, "sli_age_dec_new: no identity given");
  if (flags & ~SLI_AGE_PARALLEL)
    return sli__fail(NULL, SLI_E_INVAL, "sli_age_dec_new: unknown flags 0x%x", flags);
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_age_dec_new: the library cannot be initialised");
  sli_age_dec *d = sli__zalloc(sizeof(*d));
  if (!d || !(d->ids = calloc(n, sizeof(*d->ids)))) {
    free(d);
    return sli__fail(NULL, SLI_E_NOMEM, "out of memory starting a decryption");
  }
  for (size_t i = 0; i < n; i++) {
    if (!ids[i] || !(d->ids[i] = sli__age_identity_dup(ids[i]))) {
      d->n_ids = i;
      sli_age_dec_free(d);
      return ids[i] ? sli__fail(NULL, SLI_E_NOMEM, "out of memory starting a decryption")
                    : sli__fail(NULL, SLI_E_INVAL, "sli_age_dec_new: identity %zu is NULL", i + 1);
    }
  }
  d->n_ids = n;
  d->parallel = (flags & SLI_AGE_PARALLEL) != 0;
  *out = d;
  return 0;
}

const char *sli_age_dec_error(const sli_age_dec *d) { return d ? sli__error_msg(&d->err) : NULL; }

void sli_age_dec_free(sli_age_dec *d) {
  if (!d) return;
  sli__worker_free(d->worker);
  for (size_t i = 0; i < d->n_ids; i++) sli_age_identity_free(d->ids[i]);
  free(d->ids);
  if (d->aead_ready) EVP_AEAD_CTX_cleanup(&d->aead);
  sli__age_buf_wipe(&d->start);
  sli__age_buf_wipe(&d->armor.line);
  sli__age_buf_wipe(&d->header);
  OPENSSL_cleanse(d, sizeof(*d));
  free(d);
}

size_t sli_age_dec_update_bound(const sli_age_dec *d, size_t in_len) {
  if (!d) return 0;
  return in_len + 2 * (AGE_CHUNK + AGE_TAG) + AGE_CHUNK; /* plaintext never exceeds what came in */
}

static int open_chunk(sli_age_dec *d, uint8_t *out, size_t *o, int last) {
  if (d->ct_len < AGE_TAG) return dfail(d, SLI_E_PAYLOAD, "truncated payload chunk");
  if (last && d->ct_len == AGE_TAG && d->counter > 0)
    return dfail(d, SLI_E_PAYLOAD, "an empty last chunk after data");
  uint8_t nonce[12];
  size_t n = 0;
  sli__age_chunk_nonce(nonce, d->counter, last);
  if (!EVP_AEAD_CTX_open(&d->aead, out + *o, &n, AGE_CHUNK, nonce, 12, d->ct, d->ct_len, NULL, 0)) {
    ERR_clear_error();
    return dfail(d, SLI_E_PAYLOAD, last ? "the payload is truncated or extended, or its last chunk was modified"
                                         : "payload chunk %llu was modified or reordered",
                 (unsigned long long)d->counter);
  }
  *o += n;
  d->counter++;
  d->ct_len = 0;
  return 0;
}

/* open_whole opens `k` whole chunks from `in` into `out` + *o. */
static int open_whole(sli_age_dec *d, const uint8_t *in, size_t k, uint8_t *out, size_t *o) {
  sli__worker *w = sli__age_helper(&d->parallel, &d->worker, k);
  size_t bad = sli__age_chunks_run(w, &d->aead, 1, out + *o, in, d->counter, k);
  if (bad < k)
    return dfail(d, SLI_E_PAYLOAD, "payload chunk %llu was modified or reordered",
                 (unsigned long long)(d->counter + bad));
  d->counter += k;
  *o += k * AGE_CHUNK;
  return 0;
}

/* feed consumes binary (de-armored) bytes. */
static int feed(sli_age_dec *d, const uint8_t *in, size_t n, uint8_t *out, size_t *o) {
  while (n) {
    if (d->state == D_HEADER) {
      /* take bytes up to the end of the MAC line */
      const uint8_t *nl = memchr(in, '\n', n);
      size_t take = nl ? (size_t)(nl - in) + 1 : n;
      if (d->header.len + take > HEADER_MAX) return dfail(d, SLI_E_HEADER, "header larger than 64 KiB");
      size_t line_start = d->header.len;
      if (sli__age_buf_add(&d->header, in, take)) return dfail(d, SLI_E_NOMEM, "out of memory");
      in += take;
      n -= take;
      if (!nl) continue;
      /* a complete line: is it the MAC line? find its beginning */
      size_t ls = line_start;
      while (ls > 0 && d->header.p[ls - 1] != '\n') ls--;
      if (ls == 0 && (d->header.len != sizeof(AGE_VERSION_LINE) ||
                      memcmp(d->header.p, AGE_VERSION_LINE "\n", sizeof(AGE_VERSION_LINE))))
        return dfail(d, SLI_E_HEADER, "not an age v1 file (first line is not '%s')", AGE_VERSION_LINE);
      if (d->header.len - ls >= 4 && memcmp(d->header.p + ls, "--- ", 4) == 0) {
        int rc = sli__age_header_parse((char *)d->header.p, d->header.len, d->ids, d->n_ids, d->file_key,
                                       &d->err);
        sli__age_buf_wipe(&d->header);
        if (rc) return stopped(d, rc);
        d->state = D_NONCE;
      } else if (d->header.len - ls >= 3 && memcmp(d->header.p + ls, "---", 3) == 0) {
        return dfail(d, SLI_E_HEADER, "malformed header MAC line");
      }
      continue;
    }
    if (d->state == D_NONCE) {
      size_t take = 16 - d->nonce_len < n ? 16 - d->nonce_len : n;
      memcpy(d->nonce + d->nonce_len, in, take);
      d->nonce_len += take;
      in += take;
      n -= take;
      if (d->nonce_len == 16) {
        int rc = sli__age_stream_key(&d->aead, d->file_key, d->nonce);
        OPENSSL_cleanse(d->file_key, sizeof(d->file_key));
        if (rc) return dfail(d, rc, "cannot set up the payload key");
        d->aead_ready = 1;
        d->state = D_PAYLOAD;
      }
      continue;
    }
    if (d->state == D_PAYLOAD) {
      if (d->ct_len == AGE_CHUNK + AGE_TAG) { /* more data follows: that full chunk was not the last */
        int rc = open_chunk(d, out, o, 0);
        if (rc) return rc;
      }
      size_t k = d->ct_len == 0 ? (n - 1) / (AGE_CHUNK + AGE_TAG) : 0; /* whole chunks with more after them */
      if (k) { /* opened in place, without a copy */
        int rc = open_whole(d, in, k, out, o);
        if (rc) return rc;
        in += k * (AGE_CHUNK + AGE_TAG);
        n -= k * (AGE_CHUNK + AGE_TAG);
        continue;
      }
      size_t take = AGE_CHUNK + AGE_TAG - d->ct_len < n ? AGE_CHUNK + AGE_TAG - d->ct_len : n;
      memcpy(d->ct + d->ct_len, in, take);
      d->ct_len += take;
      in += take;
      n -= take;
      continue;
    }
    return dfail(d, d->state == D_DONE ? SLI_E_PAYLOAD : SLI_E_HEADER, "unexpected data");
  }
  return 0;
}

/* feed_to is where the armor reader's bytes go: `feed`, with its output. */
typedef struct feed_to {
  sli_age_dec *d;
  uint8_t *out;
  size_t *o;
} feed_to;

static int feed_sink(void *arg, const uint8_t *bytes, size_t n) {
  feed_to *t = arg;
  return feed(t->d, bytes, n, t->out, t->o);
}

/* process runs bytes through armor decoding (if any) and the binary machine. */
static int process(sli_age_dec *d, const uint8_t *in, size_t in_len, uint8_t *out, size_t *o) {
  if (!d->armor.stage) return feed(d, in, in_len, out, o);
  feed_to to = {d, out, o};
  return stopped(d, sli__age_armor_read(&d->armor, in, in_len, feed_sink, &to, &d->err));
}

/* decide tells armor from binary by the first non-blank bytes (or, with `force`, by what there is)
 * and runs the bytes collected so far. Returns 0 (maybe still undecided) or a failure code. */
static int decide(sli_age_dec *d, int force, uint8_t *out, size_t *o) {
  size_t skip = 0;
  while (skip < d->start.len && strchr(" \t\r\n", d->start.p[skip])) skip++;
  if (!force && d->start.len - skip < 5 && d->start.len < 4096) return 0;
  d->state = D_HEADER;
  if (d->start.len - skip >= 5 && memcmp(d->start.p + skip, "-----", 5) == 0) d->armor.stage = 1;
  else skip = 0;
  int rc = process(d, d->start.p ? d->start.p + skip : NULL, d->start.len - skip, out, o);
  sli__age_buf_wipe(&d->start);
  return rc;
}

int sli_age_dec_update(sli_age_dec *d, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len) {
  int rc = dec_usable(d, "sli_age_dec_update", out_len);
  if (rc) return rc;
  if (!in && in_len) return sli__fail(&d->err, SLI_E_INVAL, "sli_age_dec_update: in is NULL");
  size_t bound = sli_age_dec_update_bound(d, in_len);
  if (!out || *out_len < bound) {
    *out_len = bound;
    return sli__fail(&d->err, SLI_E_BUFSIZE,
                     "sli_age_dec_update: the output needs %zu bytes (sli_age_dec_update_bound)", bound);
  }
  size_t o = 0;
  if (d->state == D_START) {
    rc = sli__age_buf_add(&d->start, in, in_len) ? dfail(d, SLI_E_NOMEM, "out of memory")
                                                 : decide(d, 0, out, &o);
  } else {
    rc = process(d, in, in_len, out, &o);
  }
  if (rc) {
    OPENSSL_cleanse(out, o);
    *out_len = 0;
    return rc;
  }
  *out_len = o;
  return 0;
}

int sli_age_dec_final(sli_age_dec *d, uint8_t *out, size_t *out_len) {
  int rc = dec_usable(d, "sli_age_dec_final", out_len);
  if (rc) return rc;
  size_t need = AGE_CHUNK + (d->state == D_START ? d->start.len : 0); /* a short input is all here */
  if (!out || *out_len < need) {
    *out_len = need;
    return sli__fail(&d->err, SLI_E_BUFSIZE, "sli_age_dec_final: the output needs %zu bytes", need);
  }
  size_t o = 0;
  if (d->state == D_START) { /* a short input: decide now */
    if (d->start.len == 0) rc = dfail(d, SLI_E_HEADER, "the input is empty");
    else rc = decide(d, 1, out, &o);
  }
  if (!rc && d->armor.stage) { /* the last armor line, and the END line */
    feed_to to = {d, out, &o};
    rc = stopped(d, sli__age_armor_read_end(&d->armor, feed_sink, &to, &d->err));
  }
  if (!rc && d->state == D_HEADER) rc = dfail(d, SLI_E_HEADER, "the header is incomplete");
  if (!rc && (d->state == D_NONCE || (d->state == D_PAYLOAD && d->ct_len == 0)))
    rc = dfail(d, SLI_E_PAYLOAD, "the payload is missing or truncated");
  if (!rc && d->state == D_PAYLOAD) rc = open_chunk(d, out, &o, 1);
  if (rc) {
    OPENSSL_cleanse(out, o);
    *out_len = 0;
    return rc;
  }
  d->state = D_DONE;
  *out_len = o;
  return 0;
}
