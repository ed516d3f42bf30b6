/* fuzz_pem_parse.c — libFuzzer target: certificate and key parsing of arbitrary input (PEM checks,
 * chains, every certificate accessor; the same bytes as a key pair with and without a password).
 * Target functions: sli_cert_load_mem and accessors, sli_config_set_keypair_mem, sli_config_set_ca_mem. */
#include <stdint.h>
#include <stdlib.h>

#include "sli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *pem = (const char *)data;
  sli_cert *c;
  char msg[256];
  if (sli_cert_load_mem(&c, pem, size, msg, sizeof(msg)) == 0) {
    (void)sli_cert_subject(c);
    (void)sli_cert_issuer(c);
    for (size_t i = 0; i < sli_cert_san_count(c); i++) (void)sli_cert_san(c, i);
    (void)sli_cert_not_before(c);
    (void)sli_cert_not_after(c);
    (void)sli_cert_fingerprint_sha256(c);
    (void)sli_cert_chain_pem(c);
    sli_cert_free(c);
  }
  sli_config *cfg = sli_config_new();
  if (!cfg) return 0;
  size_t half = size / 2;
  (void)sli_config_set_keypair_mem(cfg, pem, half, pem + half, size - half, NULL);
  (void)sli_config_set_keypair_mem(cfg, pem, size, pem, size, "password");
  (void)sli_config_set_ca_mem(cfg, pem, size);
  sli_config_free(cfg);
  return 0;
}
