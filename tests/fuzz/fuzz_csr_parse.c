/* fuzz_csr_parse.c — libFuzzer target: certificate-request parsing of arbitrary input (PEM checks,
 * PKCS#10 decoding, the request's signature, its subject and SAN extension copied into a leaf) by a
 * local CA whose key and certificate are made once, at start-up, through the public API.
 * Target function: sli_ca_issue_alloc (csr_pem = the input). Checks two promises and aborts (a
 * finding) if they break: a failure leaves `*out` NULL and `*out_len` 0, and an issued certificate is
 * a NUL-terminated PEM string (`*out_len` counts the NUL, as for every `_alloc` string) that
 * sli_cert_load_mem accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sli.h"

static sli_key *ca_key;
static char *ca_pem;
static size_t ca_len;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* P-256: cheap to sign with, for the inputs that do get a certificate. */
  if (sli_key_generate(&ca_key, SLI_KEY_EC, 256, 0) != 0) abort();
  if (sli_cert_selfsign_alloc(ca_key, "/CN=fuzz CA/O=sli tests", NULL, 0, 3650, SLI_CERT_CA, &ca_pem,
                              &ca_len) != 0)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *out = (char *)1; /* must be overwritten */
  size_t out_len = 12345;
  int rc = sli_ca_issue_alloc(ca_pem, ca_len, ca_key, (const char *)data, size, 0, &out, &out_len);
  if (rc) {
    if (out || out_len) abort(); /* a failure leaves no output */
    return 0;
  }
  if (!out || out_len == 0 || strlen(out) != out_len - 1) abort();
  sli_cert *c;
  char msg[256];
  if (sli_cert_load_mem(&c, out, out_len - 1, msg, sizeof(msg)) != 0) abort(); /* issued: loadable */
  (void)sli_cert_subject(c);
  for (size_t i = 0; i < sli_cert_san_count(c); i++) (void)sli_cert_san(c, i);
  sli_cert_free(c);
  sli_free(out, out_len);
  return 0;
}
