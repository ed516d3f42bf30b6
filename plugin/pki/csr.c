/* csr.c — PKCS#10 certificate requests, self-signed certificates and a tiny local CA, from an OpenSSL
 * style subject ("/CN=x/O=y/C=FR") and SAN strings ("DNS:x", "IP:1.2.3.4", "email:a@b"); the
 * certificates come from the one builder, x509.c. */
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

/* signer_check fails `fn` unless `k` is a private key that can sign (RSA, ECDSA, Ed25519). */
static int signer_check(const char *fn, const sli_key *k) {
  int t = sli_key_type(k);
  if (!k->has_private || !(t == SLI_KEY_RSA || t == SLI_KEY_EC || t == SLI_KEY_ED25519))
    return sli__fail(NULL, SLI_E_UNSUPPORTED, "%s: the key must be a private RSA, ECDSA or Ed25519 key",
                     fn);
  return 0;
}

/* pem_out writes `obj` as PEM with `writer` into a new string. */
static int pem_out(int (*writer)(BIO *, void *), void *obj, char **out, size_t *out_len) {
  BIO *bio = BIO_new(BIO_s_mem());
  int rc = bio && writer(bio, obj) ? sli__bio_string(bio, out, out_len)
                                   : sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot write the result as PEM");
  BIO_free(bio);
  return rc;
}

static int write_req(BIO *b, void *o) { return PEM_write_bio_X509_REQ(b, o); }
static int write_x509(BIO *b, void *o) { return PEM_write_bio_X509(b, o); }

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
  X509_EXTENSION *san = NULL;
  rc = req && name && exts ? sli__x509_subject(name, subject)
                           : sli__fail(NULL, SLI_E_NOMEM, "out of memory making a request");
  if (!rc) rc = sli__x509_sans(sans, n_sans, &san);
  if (!rc && san) {
    if (sk_X509_EXTENSION_push(exts, san)) san = NULL; /* owned by exts from now on */
    else rc = sli__fail(NULL, SLI_E_NOMEM, "out of memory making a request");
  }
  if (!rc && (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_subject_name(req, name) ||
              !X509_REQ_set_pubkey(req, k->pkey) ||
              (sk_X509_EXTENSION_num(exts) && !X509_REQ_add_extensions(req, exts)) ||
              !X509_REQ_sign(req, k->pkey, sli__x509_digest(k->pkey))))
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot make or sign the request");
  if (!rc) rc = pem_out(write_req, req, out, out_len);
  X509_EXTENSION_free(san);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_NAME_free(name);
  X509_REQ_free(req);
  ERR_clear_error();
  return rc;
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
  X509_NAME *name = X509_NAME_new();
  X509_EXTENSION *san = NULL;
  X509 *x = NULL;
  rc = name ? sli__x509_subject(name, subject)
            : sli__fail(NULL, SLI_E_NOMEM, "out of memory making a certificate");
  if (!rc) rc = sli__x509_sans(sans, n_sans, &san);
  if (!rc)
    rc = sli__x509_build(&x, name, k->pkey, NULL, k->pkey,
                         (flags & SLI_CERT_CA) ? SLI__X509_CA : SLI__X509_SELF, days, san);
  if (!rc) rc = pem_out(write_x509, x, out, out_len);
  X509_EXTENSION_free(san);
  X509_NAME_free(name);
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
  /* the request's subject and names; everything else is the CA's to say */
  STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
  X509_EXTENSION *san = NULL;
  for (size_t i = 0; exts && !san && i < sk_X509_EXTENSION_num(exts); i++) {
    X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name) san = e;
  }
  rc = sli__x509_build(&x, X509_REQ_get_subject_name(req), req_key, ca, ca_key->pkey,
                       SLI__X509_LEAF, days, san);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (rc) goto done;
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
