/* csr.c — PKCS#10 certificate requests, self-signed certificates and a tiny local CA, from an OpenSSL
 * style subject ("/CN=x/O=y/C=FR") and SAN strings ("DNS:x", "IP:1.2.3.4", "email:a@b"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "pki/pki.h"

static const char *const fields[] = {"CN", "C", "ST", "L", "O", "OU", "emailAddress", NULL};

/* parse_subject fills `name` from "/K=V/K=V"; returns 0 or SLI_E_INVAL, with a message. */
static int parse_subject(X509_NAME *name, const char *subject) {
  static const char expected[] = "/K=V/..., K one of CN, C, ST, L, O, OU, emailAddress";
  if (!subject || subject[0] != '/')
    return sli__fail(NULL, SLI_E_INVAL, "the subject '%s' does not start with '/' (%s)",
                     subject ? subject : "(null)", expected);
  char buf[1024];
  snprintf(buf, sizeof(buf), "%s", subject + 1);
  int n = 0;
  for (char *save, *part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
    char *eq = strchr(part, '=');
    if (!eq || eq == part || !eq[1])
      return sli__fail(NULL, SLI_E_INVAL, "subject '%s': '%s' is not K=V (%s)", subject, part, expected);
    *eq = 0;
    int known = 0;
    for (int i = 0; fields[i]; i++) known |= !strcmp(part, fields[i]);
    if (!known)
      return sli__fail(NULL, SLI_E_INVAL, "subject '%s': unknown field '%s' (%s)", subject, part,
                       expected);
    if (!strcmp(part, "C") && strlen(eq + 1) != 2)
      return sli__fail(NULL, SLI_E_INVAL, "subject '%s': C is a two-letter country code", subject);
    if (!X509_NAME_add_entry_by_txt(name, part, MBSTRING_UTF8, (const uint8_t *)eq + 1, -1, -1, 0))
      return sli__fail_ssl(NULL, SLI_E_INVAL, "subject '%s': the value of %s is refused", subject, part);
    n++;
  }
  return n ? 0 : sli__fail(NULL, SLI_E_INVAL, "the subject '%s' names no field (%s)", subject, expected);
}

/* san_ext builds a subjectAltName extension from "DNS:x" / "IP:x" / "email:x" strings; a malformed
 * one sets `*rc` to SLI_E_INVAL, with a message. */
static X509_EXTENSION *san_ext(const char *const *sans, size_t n, int *rc) {
  *rc = 0;
  if (!n) return NULL;
  if (!sans) {
    *rc = sli__fail(NULL, SLI_E_INVAL, "%zu subject alternative names announced, none given", n);
    return NULL;
  }
  char buf[4096] = "";
  for (size_t i = 0; i < n; i++) {
    const char *s = sans[i];
    if (!s || strchr(s, ',') ||
        !(strncmp(s, "DNS:", 4) == 0 || strncmp(s, "IP:", 3) == 0 || strncmp(s, "email:", 6) == 0) ||
        strlen(buf) + strlen(s) + 2 >= sizeof(buf)) {
      *rc = sli__fail(NULL, SLI_E_INVAL,
                      "subject alternative name '%s' is not DNS:name, IP:address or email:address "
                      "(without commas, at most 4 KiB in all)",
                      s ? s : "(null)");
      return NULL;
    }
    if (i) strcat(buf, ",");
    strcat(buf, s);
  }
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name, buf);
  if (!ext) *rc = sli__fail_ssl(NULL, SLI_E_INVAL, "subject alternative names '%s' are refused", buf);
  ERR_clear_error();
  return ext;
}

static const EVP_MD *digest_for(const sli_key *k) {
  return sli_key_type(k) == SLI_KEY_ED25519 ? NULL : EVP_sha256();
}

static int pem_out(int (*writer)(BIO *, void *), void *obj, char **out, size_t *out_len) {
  BIO *bio = BIO_new(BIO_s_mem());
  const uint8_t *d;
  size_t l;
  int rc;
  if (!bio || !writer(bio, obj) || !BIO_mem_contents(bio, &d, &l)) {
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot write the result as PEM");
  } else {
    char *p = malloc(l + 1);
    if (!p) {
      rc = sli__fail(NULL, SLI_E_NOMEM, "out of memory writing the result as PEM");
    } else {
      memcpy(p, d, l);
      p[l] = 0;
      *out = p;
      *out_len = l + 1;
      rc = 0;
    }
  }
  BIO_free(bio);
  return rc;
}
static int write_req(BIO *b, void *o) { return PEM_write_bio_X509_REQ(b, o); }
static int write_x509(BIO *b, void *o) { return PEM_write_bio_X509(b, o); }

