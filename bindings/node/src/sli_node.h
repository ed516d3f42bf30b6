/* sli_node.h — what the files of the Node addon share: the handle that wraps each libsli object,
 * argument conversion, and SliError. The addon calls libsli.so.1 through api/sli.h only. */
#ifndef SLI_NODE_H
#define SLI_NODE_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#include <sli.h>

/* The kinds of libsli objects a handle holds. */
enum sn_kind {
  SN_KEYRING = 1,
  SN_KEY,
  SN_CERT,
  SN_RECIPIENT,
  SN_IDENTITY,
  SN_AGE_ENC,
  SN_AGE_DEC,
  SN_SIGNER,
  SN_CTX,
  SN_CONN,
};

/* sn_handle is the native state of one JS handle object (napi_wrap), type-tagged so that no other
 * object passes for it. `p` is the libsli object; `closed` is set by close() (or by the finalizer),
 * after which every call on it throws SLI_E_STATE. `busy` counts asynchronous works (libuv's thread
 * pool) using `p`: a close() meanwhile only marks it, and the last work to finish frees it. */
typedef struct sn_handle {
  int kind;
  int closed;
  int busy;
  void *p;
  size_t aux; /* per kind: the signature size of a signer */
} sn_handle;

/* sn_bytes is a borrowed (or, for a string, copied) view of a byte argument. */
typedef struct sn_bytes {
  const uint8_t *ptr; /* never NULL: an empty input points at a static byte */
  size_t len;
  uint8_t *owned; /* a UTF-8 copy of a string argument, wiped and freed by sn_bytes_free */
} sn_bytes;

/* Each returns NULL with a JS exception pending on failure. */
napi_value sn_throw_sli(napi_env env, int code, const char *msg);
napi_value sn_throw_type(napi_env env, const char *fmt, const char *what);
napi_value sn_make_error(napi_env env, int code, const char *msg);
napi_value sn_handle_new(napi_env env, int kind, void *p);
sn_handle *sn_handle_get(napi_env env, napi_value v, int kind, const char *what);
sn_handle *sn_handle_any(napi_env env, napi_value v);
void sn_handle_release(sn_handle *h);

/* sn_get_bytes reads a Buffer, a TypedArray, a DataView, an ArrayBuffer or a string (UTF-8);
 * `optional` also takes undefined and null (as empty). It returns 0, or -1 with a TypeError
 * pending. */
int sn_get_bytes(napi_env env, napi_value v, const char *what, int optional, sn_bytes *out);
void sn_bytes_free(sn_bytes *b);
/* sn_get_string copies a string argument (NUL-terminated, malloc'd) into `*out`; `optional` takes
 * undefined and null as NULL. Returns 0 or -1 with a TypeError pending. */
int sn_get_string(napi_env env, napi_value v, const char *what, int optional, char **out);
void sn_string_free(char *s); /* wipes and frees */
int sn_get_int(napi_env env, napi_value v, const char *what, int64_t dflt, int64_t *out);
int sn_get_flag(napi_env env, napi_value v, int *out);

napi_value sn_str(napi_env env, const char *s); /* a JS string, or null for NULL */
napi_value sn_num(napi_env env, double d);
napi_value sn_undef(napi_env env);
napi_value sn_bool(napi_env env, int b);
/* sn_take_alloc turns a NUL-terminated allocation of libsli's into a JS string and sli_free()s it. */
napi_value sn_take_alloc(napi_env env, char *p, size_t len);

/* sn_def adds one function to `exports`. */
int sn_def(napi_env env, napi_value exports, const char *name, napi_callback fn);

#define SN_ARGS(n)                                                  \
  size_t argc = (n);                                                \
  napi_value argv[(n) > 0 ? (n) : 1];                               \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) \
    return NULL;                                                    \
  for (size_t i_ = argc; i_ < (n); i_++) napi_get_undefined(env, &argv[i_]);

void sn_conn_release(void *state); /* tls.c: frees a connection's state */

int sn_register_seal(napi_env env, napi_value exports);
int sn_register_age(napi_env env, napi_value exports);
int sn_register_keys(napi_env env, napi_value exports);
int sn_register_certs(napi_env env, napi_value exports);
int sn_register_tls(napi_env env, napi_value exports);

#endif
