/* keys.c — key pairs and signatures (api/sli.h, "Key pairs and signatures"), and the signer that
 * signs or verifies a message given in pieces. */
#include <stdlib.h>
#include <string.h>

#include "sli_node.h"

/* keyGenerate(type, param, insecureWeak) */
static napi_value key_generate(napi_env env, napi_callback_info info) {
  SN_ARGS(3);
  int64_t type, param;
  int weak = 0;
  if (sn_get_int(env, argv[0], "type", 0, &type) || sn_get_int(env, argv[1], "bits", 0, &param) ||
      sn_get_flag(env, argv[2], &weak))
    return NULL;
  sli_key *k = NULL;
  int rc = sli_key_generate(&k, (int)type, (int)param, weak ? SLI_KEYGEN_INSECURE_WEAK : 0);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_handle_new(env, SN_KEY, k);
}

/* keyLoad(path, password?) */
static napi_value key_load(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  char *path, *pw;
  if (sn_get_string(env, argv[0], "path", 0, &path)) return NULL;
  if (sn_get_string(env, argv[1], "passphrase", 1, &pw)) {
    free(path);
    return NULL;
  }
  sli_key *k = NULL;
  char msg[512] = "";
  int rc = sli_key_load_file(&k, path, pw, msg, sizeof(msg));
  free(path);
  sn_string_free(pw);
  if (rc < 0) return sn_throw_sli(env, rc, msg[0] ? msg : sli_last_error());
  return sn_handle_new(env, SN_KEY, k);
}

/* keyInfo(h) → {type, bits, hasPrivate} */
static napi_value key_info(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEY, "key");
  if (!h) return NULL;
  napi_value o;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "type", sn_num(env, sli_key_type(h->p)));
  napi_set_named_property(env, o, "bits", sn_num(env, sli_key_bits(h->p)));
  napi_set_named_property(env, o, "hasPrivate", sn_bool(env, sli_key_has_private(h->p)));
  return o;
}

/* keyPrivatePem(h, passphrase?) → string (PKCS#8, encrypted if a passphrase is given) */
static napi_value key_private_pem(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEY, "key");
  char *pw;
  if (!h || sn_get_string(env, argv[1], "passphrase", 1, &pw)) return NULL;
  char *out = NULL;
  size_t len = 0;
  int rc = sli_key_private_pem_alloc(h->p, pw, &out, &len);
  sn_string_free(pw);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_take_alloc(env, out, len);
}

/* keyPublicPem(h) → string */
static napi_value key_public_pem(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEY, "key");
  if (!h) return NULL;
  char *out = NULL;
  size_t len = 0;
  int rc = sli_key_public_pem_alloc(h->p, &out, &len);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_take_alloc(env, out, len);
}

/* keyOpenssh(h, comment?, private) → the OpenSSH public line or private key */
static napi_value key_openssh(napi_env env, napi_callback_info info) {
  SN_ARGS(3);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEY, "key");
  char *comment;
  int priv = 0;
  if (!h || sn_get_flag(env, argv[2], &priv) || sn_get_string(env, argv[1], "comment", 1, &comment))
    return NULL;
  char *out = NULL;
  size_t len = 0;
  int rc = priv ? sli_key_openssh_private_alloc(h->p, comment, &out, &len)
                : sli_key_openssh_public_alloc(h->p, comment, &out, &len);
  free(comment);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_take_alloc(env, out, len);
}

/* keySign(h, data) → Buffer */
static napi_value key_sign(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEY, "key");
  sn_bytes in;
  if (!h || sn_get_bytes(env, argv[1], "data", 0, &in)) return NULL;
  size_t cap = sli_key_sig_max_size(h->p);
  uint8_t stack[1024], *sig = cap <= sizeof(stack) ? stack : malloc(cap);
  napi_value v = NULL;
  if (!sig) {
    sn_bytes_free(&in);
    return sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
  }
  size_t n = cap ? cap : sizeof(stack);
  int rc = sli_key_sign(h->p, sig, &n, in.ptr, in.len);
  sn_bytes_free(&in);
  if (rc < 0) v = sn_throw_sli(env, rc, sli_last_error());
  else napi_create_buffer_copy(env, n, sig, NULL, &v);
  if (sig != stack) free(sig);
  return v;
}