/* signer_check fails `fn` unless `k` is a private key that can sign (RSA, ECDSA, Ed25519). */
static int signer_check(const char *fn, const sli_key *k) {
  int t = sli_key_type(k);
  if (!k->has_private || !(t == SLI_KEY_RSA || t == SLI_KEY_EC || t == SLI_KEY_ED25519))
    return sli__fail(NULL, SLI_E_UNSUPPORTED, "%s: the key must be a private RSA, ECDSA or Ed25519 key",
                     fn);
  return 0;
}

int sli_csr_create_alloc(const sli_key *k, const char *subject, const char *const *sans,
                         size_t n_sans, char **out, size_t *out_len) {
  if (!out || !out_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_csr_create_alloc: out and out_len are needed");
  *out = NULL;
  *out_len = 0;
  if (!k) return sli__fail(NULL, SLI_E_INVAL, "sli_csr_create_alloc: no key given");
  int rc = signer_check("sli_csr_create_alloc", k);
  if (rc) return rc;
  X509_REQ *req = X509_REQ_new();
  X509_NAME *name = X509_NAME_new();
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  rc = req && name && exts ? parse_subject(name, subject)
                           : sli__fail(NULL, SLI_E_NOMEM, "out of memory making a request");
  X509_EXTENSION *san = rc ? NULL : san_ext(sans, n_sans, &rc);
  if (!rc && (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_subject_name(req, name) ||
              !X509_REQ_set_pubkey(req, k->pkey) ||
              (san && (!sk_X509_EXTENSION_push(exts, san) || !X509_REQ_add_extensions(req, exts))) ||
              !X509_REQ_sign(req, k->pkey, digest_for(k))))
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot make or sign the request");
  if (san && !rc) san = NULL; /* owned by exts */
  if (!rc) rc = pem_out(write_req, req, out, out_len);
  X509_EXTENSION_free(san);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_NAME_free(name);
  X509_REQ_free(req);
  ERR_clear_error();
  return rc;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
  int ok = ext && X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

/* new_cert starts a v3 certificate: random serial, validity now-1h .. now+days. */
static X509 *new_cert(int days) {
  X509 *x = X509_new();
  uint8_t serial[16];
  BIGNUM *bn = NULL;
  if (!x || !RAND_bytes(serial, sizeof(serial))) goto fail;
  serial[0] &= 0x7f;
  bn = BN_bin2bn(serial, sizeof(serial), NULL);
  if (!bn || !X509_set_version(x, X509_VERSION_3) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), (long)(days > 0 ? days : 365) * 86400))
    goto fail;
  BN_free(bn);
  return x;
fail:
  BN_free(bn);
  X509_free(x);
  return NULL;
}

static int leaf_exts(X509 *x, X509 *issuer) {
  return add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth") &&
         add_ext(x, issuer, NID_subject_key_identifier, "hash") &&
         add_ext(x, issuer, NID_authority_key_identifier, "keyid");
}

