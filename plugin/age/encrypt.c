/* encrypt.c — the age encryptor, sli_age_enc: the header (header.c) and the payload nonce are
 * written first, then the input is sealed chunk by chunk (stream.c), a full chunk held back until more
 * input, or sli_age_enc_final, says whether it is the last; ASCII armor (armor.c) on request.
 * Constant memory. */
#include <stdlib.h>
#include <string.h>

#include <openssl/aead.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "age/age.h"

struct sli_age_enc {
  int armor, finished, parallel;
  sli__worker *worker;      /* SLI_AGE_PARALLEL: started on first use */
  uint64_t counter;
  EVP_AEAD_CTX aead;
  sli__age_buf pending;     /* header + nonce not yet written */
  uint8_t pt[AGE_CHUNK];    /* plaintext of the chunk being filled */
  size_t pt_len;
  sli__age_armor_writer aw; /* with `armor`: the armor encoder */
  sli__error err;           /* the last failure of a call on it (sli_age_enc_error) */
};

int sli_age_enc_new(sli_age_enc **out, const sli_age_recipient *const *rcpts, size_t n, uint32_t flags) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_enc_new: out is NULL");
  *out = NULL;
  if (!rcpts || n == 0) return sli__fail(NULL, SLI_E_INVAL, "sli_age_enc_new: no recipient given");
  if (flags & ~(SLI_AGE_ARMOR | SLI_AGE_PARALLEL))
    return sli__fail(NULL, SLI_E_INVAL, "sli_age_enc_new: unknown flags 0x%x", flags);
  for (size_t i = 0; i < n; i++) {
    if (!rcpts[i]) return sli__fail(NULL, SLI_E_INVAL, "sli_age_enc_new: recipient %zu is NULL", i + 1);
    if (rcpts[i]->kind == AGE_SCRYPT && n > 1)
      return sli__fail(NULL, SLI_E_INVAL, "a passphrase recipient must be the only recipient of a file");
  }
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_age_enc_new: the library cannot be initialised");
  sli_age_enc *e = sli__zalloc(sizeof(*e));
  if (!e) return sli__fail(NULL, SLI_E_NOMEM, "out of memory starting an encryption");
  e->armor = (flags & SLI_AGE_ARMOR) != 0;
  e->parallel = (flags & SLI_AGE_PARALLEL) != 0;
  uint8_t file_key[16], nonce[16];
  rc = RAND_bytes(file_key, 16) && RAND_bytes(nonce, 16) ? 0 : SLI_E_INTERNAL;
  if (rc) sli__fail(NULL, rc, "no random bytes for the file key");
  if (!rc) rc = sli__age_header_write(&e->pending, rcpts, n, file_key);
  if (!rc && (rc = sli__age_buf_add(&e->pending, nonce, 16)))
    sli__fail(NULL, rc, "cannot write the header: %s", sli_strerror(rc));
  if (!rc && (rc = sli__age_stream_key(&e->aead, file_key, nonce)))
    sli__fail_ssl(NULL, rc, "cannot set up the payload key");
  OPENSSL_cleanse(file_key, sizeof(file_key));
  ERR_clear_error();
  if (rc) {
    sli__age_buf_wipe(&e->pending);
    free(e);
    return rc;
  }
  *out = e;
  return 0;
}

/* emit writes raw output bytes, through the armor encoder when armoring. */
static void emit(sli_age_enc *e, uint8_t *out, size_t *o, const uint8_t *d, size_t n) {
  if (e->armor) {
    sli__age_armor_write(&e->aw, out, o, d, n);
    return;
  }
  memcpy(out + *o, d, n);
  *o += n;
}

static size_t armored(const sli_age_enc *e, size_t raw) {
  return e->armor ? sli__age_armored_size(raw) : raw;
}

size_t sli_age_enc_update_bound(const sli_age_enc *e, size_t in_len) {
  if (!e) return 0;
  /* independent of the state (a full chunk may be buffered), so it can be asked once */
  size_t raw = e->pending.len + ((AGE_CHUNK + in_len) / AGE_CHUNK + 1) * (AGE_CHUNK + AGE_TAG);
  return armored(e, raw);
}

size_t sli_age_enc_final_bound(const sli_age_enc *e) {
  return e ? armored(e, e->pending.len + AGE_CHUNK + AGE_TAG) : 0;
}

/* seal_from seals `len` plaintext bytes as the next chunk, straight into `out` when not armoring. */
static int seal_from(sli_age_enc *e, uint8_t *out, size_t *o, const uint8_t *pt, size_t len, int last) {
  uint8_t nonce[12];
  size_t n = 0;
  sli__age_chunk_nonce(nonce, e->counter, last);
  if (!e->armor) {
    if (!EVP_AEAD_CTX_seal(&e->aead, out + *o, &n, AGE_CHUNK + AGE_TAG, nonce, 12, pt, len, NULL, 0))
      return sli__fail_ssl(&e->err, SLI_E_INTERNAL, "cannot seal payload chunk %llu",
                           (unsigned long long)e->counter);
    *o += n;
  } else {
    uint8_t ct[AGE_CHUNK + AGE_TAG];
    if (!EVP_AEAD_CTX_seal(&e->aead, ct, &n, sizeof(ct), nonce, 12, pt, len, NULL, 0))
      return sli__fail_ssl(&e->err, SLI_E_INTERNAL, "cannot seal payload chunk %llu",
                           (unsigned long long)e->counter);
    emit(e, out, o, ct, n);
  }
  e->counter++;
  return 0;
}

