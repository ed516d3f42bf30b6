/* age.c — age v1 files (api/sli.h, "age v1 file encryption"): recipients, identities, and the
 * encryptor and decryptor that lib/age.js drives as stream.Transforms (buffers in, buffers out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sli_node.h"

/* ---- recipients and identities ----------------------------------------------------------------- */

static napi_value rcpt_parse(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  char *s;
  if (sn_get_string(env, argv[0], "recipient", 0, &s)) return NULL;
  sli_age_recipient *r = NULL;
  int rc = sli_age_recipient_parse(&r, s);
  sn_string_free(s);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_RECIPIENT, r);
}

static napi_value rcpt_scrypt(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  char *pw;
  int64_t log2n;
  if (sn_get_int(env, argv[1], "log2N", 0, &log2n)) return NULL;
  if (sn_get_string(env, argv[0], "passphrase", 0, &pw)) return NULL;
  sli_age_recipient *r = NULL;
  int rc = sli_age_recipient_scrypt(&r, pw, (int)log2n);
  sn_string_free(pw);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_RECIPIENT, r);
}

static napi_value rcpt_from_key(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *k = sn_handle_get(env, argv[0], SN_KEY, "key");
  if (!k) return NULL;
  sli_age_recipient *r = NULL;
  int rc = sli_age_recipient_from_key(&r, k->p);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_RECIPIENT, r);
}

static napi_value rcpt_encode(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_RECIPIENT, "recipient");
  if (!h) return NULL;
  char buf[3000];
  int rc = sli_age_recipient_encode(h->p, buf, sizeof(buf));
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_str(env, buf);
}

static napi_value id_generate(napi_env env, napi_callback_info info) {
  (void)info;
  sli_age_identity *id = NULL;
  int rc = sli_age_identity_generate(&id);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_IDENTITY, id);
}

static napi_value id_parse(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  char *s;
  if (sn_get_string(env, argv[0], "identity", 0, &s)) return NULL;
  sli_age_identity *id = NULL;
  int rc = sli_age_identity_parse(&id, s);
  sn_string_free(s);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_IDENTITY, id);
}

static napi_value id_scrypt(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  char *pw;
  if (sn_get_string(env, argv[0], "passphrase", 0, &pw)) return NULL;
  sli_age_identity *id = NULL;
  int rc = sli_age_identity_scrypt(&id, pw);
  sn_string_free(pw);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_IDENTITY, id);
}

static napi_value id_from_key(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *k = sn_handle_get(env, argv[0], SN_KEY, "key");
  if (!k) return NULL;
  sli_age_identity *id = NULL;
  int rc = sli_age_identity_from_key(&id, k->p);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_IDENTITY, id);
}

static napi_value id_recipient(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_IDENTITY, "identity");
  if (!h) return NULL;
  sli_age_recipient *r = NULL;
  int rc = sli_age_identity_recipient(h->p, &r);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_RECIPIENT, r);
}

static napi_value id_encode(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_IDENTITY, "identity");
  if (!h) return NULL;
  char buf[128];
  int rc = sli_age_identity_encode(h->p, buf, sizeof(buf));
  napi_value v = rc < 0 ? sn_throw_sli(env, rc, sli_last_error()) : sn_str(env, buf);
  memset(buf, 0, sizeof(buf));
  return v;
}

/* ---- encryptor and decryptor ------------------------------------------------------------------- */

/* handles_of(array of handles of `kind`) → a malloc'd array of their libsli pointers */
static const void **handles_of(napi_env env, napi_value arr, int kind, const char *what, size_t *n) {
  bool is = false;
  uint32_t len = 0;
  if (napi_is_array(env, arr, &is) != napi_ok || !is) {
    sn_throw_type(env, "%s must be an array", what);
    return NULL;
  }
  napi_get_array_length(env, arr, &len);
  const void **ps = calloc(len ? len : 1, sizeof(*ps));
  if (!ps) {
    sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < len; i++) {
    napi_value v;
    napi_get_element(env, arr, i, &v);
    sn_handle *h = sn_handle_get(env, v, kind, what);
    if (!h) {
      free(ps);
      return NULL;
    }
    ps[i] = h->p;
  }
  *n = len;
  return ps;
}

