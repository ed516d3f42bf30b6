/* x509.c — the one X.509 builder: subjects and subject alternative names from strings, and v3
 * certificates in three profiles — issued leaf, self-signed leaf, CA — for the request and CA
 * functions (csr.c) and the default identity (tls/identity.c); and PEM text out of a memory BIO. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "pki/pki.h"

static const char *const fields[] = {"CN", "C", "ST", "L", "O", "OU", "emailAddress", NULL};

int sli__x509_subject(X509_NAME *name, const char *subject) {
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

int sli__x509_sans(const char *const *sans, size_t n, X509_EXTENSION **out) {
  *out = NULL;
  if (!n) return 0;
  if (!sans)
    return sli__fail(NULL, SLI_E_INVAL, "%zu subject alternative names announced, none given", n);
  char buf[4096] = "";
  for (size_t i = 0; i < n; i++) {
    const char *s = sans[i];
    if (!s || strchr(s, ',') ||
        !(strncmp(s, "DNS:", 4) == 0 || strncmp(s, "IP:", 3) == 0 || strncmp(s, "email:", 6) == 0 ||
          strncmp(s, "URI:", 4) == 0) ||
        strlen(buf) + strlen(s) + 2 >= sizeof(buf))
      return sli__fail(NULL, SLI_E_INVAL,
                       "subject alternative name '%s' is not DNS:name, IP:address, email:address or "
                       "URI:uri "
                       "(without commas, at most 4 KiB in all)",
                       s ? s : "(null)");
    if (i) strcat(buf, ",");
    strcat(buf, s);
  }
  *out = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name, buf);
  if (!*out) return sli__fail_ssl(NULL, SLI_E_INVAL, "subject alternative names '%s' are refused", buf);
  return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
  int ok = ext && X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

/* new_cert starts a v3 certificate: random serial, validity now - 1 h .. now + days. */
static X509 *new_cert(int days) {
  X509 *x = X509_new();
  uint8_t serial[16];
  BIGNUM *bn = NULL;
  if (!x || !RAND_bytes(serial, sizeof(serial))) goto fail;
  serial[0] &= 0x7f;
  bn = BN_bin2bn(serial, sizeof(serial), NULL);
  if (!bn || !X509_set_version(x, X509_VERSION_3) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400))
    goto fail;
  BN_free(bn);
  return x;
fail:
  BN_free(bn);
  X509_free(x);
  return NULL;
}

/* profile_exts adds the extensions of a profile; `issuer` is x itself when self-signed. */
static int profile_exts(X509 *x, X509 *issuer, int profile) {
  switch (profile) {
  case SLI__X509_CA:
    return add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE") &&
           add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") &&
           add_ext(x, issuer, NID_subject_key_identifier, "hash");
  case SLI__X509_SELF:
    /* As `openssl req -x509` does, a self-signed leaf is its own (path-length 0) authority, so a
     * client can trust exactly this certificate. */
    return add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
           add_ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment,keyCertSign") &&
           add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth") &&
           add_ext(x, issuer, NID_subject_key_identifier, "hash");
  default: /* SLI__X509_LEAF */
    return add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") &&
           add_ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
           add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth") &&
           add_ext(x, issuer, NID_subject_key_identifier, "hash") &&
           add_ext(x, issuer, NID_authority_key_identifier, "keyid");
  }
}

const EVP_MD *sli__x509_digest(const EVP_PKEY *signer) {
  return EVP_PKEY_id(signer) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
}

int sli__x509_build(X509 **out, const X509_NAME *subject, EVP_PKEY *pub, X509 *issuer,
                    EVP_PKEY *signer, int profile, int days, X509_EXTENSION *san) {
  *out = NULL;
  X509 *x = new_cert(days > 0 ? days : 365);
  if (!x) return sli__fail_ssl(NULL, SLI_E_NOMEM, "cannot start a certificate");
  int ok = X509_set_subject_name(x, (X509_NAME *)subject) &&
           X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : (X509_NAME *)subject) &&
           X509_set_pubkey(x, pub) && profile_exts(x, issuer ? issuer : x, profile) &&
           (!san || X509_add_ext(x, san, -1)) && X509_sign(x, signer, sli__x509_digest(signer));
  if (!ok) {
    X509_free(x);
    return sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot make or sign the certificate");
  }
  ERR_clear_error();
  *out = x;
  return 0;
}

int sli__bio_string(BIO *bio, char **out, size_t *out_len) {
  const uint8_t *d;
  size_t l;
  if (!bio || !BIO_mem_contents(bio, &d, &l))
    return sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot write the result as PEM");
  char *p = malloc(l + 1);
  if (!p) return sli__fail(NULL, SLI_E_NOMEM, "out of memory writing the result as PEM");
  memcpy(p, d, l);
  p[l] = 0;
  *out = p;
  if (out_len) *out_len = l + 1;
  return 0;
}
