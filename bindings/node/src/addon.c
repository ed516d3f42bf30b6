/* addon.c — the module: SliError, the handles that wrap libsli objects, argument conversion, and
 * the registration of each concern's functions (seal.c, age.c, keys.c, certs.c, tls.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sli_node.h"

/* Per-environment (main thread, each worker) state: the SliError class lib/errors.js hands over. */
typedef struct sn_instance {
  napi_ref error_class;
} sn_instance;

static const napi_type_tag handle_tag = {0x736c692d6e6f6465ULL, 0x68616e646c650001ULL};
static const uint8_t empty_byte[1] = {0};

napi_value sn_undef(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value sn_str(napi_env env, const char *s) {
  napi_value v;
  if (!s) {
    napi_get_null(env, &v);
    return v;
  }
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

napi_value sn_num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

napi_value sn_bool(napi_env env, int b) {
  napi_value v;
  napi_get_boolean(env, b != 0, &v);
  return v;
}

napi_value sn_make_error(napi_env env, int code, const char *msg) {
  if (!msg || !*msg) msg = sli_strerror(code);
  sn_instance *inst = NULL;
  napi_value cls = NULL, err = NULL;
  napi_value args[3] = {sn_num(env, code), sn_str(env, sli_err_name(code)), sn_str(env, msg)};
  if (napi_get_instance_data(env, (void **)&inst) == napi_ok && inst && inst->error_class &&
      napi_get_reference_value(env, inst->error_class, &cls) == napi_ok && cls &&
      napi_new_instance(env, cls, 3, args, &err) == napi_ok)
    return err;
  /* before lib/errors.js registered its class: a plain Error with the same fields */
  napi_create_error(env, args[1], args[2], &err);
  napi_set_named_property(env, err, "errno", args[0]);
  return err;
}

napi_value sn_throw_sli(napi_env env, int code, const char *msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw(env, sn_make_error(env, code, msg));
  return NULL;
}

napi_value sn_throw_type(napi_env env, const char *fmt, const char *what) {
  char buf[256];
  snprintf(buf, sizeof(buf), fmt, what);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", buf);
  return NULL;
}

void sn_handle_release(sn_handle *h) {
  void *p = h->p;
  h->p = NULL;
  if (!p) return;
  switch (h->kind) {
    case SN_KEYRING: sli_keyring_free(p); break;
    case SN_KEY: sli_key_free(p); break;
    case SN_CERT: sli_cert_free(p); break;
    case SN_RECIPIENT: sli_age_recipient_free(p); break;
    case SN_IDENTITY: sli_age_identity_free(p); break;
    case SN_AGE_ENC: sli_age_enc_free(p); break;
    case SN_AGE_DEC: sli_age_dec_free(p); break;
    case SN_SIGNER: sli_signer_free(p); break;
    case SN_CTX: sli_ctx_free(p); break;
    case SN_CONN: sn_conn_release(p); break;
  }
}

/* The GC finalizer: frees the libsli object unless close() did. An asynchronous work keeps a
 * reference to the handle object, so the finalizer never runs while one is in flight. */
static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  sn_handle *h = data;
  h->closed = 1;
  sn_handle_release(h);
  free(h);
}

napi_value sn_handle_new(napi_env env, int kind, void *p) {
  napi_value obj;
  sn_handle *h = calloc(1, sizeof(*h));
  if (!h) {
    sn_handle_release(&(sn_handle){.kind = kind, .p = p});
    return sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
  }
  h->kind = kind;
  h->p = p;
  if (napi_create_object(env, &obj) != napi_ok ||
      napi_type_tag_object(env, obj, &handle_tag) != napi_ok ||
      napi_wrap(env, obj, h, handle_finalize, NULL, NULL) != napi_ok) {
    handle_finalize(env, h, NULL);
    return sn_throw_sli(env, SLI_E_INTERNAL, "cannot wrap a libsli object");
  }
  return obj;
}

static const char *kind_name(int kind) {
  switch (kind) {
    case SN_KEYRING: return "keyring";
    case SN_KEY: return "key";
    case SN_CERT: return "certificate";
    case SN_RECIPIENT: return "recipient";
    case SN_IDENTITY: return "identity";
    case SN_AGE_ENC: return "age encryptor";
    case SN_AGE_DEC: return "age decryptor";
    case SN_SIGNER: return "signer";
    case SN_CTX: return "TLS context";
    case SN_CONN: return "TLS connection";
  }
  return "object";
}

sn_handle *sn_handle_any(napi_env env, napi_value v) {
  bool ok = false;
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_object) return NULL;
  if (napi_check_object_type_tag(env, v, &handle_tag, &ok) != napi_ok || !ok) return NULL;
  if (napi_unwrap(env, v, &data) != napi_ok) return NULL;
  return data;
}

