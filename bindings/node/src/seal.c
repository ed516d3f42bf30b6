/* seal.c — sealed blobs and keyrings (api/sli.h, "Sealed blobs"): synchronous seal/open straight
 * into a new Buffer, and asynchronous ones on libuv's thread pool (a keyring is thread-safe). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sli_node.h"

/* keyringGenerate() → handle */
static napi_value kr_generate(napi_env env, napi_callback_info info) {
  (void)info;
  sli_keyring *kr = NULL;
  int rc = sli_keyring_generate(&kr);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_KEYRING, kr);
}

/* keyringLoad(path) → handle */
static napi_value kr_load(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  char *path;
  if (sn_get_string(env, argv[0], "path", 0, &path)) return NULL;
  sli_keyring *kr = NULL;
  char msg[512] = "";
  int rc = sli_keyring_load_file(&kr, path, msg, sizeof(msg));
  free(path);
  if (rc < 0) return sn_throw_sli(env, rc, msg[0] ? msg : sli_last_error());
  return sn_handle_new(env, SN_KEYRING, kr);
}

/* keyringSave(h, path) */
static napi_value kr_save(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEYRING, "keyring");
  char *path;
  if (!h || sn_get_string(env, argv[1], "path", 0, &path)) return NULL;
  int rc = sli_keyring_save_file(h->p, path);
  free(path);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_undef(env);
}

/* keyringRotate(h) → a new handle */
static napi_value kr_rotate(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEYRING, "keyring");
  if (!h) return NULL;
  sli_keyring *kr = NULL;
  int rc = sli_keyring_rotate(&kr, h->p);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_KEYRING, kr);
}

/* keyringKeys(h) → [{id, created}], the primary first */
static napi_value kr_keys(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEYRING, "keyring");
  if (!h) return NULL;
  size_t n = sli_keyring_count(h->p);
  napi_value arr;
  napi_create_array_with_length(env, n, &arr);
  for (size_t i = 0; i < n; i++) {
    napi_value o;
    napi_create_object(env, &o);
    napi_set_named_property(env, o, "id", sn_num(env, sli_keyring_key_id(h->p, i)));
    napi_set_named_property(env, o, "created", sn_num(env, (double)sli_keyring_key_created(h->p, i)));
    napi_set_element(env, arr, (uint32_t)i, o);
  }
  return arr;
}

/* out_arg(v, need) → the caller's Buffer `v` when it holds exactly `need` bytes (lib/seal.js
 * passes one from Buffer.allocUnsafe's pool: small outputs then cost no allocation of their own) */
static int out_arg(napi_env env, napi_value v, size_t need, void **data, napi_value *res) {
  bool is = false;
  size_t len = 0;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_buffer_info(env, v, data, &len) != napi_ok || len != need) return 0;
  *res = v;
  return 1;
}

/* seal(h, data, ad, out?) → Buffer (`out` itself when given with the right size) */
static napi_value do_seal(napi_env env, napi_callback_info info) {
  SN_ARGS(4);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEYRING, "keyring");
  if (!h) return NULL;
  sn_bytes in, ad;
  if (sn_get_bytes(env, argv[1], "data", 0, &in)) return NULL;
  if (sn_get_bytes(env, argv[2], "ad", 1, &ad)) {
    sn_bytes_free(&in);
    return NULL;
  }
  napi_value res = NULL;
  void *out = NULL;
  size_t n = in.len + SLI_SEAL_OVERHEAD;
  if (!out_arg(env, argv[3], n, &out, &res) && napi_create_buffer(env, n, &out, &res) != napi_ok) {
    res = sn_throw_sli(env, SLI_E_NOMEM, "cannot allocate the sealed blob");
  } else {
    int rc = sli_seal(h->p, out, &n, in.ptr, in.len, ad.ptr, ad.len);
    if (rc < 0) res = sn_throw_sli(env, rc, sli_last_error());
  }
  sn_bytes_free(&in);
  sn_bytes_free(&ad);
  return res;
}