static int seal_chunk(sli_age_enc *e, uint8_t *out, size_t *o, int last) {
  int rc = seal_from(e, out, o, e->pt, e->pt_len, last);
  OPENSSL_cleanse(e->pt, e->pt_len);
  e->pt_len = 0;
  return rc;
}

static void flush_pending(sli_age_enc *e, uint8_t *out, size_t *o) {
  if (!e->pending.len) return;
  emit(e, out, o, e->pending.p, e->pending.len);
  e->pending.len = 0;
}

/* enc_usable checks the arguments every call of the encryptor shares. */
static int enc_usable(sli_age_enc *e, const char *fn, const size_t *out_len) {
  if (!e) return sli__fail(NULL, SLI_E_INVAL, "%s: the encryptor is NULL", fn);
  if (!out_len) return sli__fail(&e->err, SLI_E_INVAL, "%s: out_len is NULL", fn);
  if (e->finished)
    return sli__fail(&e->err, SLI_E_INVAL, "%s: the file is finished (sli_age_enc_final was called)",
                     fn);
  return 0;
}

int sli_age_enc_update(sli_age_enc *e, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len) {
  int rc = enc_usable(e, "sli_age_enc_update", out_len);
  if (rc) return rc;
  if (!in && in_len) return sli__fail(&e->err, SLI_E_INVAL, "sli_age_enc_update: in is NULL");
  size_t bound = sli_age_enc_update_bound(e, in_len);
  if (!out || *out_len < bound) {
    *out_len = bound;
    return sli__fail(&e->err, SLI_E_BUFSIZE,
                     "sli_age_enc_update: the output needs %zu bytes (sli_age_enc_update_bound)", bound);
  }
  size_t o = 0;
  flush_pending(e, out, &o);
  if (e->pt_len == AGE_CHUNK && in_len) { /* more input follows: the full chunk held back is not the last */
    rc = seal_chunk(e, out, &o, 0);
    if (rc) return rc;
  }
  size_t whole = e->pt_len == 0 && in_len ? (in_len - 1) / AGE_CHUNK : 0; /* chunks with more after them */
  if (whole && !e->armor) { /* sealed straight into `out` (armor encodes in order, below) */
    sli__worker *w = sli__age_helper(&e->parallel, &e->worker, whole);
    size_t sealed = sli__age_chunks_run(w, &e->aead, 0, out + o, in, e->counter, whole);
    if (sealed < whole)
      return sli__fail(&e->err, SLI_E_INTERNAL, "cannot seal payload chunk %llu",
                       (unsigned long long)(e->counter + sealed));
    e->counter += whole;
    o += whole * (AGE_CHUNK + AGE_TAG);
    in += whole * AGE_CHUNK;
    in_len -= whole * AGE_CHUNK;
  }
  while (in_len) {
    if (e->pt_len == 0 && in_len > AGE_CHUNK) { /* a whole chunk with more after it: no copy */
      rc = seal_from(e, out, &o, in, AGE_CHUNK, 0);
      if (rc) return rc;
      in += AGE_CHUNK;
      in_len -= AGE_CHUNK;
      continue;
    }
    if (e->pt_len == AGE_CHUNK) { /* more input follows: this full chunk is not the last */
      rc = seal_chunk(e, out, &o, 0);
      if (rc) return rc;
    }
    size_t take = AGE_CHUNK - e->pt_len < in_len ? AGE_CHUNK - e->pt_len : in_len;
    memcpy(e->pt + e->pt_len, in, take);
    e->pt_len += take;
    in += take;
    in_len -= take;
  }
  *out_len = o;
  return 0;
}

int sli_age_enc_final(sli_age_enc *e, uint8_t *out, size_t *out_len) {
  int rc = enc_usable(e, "sli_age_enc_final", out_len);
  if (rc) return rc;
  size_t bound = sli_age_enc_final_bound(e);
  if (!out || *out_len < bound) {
    *out_len = bound;
    return sli__fail(&e->err, SLI_E_BUFSIZE,
                     "sli_age_enc_final: the output needs %zu bytes (sli_age_enc_final_bound)", bound);
  }
  size_t o = 0;
  flush_pending(e, out, &o);
  rc = seal_chunk(e, out, &o, 1);
  if (rc) return rc;
  if (e->armor) sli__age_armor_write_end(&e->aw, out, &o);
  e->finished = 1;
  *out_len = o;
  return 0;
}

const char *sli_age_enc_error(const sli_age_enc *e) { return e ? sli__error_msg(&e->err) : NULL; }

void sli_age_enc_free(sli_age_enc *e) {
  if (!e) return;
  sli__worker_free(e->worker);
  EVP_AEAD_CTX_cleanup(&e->aead);
  sli__age_buf_wipe(&e->pending);
  OPENSSL_cleanse(e, sizeof(*e));
  free(e);
}