/* encNew([recipient handles], flags) */
static napi_value enc_new(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  int64_t flags;
  size_t n = 0;
  if (sn_get_int(env, argv[1], "flags", 0, &flags)) return NULL;
  const void **rs = handles_of(env, argv[0], SN_RECIPIENT, "recipients", &n);
  if (!rs) return NULL;
  sli_age_enc *e = NULL;
  int rc = sli_age_enc_new(&e, (const sli_age_recipient *const *)rs, n, (uint32_t)flags);
  free(rs);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_AGE_ENC, e);
}

/* decNew([identity handles], flags) */
static napi_value dec_new(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  int64_t flags;
  size_t n = 0;
  if (sn_get_int(env, argv[1], "flags", 0, &flags)) return NULL;
  const void **ids = handles_of(env, argv[0], SN_IDENTITY, "identities", &n);
  if (!ids) return NULL;
  sli_age_dec *d = NULL;
  int rc = sli_age_dec_new(&d, (const sli_age_identity *const *)ids, n, (uint32_t)flags);
  free(ids);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_AGE_DEC, d);
}

/* encBound(h, n) / decBound(h, n): the output size an update of n bytes needs; encFinalBound(h) */
static napi_value bound(napi_env env, napi_callback_info info, int kind, int final) {
  SN_ARGS(2);
  sn_handle *h = sn_handle_get(env, argv[0], kind, kind == SN_AGE_ENC ? "encryptor" : "decryptor");
  if (!h) return NULL;
  double n = 0;
  if (!final && napi_get_value_double(env, argv[1], &n) != napi_ok)
    return sn_throw_type(env, "%s must be a number", "length");
  size_t b = kind == SN_AGE_ENC ? (final ? sli_age_enc_final_bound(h->p)
                                         : sli_age_enc_update_bound(h->p, (size_t)n))
                                : (final ? SLI_AGE_CHUNK_BYTES
                                         : sli_age_dec_update_bound(h->p, (size_t)n));
  return sn_num(env, (double)b);
}

static napi_value enc_bound(napi_env env, napi_callback_info info) {
  return bound(env, info, SN_AGE_ENC, 0);
}
static napi_value enc_final_bound(napi_env env, napi_callback_info info) {
  return bound(env, info, SN_AGE_ENC, 1);
}
static napi_value dec_bound(napi_env env, napi_callback_info info) {
  return bound(env, info, SN_AGE_DEC, 0);
}
static napi_value dec_final_bound(napi_env env, napi_callback_info info) {
  return bound(env, info, SN_AGE_DEC, 1);
}

static int out_buffer(napi_env env, napi_value v, void **p, size_t *cap) {
  bool is = false;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) {
    sn_throw_type(env, "%s must be a Buffer", "out");
    return -1;
  }
  napi_get_buffer_info(env, v, p, cap);
  return 0;
}

static napi_value age_fail(napi_env env, int kind, void *p, int rc) {
  const char *m = kind == SN_AGE_ENC ? sli_age_enc_error(p) : sli_age_dec_error(p);
  return sn_throw_sli(env, rc, m ? m : sli_last_error());
}

/* encUpdate(h, out, in) / decUpdate(h, out, in) → bytes written into out (at least the bound) */
static napi_value update(napi_env env, napi_callback_info info, int kind) {
  SN_ARGS(3);
  sn_handle *h = sn_handle_get(env, argv[0], kind, kind == SN_AGE_ENC ? "encryptor" : "decryptor");
  if (!h) return NULL;
  void *out = NULL;
  size_t cap = 0;
  sn_bytes in;
  if (h->busy) return sn_throw_sli(env, SLI_E_STATE, "an update is running on this object");
  if (out_buffer(env, argv[1], &out, &cap) || sn_get_bytes(env, argv[2], "data", 0, &in))
    return NULL;
  uint8_t dummy[1];
  size_t n = cap;
  int rc = kind == SN_AGE_ENC ? sli_age_enc_update(h->p, out ? out : dummy, &n, in.ptr, in.len)
                              : sli_age_dec_update(h->p, out ? out : dummy, &n, in.ptr, in.len);
  sn_bytes_free(&in);
  if (rc < 0) return age_fail(env, kind, h->p, rc);
  return sn_num(env, (double)n);
}