/* open(h, blob, ad, out?) → Buffer (`out` itself when given with the right size) */
static napi_value do_open(napi_env env, napi_callback_info info) {
  SN_ARGS(4);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEYRING, "keyring");
  if (!h) return NULL;
  sn_bytes in, ad;
  if (sn_get_bytes(env, argv[1], "blob", 0, &in)) return NULL;
  if (sn_get_bytes(env, argv[2], "ad", 1, &ad)) {
    sn_bytes_free(&in);
    return NULL;
  }
  napi_value res = NULL;
  void *out = NULL;
  uint8_t dummy[1];
  size_t n = in.len > SLI_SEAL_OVERHEAD ? in.len - SLI_SEAL_OVERHEAD : 0;
  if (!out_arg(env, argv[3], n, &out, &res) && napi_create_buffer(env, n, &out, &res) != napi_ok) {
    res = sn_throw_sli(env, SLI_E_NOMEM, "cannot allocate the plaintext");
  } else {
    int rc = sli_open(h->p, out && n ? out : dummy, &n, in.ptr, in.len, ad.ptr, ad.len);
    if (rc < 0) res = sn_throw_sli(env, rc, sli_last_error());
  }
  sn_bytes_free(&in);
  sn_bytes_free(&ad);
  return res;
}

static int overlaps(const void *a, size_t alen, const void *b, size_t blen) {
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return a && b && alen && blen && x < y + blen && y < x + alen;
}

/* sealInto(h, target, data, ad) / openInto(h, target, blob, ad) → bytes written at the start of
 * `target` (a Buffer or Uint8Array of at least the size needed, else SLI_E_BUFSIZE) */
static napi_value into(napi_env env, napi_callback_info info, int opening) {
  SN_ARGS(4);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEYRING, "keyring");
  if (!h) return NULL;
  bool is = false;
  void *out = NULL;
  size_t cap = 0;
  napi_typedarray_type tt = napi_int8_array;
  if (napi_is_typedarray(env, argv[1], &is) == napi_ok && is) {
    napi_value ab;
    size_t off;
    napi_get_typedarray_info(env, argv[1], &tt, &cap, &out, &ab, &off);
  }
  if (!is || tt != napi_uint8_array) return sn_throw_type(env, "%s must be a Buffer or a Uint8Array", "target");
  sn_bytes in, ad;
  if (sn_get_bytes(env, argv[2], opening ? "blob" : "data", 0, &in)) return NULL;
  if (sn_get_bytes(env, argv[3], "ad", 1, &ad)) {
    sn_bytes_free(&in);
    return NULL;
  }
  /* the engine refuses an output over its input only after it has begun (a seal leaves the
   * caller's plaintext zeroed, an open says "modified"): refuse overlap first, by name */
  if (overlaps(out, cap, in.ptr, in.len) || overlaps(out, cap, ad.ptr, ad.len)) {
    sn_bytes_free(&in);
    sn_bytes_free(&ad);
    return sn_throw_sli(env, SLI_E_INVAL, opening ? "openInto: target overlaps the blob or the ad"
                                                  : "sealInto: target overlaps the data or the ad");
  }
  uint8_t dummy[1];
  size_t n = cap;
  int rc = opening ? sli_open(h->p, out ? out : dummy, &n, in.ptr, in.len, ad.ptr, ad.len)
                   : sli_seal(h->p, out ? out : dummy, &n, in.ptr, in.len, ad.ptr, ad.len);
  sn_bytes_free(&in);
  sn_bytes_free(&ad);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_num(env, (double)n);
}

static napi_value seal_into(napi_env env, napi_callback_info info) {
  return into(env, info, 0);
}

static napi_value open_into(napi_env env, napi_callback_info info) {
  return into(env, info, 1);
}

/* sealedKeyId(blob) → number */
static napi_value sealed_key_id(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_bytes in;
  if (sn_get_bytes(env, argv[0], "blob", 0, &in)) return NULL;
  uint32_t id = 0;
  int rc = sli_sealed_key_id(in.ptr, in.len, &id);
  sn_bytes_free(&in);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_num(env, id);
}

/* ---- asynchronous seal and open ---------------------------------------------------------------- */

typedef struct seal_work {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref handle_ref; /* keeps the keyring's handle object (and so its finalizer) away */
  sn_handle *h;
  int opening;
  uint8_t *in, *ad, *out;
  size_t in_len, ad_len, out_len;
  int rc;
  char msg[512];
} seal_work;

static void seal_execute(napi_env env, void *data) {
  (void)env;
  seal_work *w = data;
  static const uint8_t empty[1] = {0};
  const uint8_t *in = w->in ? w->in : empty, *ad = w->ad ? w->ad : empty;
  w->out_len = w->opening ? (w->in_len > SLI_SEAL_OVERHEAD ? w->in_len - SLI_SEAL_OVERHEAD : 0)
                          : w->in_len + SLI_SEAL_OVERHEAD;
  w->out = malloc(w->out_len ? w->out_len : 1);
  if (!w->out) {
    w->rc = SLI_E_NOMEM;
    snprintf(w->msg, sizeof(w->msg), "out of memory");
    return;
  }
  w->rc = w->opening ? sli_open(w->h->p, w->out, &w->out_len, in, w->in_len, ad, w->ad_len)
                     : sli_seal(w->h->p, w->out, &w->out_len, in, w->in_len, ad, w->ad_len);
  if (w->rc < 0) {
    const char *m = sli_last_error(); /* this pool thread's own message */
    snprintf(w->msg, sizeof(w->msg), "%s", m ? m : "");
  }
}