/* keyVerify(h, sig, data) → true, or throws (SLI_E_SIGNATURE when it does not verify) */
static napi_value key_verify(napi_env env, napi_callback_info info) {
  SN_ARGS(3);
  sn_handle *h = sn_handle_get(env, argv[0], SN_KEY, "key");
  sn_bytes sig, in;
  if (!h || sn_get_bytes(env, argv[1], "signature", 0, &sig)) return NULL;
  if (sn_get_bytes(env, argv[2], "data", 0, &in)) {
    sn_bytes_free(&sig);
    return NULL;
  }
  int rc = sli_key_verify(h->p, sig.ptr, sig.len, in.ptr, in.len);
  sn_bytes_free(&sig);
  sn_bytes_free(&in);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_bool(env, 1);
}

/* signerNew(keyHandle, verify) */
static napi_value signer_new(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  sn_handle *k = sn_handle_get(env, argv[0], SN_KEY, "key");
  int verify = 0;
  if (!k || sn_get_flag(env, argv[1], &verify)) return NULL;
  sli_signer *s = NULL;
  int rc = sli_signer_new(&s, k->p, verify);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  napi_value v = sn_handle_new(env, SN_SIGNER, s); /* the signer holds its own key reference */
  sn_handle *h = v ? sn_handle_any(env, v) : NULL;
  if (h) h->aux = sli_key_sig_max_size(k->p);
  return v;
}

/* signerUpdate(h, data) */
static napi_value signer_update(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  sn_handle *h = sn_handle_get(env, argv[0], SN_SIGNER, "signer");
  sn_bytes in;
  if (!h || sn_get_bytes(env, argv[1], "data", 0, &in)) return NULL;
  int rc = sli_signer_update(h->p, in.ptr, in.len);
  sn_bytes_free(&in);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_undef(env);
}

/* signerSign(h) → Buffer */
static napi_value signer_sign(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_SIGNER, "signer");
  if (!h) return NULL;
  uint8_t sig[2048];
  size_t n = h->aux && h->aux < sizeof(sig) ? h->aux : sizeof(sig);
  int rc = sli_signer_sign_final(h->p, sig, &n);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  napi_value v;
  napi_create_buffer_copy(env, n, sig, NULL, &v);
  return v;
}

/* signerVerify(h, sig) → true, or throws SLI_E_SIGNATURE */
static napi_value signer_verify(napi_env env, napi_callback_info info) {
  SN_ARGS(2);
  sn_handle *h = sn_handle_get(env, argv[0], SN_SIGNER, "signer");
  sn_bytes sig;
  if (!h || sn_get_bytes(env, argv[1], "signature", 0, &sig)) return NULL;
  int rc = sli_signer_verify_final(h->p, sig.ptr, sig.len);
  sn_bytes_free(&sig);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_bool(env, 1);
}

int sn_register_keys(napi_env env, napi_value exports) {
  return sn_def(env, exports, "keyGenerate", key_generate) ||
         sn_def(env, exports, "keyLoad", key_load) || sn_def(env, exports, "keyInfo", key_info) ||
         sn_def(env, exports, "keyPrivatePem", key_private_pem) ||
         sn_def(env, exports, "keyPublicPem", key_public_pem) ||
         sn_def(env, exports, "keyOpenssh", key_openssh) ||
         sn_def(env, exports, "keySign", key_sign) || sn_def(env, exports, "keyVerify", key_verify) ||
         sn_def(env, exports, "signerNew", signer_new) ||
         sn_def(env, exports, "signerUpdate", signer_update) ||
         sn_def(env, exports, "signerSign", signer_sign) ||
         sn_def(env, exports, "signerVerify", signer_verify);
}