sn_handle *sn_handle_get(napi_env env, napi_value v, int kind, const char *what) {
  sn_handle *h = sn_handle_any(env, v);
  if (!h || h->kind != kind) {
    char buf[128];
    snprintf(buf, sizeof(buf), "%s must be a %s", what ? what : "the argument", kind_name(kind));
    sn_throw_type(env, "%s", buf);
    return NULL;
  }
  if (h->closed || !h->p) {
    char buf[128];
    snprintf(buf, sizeof(buf), "the %s is closed", kind_name(kind));
    sn_throw_sli(env, SLI_E_STATE, buf);
    return NULL;
  }
  return h;
}

int sn_get_bytes(napi_env env, napi_value v, const char *what, int optional, sn_bytes *out) {
  napi_valuetype t;
  bool is = false;
  void *data = NULL;
  size_t len = 0;
  out->ptr = empty_byte;
  out->len = 0;
  out->owned = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (optional && (t == napi_undefined || t == napi_null)) return 0;
  if (t == napi_string) {
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
    uint8_t *p = malloc(len + 1);
    if (!p) {
      sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
      return -1;
    }
    napi_get_value_string_utf8(env, v, (char *)p, len + 1, &len);
    out->owned = p;
    out->ptr = p;
    out->len = len;
    return 0;
  }
  if (t == napi_object) {
    if (napi_is_buffer(env, v, &is) == napi_ok && is) {
      napi_get_buffer_info(env, v, &data, &len);
    } else if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
      napi_typedarray_type tt;
      size_t n = 0, off = 0;
      napi_value ab;
      napi_get_typedarray_info(env, v, &tt, &n, &data, &ab, &off);
      static const size_t width[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
      len = n * ((size_t)tt < sizeof(width) / sizeof(width[0]) ? width[tt] : 1);
    } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
      napi_value ab;
      size_t off = 0;
      napi_get_dataview_info(env, v, &len, &data, &ab, &off);
    } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
      napi_get_arraybuffer_info(env, v, &data, &len);
    } else {
      goto bad;
    }
    if (data && len) {
      out->ptr = data;
      out->len = len;
    }
    return 0;
  }
bad:
  sn_throw_type(env, optional ? "%s must be a Buffer, a Uint8Array, a string, undefined or null"
                              : "%s must be a Buffer, a Uint8Array or a string",
                what);
  return -1;
}

void sn_bytes_free(sn_bytes *b) {
  if (b->owned) {
    memset(b->owned, 0, b->len);
    free(b->owned);
  }
  b->owned = NULL;
}

int sn_get_string(napi_env env, napi_value v, const char *what, int optional, char **out) {
  napi_valuetype t;
  size_t len = 0;
  *out = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (optional && (t == napi_undefined || t == napi_null)) return 0;
  if (t == napi_object) { /* a Buffer holding a passphrase, say */
    sn_bytes b;
    if (sn_get_bytes(env, v, what, 0, &b)) return -1;
    if (memchr(b.ptr, 0, b.len)) {
      sn_bytes_free(&b);
      sn_throw_type(env, "%s must not contain a NUL byte", what);
      return -1;
    }
    char *s = malloc(b.len + 1);
    if (!s) {
      sn_bytes_free(&b);
      sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
      return -1;
    }
    memcpy(s, b.ptr, b.len);
    s[b.len] = 0;
    sn_bytes_free(&b);
    *out = s;
    return 0;
  }
  if (t != napi_string) {
    sn_throw_type(env, optional ? "%s must be a string, undefined or null" : "%s must be a string",
                  what);
    return -1;
  }
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
  char *s = malloc(len + 1);
  if (!s) {
    sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
    return -1;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (strlen(s) != len) {
    sn_string_free(s);
    sn_throw_type(env, "%s must not contain a NUL character", what);
    return -1;
  }
  *out = s;
  return 0;
}

void sn_string_free(char *s) {
  if (!s) return;
  memset(s, 0, strlen(s));
  free(s);
}

int sn_get_int(napi_env env, napi_value v, const char *what, int64_t dflt, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_undefined || t == napi_null) {
    *out = dflt;
    return 0;
  }
  double d;
  if (t != napi_number || napi_get_value_double(env, v, &d) != napi_ok || d != (double)(int64_t)d ||
      d < -2147483648.0 || d > 2147483647.0) {
    sn_throw_type(env, "%s must be an integer", what);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

int sn_get_flag(napi_env env, napi_value v, int *out) {
  bool b = false;
  napi_value coerced;
  if (napi_coerce_to_bool(env, v, &coerced) != napi_ok) return -1;
  napi_get_value_bool(env, coerced, &b);
  *out = b;
  return 0;
}

napi_value sn_take_alloc(napi_env env, char *p, size_t len) {
  napi_value v;
  size_t n = len;
  while (n && p[n - 1] == 0) n--;
  napi_status st = napi_create_string_utf8(env, p, n, &v);
  sli_free(p, len);
  return st == napi_ok ? v : NULL;
}

int sn_def(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f) != napi_ok) return -1;
  return napi_set_named_property(env, exports, name, f) == napi_ok ? 0 : -1;
}