static void wipe_free(uint8_t *p, size_t n) {
  if (!p) return;
  memset(p, 0, n);
  free(p);
}

static void seal_complete(napi_env env, napi_status status, void *data) {
  seal_work *w = data;
  napi_value v = NULL;
  int ok = 0;
  if (status != napi_ok && w->rc == 0) {
    w->rc = SLI_E_INTERNAL;
    snprintf(w->msg, sizeof(w->msg), "the work was cancelled");
  }
  if (w->rc == 0) {
    if (napi_create_buffer_copy(env, w->out_len, w->out, NULL, &v) == napi_ok) ok = 1;
    else {
      w->rc = SLI_E_NOMEM;
      snprintf(w->msg, sizeof(w->msg), "cannot allocate the result");
    }
  }
  if (ok) napi_resolve_deferred(env, w->deferred, v);
  else napi_reject_deferred(env, w->deferred, sn_make_error(env, w->rc, w->msg));
  if (--w->h->busy == 0 && w->h->closed) sn_handle_release(w->h);
  napi_delete_reference(env, w->handle_ref);
  napi_delete_async_work(env, w->work);
  wipe_free(w->in, w->in_len);
  wipe_free(w->ad, w->ad_len);
  wipe_free(w->out, w->out_len);
  free(w);
}

static uint8_t *dup_bytes(const sn_bytes *b) {
  uint8_t *p = malloc(b->len ? b->len : 1);
  if (p && b->len) memcpy(p, b->ptr, b->len);
  return p;
}

/* sealAsync(h, data, ad) / openAsync(h, blob, ad) → Promise<Buffer>; the inputs are copied. */
static napi_value async_op(napi_env env, napi_callback_info info, int opening) {
  SN_ARGS(3);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEYRING, "keyring");
  if (!h) return NULL;
  sn_bytes in, ad;
  if (sn_get_bytes(env, argv[1], opening ? "blob" : "data", 0, &in)) return NULL;
  if (sn_get_bytes(env, argv[2], "ad", 1, &ad)) {
    sn_bytes_free(&in);
    return NULL;
  }
  seal_work *w = calloc(1, sizeof(*w));
  napi_value promise = NULL, name;
  if (w) {
    w->h = h;
    w->opening = opening;
    w->in = dup_bytes(&in);
    w->ad = dup_bytes(&ad);
    w->in_len = in.len;
    w->ad_len = ad.len;
  }
  sn_bytes_free(&in);
  sn_bytes_free(&ad);
  if (!w || !w->in || !w->ad) {
    if (w) {
      wipe_free(w->in, w->in_len);
      wipe_free(w->ad, w->ad_len);
      free(w);
    }
    return sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
  }
  napi_create_string_utf8(env, opening ? "sli.open" : "sli.seal", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_reference(env, argv[0], 1, &w->handle_ref) != napi_ok ||
      napi_create_async_work(env, NULL, name, seal_execute, seal_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    /* cannot happen short of a broken runtime; the promise (if any) stays pending */
    return sn_throw_sli(env, SLI_E_INTERNAL, "cannot queue the work");
  }
  h->busy++;
  return promise;
}

static napi_value seal_async(napi_env env, napi_callback_info info) {
  return async_op(env, info, 0);
}

static napi_value open_async(napi_env env, napi_callback_info info) {
  return async_op(env, info, 1);
}

int sn_register_seal(napi_env env, napi_value exports) {
  return sn_def(env, exports, "keyringGenerate", kr_generate) ||
         sn_def(env, exports, "keyringLoad", kr_load) ||
         sn_def(env, exports, "keyringSave", kr_save) ||
         sn_def(env, exports, "keyringRotate", kr_rotate) ||
         sn_def(env, exports, "keyringKeys", kr_keys) || sn_def(env, exports, "seal", do_seal) ||
         sn_def(env, exports, "open", do_open) || sn_def(env, exports, "sealInto", seal_into) ||
         sn_def(env, exports, "openInto", open_into) || sn_def(env, exports, "sealAsync", seal_async) ||
         sn_def(env, exports, "openAsync", open_async) ||
         sn_def(env, exports, "sealedKeyId", sealed_key_id);
}
