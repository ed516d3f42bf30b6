/* certs.c — certificates (api/sli.h, "Certificates" and "Certificate requests"): read one, make a
 * request or a self-signed certificate for a key, issue a leaf from a CA. */
#include <stdlib.h>
#include <string.h>

#include "sli_node.h"

/* certLoad(path) */
static napi_value cert_load(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  char *path;
  if (sn_get_string(env, argv[0], "path", 0, &path)) return NULL;
  sli_cert *c = NULL;
  char msg[512] = "";
  int rc = sli_cert_load_file(&c, path, msg, sizeof(msg));
  free(path);
  if (rc < 0) return sn_throw_sli(env, rc, msg[0] ? msg : sli_last_error());
  return sn_handle_new(env, SN_CERT, c);
}

/* certFromPem(pem) */
static napi_value cert_from_pem(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_bytes pem;
  if (sn_get_bytes(env, argv[0], "pem", 0, &pem)) return NULL;
  sli_cert *c = NULL;
  char msg[512] = "";
  int rc = sli_cert_load_mem(&c, (const char *)pem.ptr, pem.len, msg, sizeof(msg));
  sn_bytes_free(&pem);
  if (rc < 0) return sn_throw_sli(env, rc, msg[0] ? msg : sli_last_error());
  return sn_handle_new(env, SN_CERT, c);
}

/* certInfo(h) → {subject, issuer, sans, notBefore, notAfter, fingerprintSha256, pem} */
static napi_value cert_info(napi_env env, napi_callback_info info) {
  SN_ARGS(1);
  sn_handle *h = sn_handle_get(env, argv[0], SN_CERT, "certificate");
  if (!h) return NULL;
  const sli_cert *c = h->p;
  napi_value o, sans;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "subject", sn_str(env, sli_cert_subject(c)));
  napi_set_named_property(env, o, "issuer", sn_str(env, sli_cert_issuer(c)));
  size_t n = sli_cert_san_count(c);
  napi_create_array_with_length(env, n, &sans);
  for (size_t i = 0; i < n; i++) napi_set_element(env, sans, (uint32_t)i, sn_str(env, sli_cert_san(c, i)));
  napi_set_named_property(env, o, "sans", sans);
  napi_set_named_property(env, o, "notBefore", sn_num(env, (double)sli_cert_not_before(c)));
  napi_set_named_property(env, o, "notAfter", sn_num(env, (double)sli_cert_not_after(c)));
  napi_set_named_property(env, o, "fingerprintSha256", sn_str(env, sli_cert_fingerprint_sha256(c)));
  napi_set_named_property(env, o, "pem", sn_str(env, sli_cert_chain_pem(c)));
  return o;
}

/* sans_of(array of strings) → a malloc'd array of malloc'd strings */
static char **sans_of(napi_env env, napi_value arr, size_t *n) {
  napi_valuetype t;
  bool is = false;
  uint32_t len = 0;
  napi_typeof(env, arr, &t);
  if (t != napi_undefined && t != napi_null) {
    if (napi_is_array(env, arr, &is) != napi_ok || !is) {
      sn_throw_type(env, "%s must be an array of strings", "sans");
      return NULL;
    }
    napi_get_array_length(env, arr, &len);
  }
  char **s = calloc(len + 1, sizeof(*s));
  if (!s) {
    sn_throw_sli(env, SLI_E_NOMEM, "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < len; i++) {
    napi_value v;
    napi_get_element(env, arr, i, &v);
    if (sn_get_string(env, v, "each SAN", 0, &s[i])) {
      for (uint32_t j = 0; j < i; j++) free(s[j]);
      free(s);
      return NULL;
    }
  }
  *n = len;
  return s;
}

static void sans_free(char **s, size_t n) {
  for (size_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

/* csr(keyHandle, subject, sans) → PEM string */
static napi_value csr_create(napi_env env, napi_callback_info info) {
  SN_ARGS(3);
  sn_handle *k = sn_handle_get(env, argv[0], SN_KEY, "key");
  char *subject, **sans;
  size_t n = 0;
  if (!k || sn_get_string(env, argv[1], "subject", 0, &subject)) return NULL;
  if (!(sans = sans_of(env, argv[2], &n))) {
    free(subject);
    return NULL;
  }
  char *out = NULL;
  size_t len = 0;
  int rc = sli_csr_create_alloc(k->p, subject, (const char *const *)sans, n, &out, &len);
  free(subject);
  sans_free(sans, n);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_take_alloc(env, out, len);
}

/* selfSign(keyHandle, subject, sans, days, ca) → PEM string */
static napi_value self_sign(napi_env env, napi_callback_info info) {
  SN_ARGS(5);
  sn_handle *k = sn_handle_get(env, argv[0], SN_KEY, "key");
  char *subject, **sans;
  size_t n = 0;
  int64_t days;
  int ca = 0;
  if (!k || sn_get_int(env, argv[3], "days", 0, &days) || sn_get_flag(env, argv[4], &ca) ||
      sn_get_string(env, argv[1], "subject", 0, &subject))
    return NULL;
  if (!(sans = sans_of(env, argv[2], &n))) {
    free(subject);
    return NULL;
  }
  char *out = NULL;
  size_t len = 0;
  int rc = sli_cert_selfsign_alloc(k->p, subject, (const char *const *)sans, n, (int)days,
                                   ca ? SLI_CERT_CA : 0, &out, &len);
  free(subject);
  sans_free(sans, n);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_take_alloc(env, out, len);
}

/* caIssue(caCertPem, caKeyHandle, csrPem, days) → PEM string */
static napi_value ca_issue(napi_env env, napi_callback_info info) {
  SN_ARGS(4);
  sn_handle *k = sn_handle_get(env, argv[1], SN_KEY, "caKey");
  sn_bytes ca, req;
  int64_t days;
  if (!k || sn_get_int(env, argv[3], "days", 0, &days) ||
      sn_get_bytes(env, argv[0], "caCertPem", 0, &ca))
    return NULL;
  if (sn_get_bytes(env, argv[2], "csrPem", 0, &req)) {
    sn_bytes_free(&ca);
    return NULL;
  }
  char *out = NULL;
  size_t len = 0;
  int rc = sli_ca_issue_alloc((const char *)ca.ptr, ca.len, k->p, (const char *)req.ptr, req.len,
                              (int)days, &out, &len);
  sn_bytes_free(&ca);
  sn_bytes_free(&req);
  if (rc < 0) return sn_throw_sli(env, rc, sli_last_error());
  return sn_take_alloc(env, out, len);
}

int sn_register_certs(napi_env env, napi_value exports) {
  return sn_def(env, exports, "certLoad", cert_load) ||
         sn_def(env, exports, "certFromPem", cert_from_pem) ||
         sn_def(env, exports, "certInfo", cert_info) || sn_def(env, exports, "csr", csr_create) ||
         sn_def(env, exports, "selfSign", self_sign) || sn_def(env, exports, "caIssue", ca_issue);
}