static napi_value enc_update(napi_env env, napi_callback_info info) {
  return update(env, info, SN_AGE_ENC);
}
static napi_value dec_update(napi_env env, napi_callback_info info) {
  return update(env, info, SN_AGE_DEC);
}

/* encFinal(h, out) / decFinal(h, out) → bytes written; decFinal is where the file is authenticated */
static napi_value final(napi_env env, napi_callback_info info, int kind) {
  SN_ARGS(2);
  sn_handle *h = sn_handle_get(env, argv[0], kind, kind == SN_AGE_ENC ? "encryptor" : "decryptor");
  if (!h) return NULL;
  void *out = NULL;
  size_t cap = 0;
  if (h->busy) return sn_throw_sli(env, SLI_E_STATE, "an update is running on this object");
  if (out_buffer(env, argv[1], &out, &cap)) return NULL;
  uint8_t dummy[1];
  size_t n = cap;
  int rc = kind == SN_AGE_ENC ? sli_age_enc_final(h->p, out ? out : dummy, &n)
                              : sli_age_dec_final(h->p, out ? out : dummy, &n);
  if (rc < 0) return age_fail(env, kind, h->p, rc);
  return sn_num(env, (double)n);
}

static napi_value enc_final(napi_env env, napi_callback_info info) {
  return final(env, info, SN_AGE_ENC);
}
static napi_value dec_final(napi_env env, napi_callback_info info) {
  return final(env, info, SN_AGE_DEC);
}

/* ---- updates on libuv's thread pool -------------------------------------------------------------
 * encUpdateAsync(h, out, in, callback) / decUpdateAsync(…): the update runs on a pool thread while
 * the main thread goes on reading and writing; callback(err, bytesWritten) comes back on the main
 * thread. The handle, both buffers and the callback are held by references until then (as zlib
 * holds its chunks: a caller must not change a buffer it handed over). One update in flight per
 * encryptor or decryptor: lib/age.js waits for each before the next. */
typedef struct age_work {
  napi_async_work work;
  napi_ref handle_ref, out_ref, in_ref, cb_ref;
  sn_handle *h;
  int kind;
  uint8_t *out;
  const uint8_t *in;
  size_t cap, in_len, n;
  int rc;
  char msg[512];
} age_work;

static void age_execute(napi_env env, void *data) {
  (void)env;
  age_work *w = data;
  static uint8_t dummy[1];
  static const uint8_t empty[1];
  w->n = w->cap;
  w->rc = w->kind == SN_AGE_ENC
              ? sli_age_enc_update(w->h->p, w->out ? w->out : dummy, &w->n, w->in ? w->in : empty, w->in_len)
              : sli_age_dec_update(w->h->p, w->out ? w->out : dummy, &w->n, w->in ? w->in : empty, w->in_len);
  if (w->rc < 0) {
    const char *m = w->kind == SN_AGE_ENC ? sli_age_enc_error(w->h->p) : sli_age_dec_error(w->h->p);
    if (!m) m = sli_last_error();
    snprintf(w->msg, sizeof(w->msg), "%s", m ? m : "");
  }
}

static void age_complete(napi_env env, napi_status status, void *data) {
  age_work *w = data;
  napi_value cb = NULL, argv[2], global;
  if (status != napi_ok && w->rc == 0) {
    w->rc = SLI_E_INTERNAL;
    snprintf(w->msg, sizeof(w->msg), "the work was cancelled");
  }
  if (--w->h->busy == 0 && w->h->closed) sn_handle_release(w->h);
  if (w->rc < 0) {
    argv[0] = sn_make_error(env, w->rc, w->msg);
    argv[1] = sn_undef(env);
  } else {
    napi_get_null(env, &argv[0]);
    argv[1] = sn_num(env, (double)w->n);
  }
  napi_get_reference_value(env, w->cb_ref, &cb);
  napi_get_global(env, &global);
  napi_delete_reference(env, w->handle_ref);
  napi_delete_reference(env, w->out_ref);
  napi_delete_reference(env, w->in_ref);
  napi_delete_reference(env, w->cb_ref);
  napi_delete_async_work(env, w->work);
  free(w);
  if (cb) napi_call_function(env, global, cb, 2, argv, NULL); /* an exception goes up as uncaught */
}

