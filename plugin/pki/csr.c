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

/* parse_subject fills `name` from "/K=V/K=V"; returns 0 or SLI_E_INVAL. */
static int parse_subject(X509_NAME *name, const char *subject) {
  if (!subject || subject[0] != '/') return SLI_E_INVAL;
  char buf[1024];
  snprintf(buf, sizeof(buf), "%s", subject + 1);
  int n = 0;
  for (char *save, *part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
    char *eq = strchr(part, '=');
    if (!eq || eq == part || !eq[1]) return SLI_E_INVAL;
    *eq = 0;
    int known = 0;
    for (int i = 0; fields[i]; i++) known |= !strcmp(part, fields[i]);
    if (!known || (!strcmp(part, "C") && strlen(eq + 1) != 2)) return SLI_E_INVAL;
    if (!X509_NAME_add_entry_by_txt(name, part, MBSTRING_UTF8, (const uint8_t *)eq + 1, -1, -1, 0))
      return SLI_E_INVAL;
    n++;
  }
  return n ? 0 : SLI_E_INVAL;
}

/* san_ext builds a subjectAltName extension from "DNS:x" / "IP:x" / "email:x" strings. */
static X509_EXTENSION *san_ext(const char *const *sans, size_t n, int *rc) {
  *rc = 0;
  if (!n) return NULL;
  char buf[4096] = "";
  for (size_t i = 0; i < n; i++) {
    const char *s = sans[i];
    if (!s || strchr(s, ',') ||
        !(strncmp(s, "DNS:", 4) == 0 || strncmp(s, "IP:", 3) == 0 || strncmp(s, "email:", 6) == 0) ||
        strlen(buf) + strlen(s) + 2 >= sizeof(buf)) {
      *rc = SLI_E_INVAL;
      return NULL;
    }
    if (i) strcat(buf, ",");
    strcat(buf, s);
  }
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name, buf);
  if (!ext) *rc = SLI_E_INVAL;
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
  int rc = SLI_E_INTERNAL;
  if (bio && writer(bio, obj) && BIO_mem_contents(bio, &d, &l)) {
    char *p = malloc(l + 1);
    if (!p) {
      rc = SLI_E_NOMEM;
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

static int can_sign(const sli_key *k) {
  int t = sli_key_type(k);
  return k && k->has_private && (t == SLI_KEY_RSA || t == SLI_KEY_EC || t == SLI_KEY_ED25519);
}

int sli_csr_create_alloc(const sli_key *k, const char *subject, const char *const *sans,
                         size_t n_sans, char **out, size_t *out_len) {
  if (!out || !out_len) return SLI_E_INVAL;
  *out = NULL;
  *out_len = 0;
  if (!k) return SLI_E_INVAL;
  if (!can_sign(k)) return SLI_E_UNSUPPORTED;
  X509_REQ *req = X509_REQ_new();
  X509_NAME *name = X509_NAME_new();
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  int rc = req && name && exts ? parse_subject(name, subject) : SLI_E_NOMEM;
  X509_EXTENSION *san = rc ? NULL : san_ext(sans, n_sans, &rc);
  if (!rc && (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_subject_name(req, name) ||
              !X509_REQ_set_pubkey(req, k->pkey) ||
              (san && (!sk_X509_EXTENSION_push(exts, san) || !X509_REQ_add_extensions(req, exts))) ||
              !X509_REQ_sign(req, k->pkey, digest_for(k))))
    rc = SLI_E_INTERNAL;
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
  if (!out || !out_len) return SLI_E_INVAL;
  *out = NULL;
  *out_len = 0;
  if (!k || (flags & ~SLI_CERT_CA) || days < 0) return SLI_E_INVAL;
  if (!can_sign(k)) return SLI_E_UNSUPPORTED;
  X509 *x = new_cert(days);
  int rc = x ? parse_subject(X509_get_subject_name(x), subject) : SLI_E_NOMEM;
  X509_EXTENSION *san = rc ? NULL : san_ext(sans, n_sans, &rc);
  if (!rc && (!X509_set_issuer_name(x, X509_get_subject_name(x)) || !X509_set_pubkey(x, k->pkey)))
    rc = SLI_E_INTERNAL;
  if (!rc && (flags & SLI_CERT_CA)) {
    if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") ||
        !add_ext(x, x, NID_subject_key_identifier, "hash"))
      rc = SLI_E_INTERNAL;
  } else if (!rc) {
    /* As `openssl req -x509` does, a self-signed leaf is its own (path-length 0) authority, so a
     * client can trust exactly this certificate. */
    if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !add_ext(x, x, NID_key_usage, "critical,digitalSignature,keyEncipherment,keyCertSign") ||
        !add_ext(x, x, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(x, x, NID_subject_key_identifier, "hash"))
      rc = SLI_E_INTERNAL;
  }
  if (!rc && san && !X509_add_ext(x, san, -1)) rc = SLI_E_INTERNAL;
  if (!rc && !X509_sign(x, k->pkey, digest_for(k))) rc = SLI_E_INTERNAL;
  if (!rc) rc = pem_out(write_x509, x, out, out_len);
  X509_EXTENSION_free(san);
  X509_free(x);
  ERR_clear_error();
  return rc;
}

int sli_ca_issue_alloc(const char *ca_cert_pem, size_t ca_cert_len, const sli_key *ca_key,
                       const char *csr_pem, size_t csr_len, int days, char **out, size_t *out_len) {
  if (!out || !out_len) return SLI_E_INVAL;
  *out = NULL;
  *out_len = 0;
  if (!ca_cert_pem || !ca_key || !csr_pem || days < 0) return SLI_E_INVAL;
  if (!can_sign(ca_key)) return SLI_E_UNSUPPORTED;
  char msg[SLI_MSG_MAX];
  STACK_OF(X509) *chain = NULL;
  int rc = sli__parse_chain("CA certificate", ca_cert_pem, ca_cert_len, &chain, msg, sizeof(msg));
  if (rc) return rc;
  X509 *ca = sk_X509_value(chain, 0);
  X509_REQ *req = NULL;
  EVP_PKEY *req_key = NULL;
  X509 *x = NULL;
  char *norm = NULL;
  size_t nlen = 0;
  if (!X509_check_private_key(ca, ca_key->pkey)) {
    rc = SLI_E_KEY_MISMATCH;
    goto done;
  }
  if (X509_check_ca(ca) < 1) {
    rc = SLI_E_CONFIG;
    goto done;
  }
  if ((rc = sli__pem_check("certificate request", csr_pem, csr_len, &norm, &nlen, msg, sizeof(msg))))
    goto done;
  BIO *bio = BIO_new_mem_buf(norm, (int)nlen);
  req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if (!req || !(req_key = X509_REQ_get_pubkey(req))) {
    rc = SLI_E_PEM;
    goto done;
  }
  if (X509_REQ_verify(req, req_key) != 1) {
    rc = SLI_E_SIGNATURE;
    goto done;
  }
  x = new_cert(days);
  if (!x || !X509_set_subject_name(x, X509_REQ_get_subject_name(req)) ||
      !X509_set_issuer_name(x, X509_get_subject_name(ca)) || !X509_set_pubkey(x, req_key) ||
      !leaf_exts(x, ca)) {
    rc = SLI_E_INTERNAL;
    goto done;
  }
  STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
  for (size_t i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
    X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name) X509_add_ext(x, e, -1);
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (!X509_sign(x, ca_key->pkey, digest_for(ca_key))) {
    rc = SLI_E_INTERNAL;
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