/* ---- module-level functions -------------------------------------------------------------------- */

/* The environment is going away: its references go with it (deleting one from this finalizer,
 * while node finalizes the environment's references, crashed node 20 at exit). */
static void instance_free(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  free(data);
}

/* setErrorClass(SliError): the class every failure is thrown as. */
static napi_value set_error_class(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (t != napi_function) return sn_throw_type(env, "%s must be a class", "SliError");
  sn_instance *inst = NULL;
  napi_get_instance_data(env, (void **)&inst);
  if (!inst) return NULL;
  if (inst->error_class) napi_delete_reference(env, inst->error_class);
  napi_create_reference(env, argv[0], 1, &inst->error_class);
  return sn_undef(env);
}

/* errName(code) → "SLI_E_PAYLOAD" */
static napi_value err_name(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  int64_t code;
  if (sn_get_int(env, argv[0], "code", 0, &code)) return NULL;
  return sn_str(env, sli_err_name((int)code));
}

/* strerror(code) → one line */
static napi_value err_str(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  int64_t code;
  if (sn_get_int(env, argv[0], "code", 0, &code)) return NULL;
  return sn_str(env, sli_strerror((int)code));
}

static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  return sn_str(env, sli_version_string());
}

/* close(handle): frees the libsli object now (keys wiped); a second close does nothing. */
static napi_value handle_close(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_any(env, argv[0]);
  if (!h) return sn_throw_type(env, "%s must be a handle", "the argument");
  if (!h->closed) {
    h->closed = 1;
    if (!h->busy) sn_handle_release(h);
  }
  return sn_undef(env);
}

/* isClosed(handle) */
static napi_value handle_is_closed(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_any(env, argv[0]);
  if (!h) return sn_throw_type(env, "%s must be a handle", "the argument");
  return sn_bool(env, h->closed);
}

/* Node 20's deferred finalizers can use the napi_env after it was freed at exit: the immediate
 * that drains them drops the env's last reference first (Unref, then DrainFinalizerQueue), which
 * crashed the tests whenever freed memory was overwritten (meson's MALLOC_PERTURB_). A
 * thread-safe function holds a reference to the env until the loop's handles are closed, after
 * the immediates ran; it is never called and keeps nothing alive (unref'd). */
static void keepalive_call(napi_env env, napi_value cb, void *ctx, void *data) {
  (void)env, (void)cb, (void)ctx, (void)data;
}

static void env_keepalive(napi_env env) {
  napi_value name;
  napi_threadsafe_function tsfn;
  napi_create_string_utf8(env, "sli.env-keepalive", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, keepalive_call,
                                      &tsfn) == napi_ok)
    napi_unref_threadsafe_function(env, tsfn);
}

NAPI_MODULE_INIT() {
  sn_instance *inst = calloc(1, sizeof(*inst));
  if (!inst || napi_set_instance_data(env, inst, instance_free, NULL) != napi_ok) {
    free(inst);
    return NULL;
  }
  env_keepalive(env);
  int rc = sli_init();
  if (rc < 0) {
    sn_throw_sli(env, rc, sli_last_error());
    return NULL;
  }
  if (sn_def(env, exports, "setErrorClass", set_error_class) ||
      sn_def(env, exports, "errName", err_name) || sn_def(env, exports, "strerror", err_str) ||
      sn_def(env, exports, "version", version) || sn_def(env, exports, "close", handle_close) ||
      sn_def(env, exports, "isClosed", handle_is_closed) || sn_register_seal(env, exports) ||
      sn_register_age(env, exports) || sn_register_keys(env, exports) ||
      sn_register_certs(env, exports) || sn_register_tls(env, exports))
    return NULL;
  return exports;
}