static napi_value update_async(napi_env env, napi_callback_info info, int kind) {
  SN_ARGS(4);
  sn_handle *h = sn_handle_get(env, argv[0], kind, kind == SN_AGE_ENC ? "encryptor" : "decryptor");
  if (!h) return NULL;
  bool is = false;
  napi_valuetype t;
  void *out = NULL, *in = NULL;
  size_t cap = 0, in_len = 0;
  if (napi_is_buffer(env, argv[1], &is) != napi_ok || !is) return sn_throw_type(env, "%s must be a Buffer", "out");
  napi_get_buffer_info(env, argv[1], &out, &cap);
  if (napi_is_buffer(env, argv[2], &is) != napi_ok || !is) return sn_throw_type(env, "%s must be a Buffer", "data");
  napi_get_buffer_info(env, argv[2], &in, &in_len);
  napi_typeof(env, argv[3], &t);
  if (t != napi_function) return sn_throw_type(env, "%s must be a function", "callback");
  if (h->busy) return sn_throw_sli(env, SLI_E_STATE, "an update is already running on this object");
  age_work *w = calloc(1, sizeof(*w));
  if (!w) return sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
  w->h = h;
  w->kind = kind;
  w->out = out;
  w->cap = cap;
  w->in = in;
  w->in_len = in_len;
  napi_value name;
  napi_create_string_utf8(env, kind == SN_AGE_ENC ? "sli.age.encrypt" : "sli.age.decrypt", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[0], 1, &w->handle_ref) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &w->out_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &w->in_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &w->cb_ref) != napi_ok ||
      napi_create_async_work(env, NULL, name, age_execute, age_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok)
    return sn_throw_sli(env, SLI_E_INTERNAL, "cannot queue the work"); /* a broken runtime only */
  h->busy++;
  return sn_undef(env);
}

static napi_value enc_update_async(napi_env env, napi_callback_info info) {
  return update_async(env, info, SN_AGE_ENC);
}
static napi_value dec_update_async(napi_env env, napi_callback_info info) {
  return update_async(env, info, SN_AGE_DEC);
}

int sn_register_age(napi_env env, napi_value exports) {
  return sn_def(env, exports, "recipientParse", rcpt_parse) ||
         sn_def(env, exports, "recipientScrypt", rcpt_scrypt) ||
         sn_def(env, exports, "recipientFromKey", rcpt_from_key) ||
         sn_def(env, exports, "recipientEncode", rcpt_encode) ||
         sn_def(env, exports, "identityGenerate", id_generate) ||
         sn_def(env, exports, "identityParse", id_parse) ||
         sn_def(env, exports, "identityScrypt", id_scrypt) ||
         sn_def(env, exports, "identityFromKey", id_from_key) ||
         sn_def(env, exports, "identityRecipient", id_recipient) ||
         sn_def(env, exports, "identityEncode", id_encode) ||
         sn_def(env, exports, "encNew", enc_new) || sn_def(env, exports, "encBound", enc_bound) ||
         sn_def(env, exports, "encFinalBound", enc_final_bound) ||
         sn_def(env, exports, "encUpdate", enc_update) ||
         sn_def(env, exports, "encUpdateAsync", enc_update_async) ||
         sn_def(env, exports, "decUpdateAsync", dec_update_async) ||
         sn_def(env, exports, "encFinal", enc_final) || sn_def(env, exports, "decNew", dec_new) ||
         sn_def(env, exports, "decBound", dec_bound) ||
         sn_def(env, exports, "decFinalBound", dec_final_bound) ||
         sn_def(env, exports, "decUpdate", dec_update) || sn_def(env, exports, "decFinal", dec_final);
}
