/* cert.c — sli_cert: a parsed certificate (plus the chain it came with) and its accessors. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/pki.h"

static char *name_oneline(X509_NAME *n) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *out = NULL;
  if (bio && X509_NAME_print_ex(bio, n, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0)
    sli__bio_string(bio, &out, NULL);
  BIO_free(bio);
  return out;
}

static void collect_sans(sli_cert *c) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(c->x509, NID_subject_alt_name, NULL, NULL);
  if (!gens) return;
  size_t n = sk_GENERAL_NAME_num(gens);
  c->sans = calloc(n ? n : 1, sizeof(char *));
  for (size_t i = 0; c->sans && i < n; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    char buf[600];
    buf[0] = 0;
    if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
      const ASN1_IA5STRING *s = g->d.ia5;
      const char *pfx = g->type == GEN_DNS ? "DNS" : g->type == GEN_EMAIL ? "email" : "URI";
      snprintf(buf, sizeof(buf), "%s:%.*s", pfx, (int)ASN1_STRING_length(s),
               (const char *)ASN1_STRING_get0_data(s));
    } else if (g->type == GEN_IPADD) {
      const ASN1_OCTET_STRING *ip = g->d.iPAddress;
      char a[INET6_ADDRSTRLEN] = "?";
      if (ip->length == 4) inet_ntop(AF_INET, ip->data, a, sizeof(a));
      if (ip->length == 16) inet_ntop(AF_INET6, ip->data, a, sizeof(a));
      snprintf(buf, sizeof(buf), "IP:%s", a);
    } else {
      continue;
    }
    c->sans[c->n_sans++] = strdup(buf);
  }
  GENERAL_NAMES_free(gens);
}

/* Takes references to `x509` and `chain` (which may be NULL). */
sli_cert *sli__cert_from_x509(X509 *x509, STACK_OF(X509) *chain) {
  sli_cert *c = sli__zalloc(sizeof(*c));
  if (!c) return NULL;
  atomic_init(&c->refs, 1);
  X509_up_ref(x509);
  c->x509 = x509;
  c->chain = chain ? X509_chain_up_ref(chain) : NULL;
  c->subject = name_oneline(X509_get_subject_name(x509));
  c->issuer = name_oneline(X509_get_issuer_name(x509));
  uint8_t md[32];
  unsigned mdlen = 0;
  if (X509_digest(x509, EVP_sha256(), md, &mdlen) && (c->fingerprint = malloc(mdlen * 3 + 1))) {
    for (unsigned i = 0; i < mdlen; i++)
      snprintf(c->fingerprint + 3 * i, 4, "%02X%s", md[i], i + 1 < mdlen ? ":" : "");
  }
  BIO *bio = BIO_new(BIO_s_mem());
  int ok = bio && PEM_write_bio_X509(bio, x509);
  for (size_t i = 1; ok && c->chain && i < sk_X509_num(c->chain); i++)
    ok = PEM_write_bio_X509(bio, sk_X509_value(c->chain, i));
  if (ok) sli__bio_string(bio, &c->chain_pem, NULL);
  BIO_free(bio);
  collect_sans(c);
  ERR_clear_error();
  return c;
}

static int load_common(sli_cert **out, const char *what, const char *pem, size_t len,
                       sli__error *e) {
  STACK_OF(X509) *chain;
  int rc = sli__parse_chain(what, pem, len, &chain, e);
  if (rc) return rc;
  *out = sli__cert_from_x509(sk_X509_value(chain, 0), chain);
  sk_X509_pop_free(chain, X509_free);
  return *out ? 0 : sli__fail(e, SLI_E_NOMEM, "out of memory reading %s", what);
}

int sli_cert_load_file(sli_cert **out, const char *path, char *msg, size_t cap) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_cert_load_file: out is NULL");
  *out = NULL;
  sli__error err = {0};
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_cert_load_file: the library cannot be initialised");
  char *data;
  size_t len;
  rc = sli__read_file(path, &data, &len, &err);
  if (!rc) {
    char what[600];
    snprintf(what, sizeof(what), "certificate file '%s'", path);
    rc = load_common(out, what, data, len, &err);
    free(data);
  }
  if (rc) sli__error_to_buf(&err, msg, cap);
  return rc;
}

int sli_cert_load_mem(sli_cert **out, const char *pem, size_t len, char *msg, size_t cap) {
  if (!out || !pem) return sli__fail(NULL, SLI_E_INVAL, "sli_cert_load_mem: out and pem are needed");
  *out = NULL;
  sli__error err = {0};
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_cert_load_mem: the library cannot be initialised");
  rc = load_common(out, "certificate PEM", pem, len, &err);
  if (rc) sli__error_to_buf(&err, msg, cap);
  return rc;
}

sli_cert *sli_cert_up_ref(const sli_cert *c) {
  if (!c) return NULL;
  sli_cert *m = (sli_cert *)c; /* the count is not the certificate: const to callers, not here */
  atomic_fetch_add(&m->refs, 1);
  return m;
}

void sli_cert_free(sli_cert *c) {
  if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
  X509_free(c->x509);
  sk_X509_pop_free(c->chain, X509_free);
  free(c->subject);
  free(c->issuer);
  free(c->fingerprint);
  free(c->chain_pem);
  for (size_t i = 0; i < c->n_sans; i++) free(c->sans[i]);
  free(c->sans);
  free(c);
}

const char *sli_cert_subject(const sli_cert *c) { return c ? c->subject : NULL; }
const char *sli_cert_issuer(const sli_cert *c) { return c ? c->issuer : NULL; }
size_t sli_cert_san_count(const sli_cert *c) { return c ? c->n_sans : 0; }
const char *sli_cert_san(const sli_cert *c, size_t i) {
  return c && i < c->n_sans ? c->sans[i] : NULL;
}
const char *sli_cert_fingerprint_sha256(const sli_cert *c) { return c ? c->fingerprint : NULL; }
const char *sli_cert_chain_pem(const sli_cert *c) { return c ? c->chain_pem : NULL; }

static int64_t asn1_time_unix(const ASN1_TIME *t) {
  ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
  int days = 0, secs = 0;
  int ok = t && epoch && ASN1_TIME_diff(&days, &secs, epoch, t);
  ASN1_TIME_free(epoch);
  return ok ? (int64_t)days * 86400 + secs : 0;
}

int64_t sli_cert_not_before(const sli_cert *c) {
  return c ? asn1_time_unix(X509_get0_notBefore(c->x509)) : 0;
}

int64_t sli_cert_not_after(const sli_cert *c) {
  return c ? asn1_time_unix(X509_get0_notAfter(c->x509)) : 0;
}