int sli_cert_selfsign_alloc(const sli_key *k, const char *subject, const char *const *sans,
                            size_t n_sans, int days, uint32_t flags, char **out, size_t *out_len) {
  if (!out || !out_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_cert_selfsign_alloc: out and out_len are needed");
  *out = NULL;
  *out_len = 0;
  if (!k || (flags & ~SLI_CERT_CA) || days < 0)
    return sli__fail(NULL, SLI_E_INVAL, "sli_cert_selfsign_alloc: %s",
                     !k ? "no key given" : days < 0 ? "days is negative" : "unknown flags");
  int rc = signer_check("sli_cert_selfsign_alloc", k);
  if (rc) return rc;
  X509 *x = new_cert(days);
  rc = x ? parse_subject(X509_get_subject_name(x), subject)
         : sli__fail_ssl(NULL, SLI_E_NOMEM, "cannot start a certificate");
  X509_EXTENSION *san = rc ? NULL : san_ext(sans, n_sans, &rc);
  if (!rc && (!X509_set_issuer_name(x, X509_get_subject_name(x)) || !X509_set_pubkey(x, k->pkey)))
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot set the certificate's issuer or key");
  if (!rc && (flags & SLI_CERT_CA)) {
    if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") ||
        !add_ext(x, x, NID_subject_key_identifier, "hash"))
      rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot add the CA certificate's extensions");
  } else if (!rc) {
    /* As `openssl req -x509` does, a self-signed leaf is its own (path-length 0) authority, so a
     * client can trust exactly this certificate. */
    if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !add_ext(x, x, NID_key_usage, "critical,digitalSignature,keyEncipherment,keyCertSign") ||
        !add_ext(x, x, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(x, x, NID_subject_key_identifier, "hash"))
      rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot add the certificate's extensions");
  }
  if (!rc && san && !X509_add_ext(x, san, -1))
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot add the subject alternative names");
  if (!rc && !X509_sign(x, k->pkey, digest_for(k)))
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot sign the certificate");
  if (!rc) rc = pem_out(write_x509, x, out, out_len);
  X509_EXTENSION_free(san);
  X509_free(x);
  ERR_clear_error();
  return rc;
}

int sli_ca_issue_alloc(const char *ca_cert_pem, size_t ca_cert_len, const sli_key *ca_key,
                       const char *csr_pem, size_t csr_len, int days, char **out, size_t *out_len) {
  if (!out || !out_len)
    return sli__fail(NULL, SLI_E_INVAL, "sli_ca_issue_alloc: out and out_len are needed");
  *out = NULL;
  *out_len = 0;
  if (!ca_cert_pem || !ca_key || !csr_pem || days < 0)
    return sli__fail(NULL, SLI_E_INVAL, "sli_ca_issue_alloc: %s",
                     days < 0 ? "days is negative"
                              : "the CA certificate, the CA key and the request are needed");
  int rc = signer_check("sli_ca_issue_alloc", ca_key);
  if (rc) return rc;
  STACK_OF(X509) *chain = NULL;
  rc = sli__parse_chain("CA certificate", ca_cert_pem, ca_cert_len, &chain, NULL);
  if (rc) return rc;
  X509 *ca = sk_X509_value(chain, 0);
  X509_REQ *req = NULL;
  EVP_PKEY *req_key = NULL;
  X509 *x = NULL;
  char *norm = NULL;
  size_t nlen = 0;
  if (!X509_check_private_key(ca, ca_key->pkey)) {
    rc = sli__fail(NULL, SLI_E_KEY_MISMATCH, "the CA key does not match the CA certificate");
    goto done;
  }
  if (X509_check_ca(ca) < 1) {
    rc = sli__fail(NULL, SLI_E_CONFIG, "the CA certificate is not a CA (no CA:TRUE, or no keyCertSign)");
    goto done;
  }
  if ((rc = sli__pem_check("certificate request", csr_pem, csr_len, &norm, &nlen, NULL))) goto done;
  BIO *bio = BIO_new_mem_buf(norm, (int)nlen);
  req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if (!req || !(req_key = X509_REQ_get_pubkey(req))) {
    rc = sli__fail_ssl(NULL, SLI_E_PEM, "the certificate request cannot be parsed");
    goto done;
  }
  if (X509_REQ_verify(req, req_key) != 1) {
    rc = sli__fail(NULL, SLI_E_SIGNATURE, "the certificate request's signature does not verify");
    goto done;
  }
  x = new_cert(days);
  if (!x || !X509_set_subject_name(x, X509_REQ_get_subject_name(req)) ||
      !X509_set_issuer_name(x, X509_get_subject_name(ca)) || !X509_set_pubkey(x, req_key) ||
      !leaf_exts(x, ca)) {
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot make the certificate");
    goto done;
  }
  STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
  for (size_t i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
    X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name) X509_add_ext(x, e, -1);
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (!X509_sign(x, ca_key->pkey, digest_for(ca_key))) {
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot sign the certificate");
    goto done;
  }
  rc = pem_out(write_x509, x, out, out_len);
done:
  if (norm) sli_free(norm, nlen + 1);
  X509_free(x);
  EVP_PKEY_free(req_key);
  X509_REQ_free(req);
  sk_X509_pop_free(chain, X509_free);
  ERR_clear_error();
  return rc;
}
