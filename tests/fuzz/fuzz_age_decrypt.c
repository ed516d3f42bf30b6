/* fuzz_age_decrypt.c — libFuzzer target: age decryption (header parsing, armor, STREAM) of arbitrary
 * input with a fixed, test-only X25519 identity, fed in two updates split at the first byte's value.
 * Target functions: sli_age_dec_new, sli_age_dec_update, sli_age_dec_final. Deterministic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sli.h"

/* test-only key, also in tests/fuzz/README.md; never used for anything else */
#define TEST_ONLY_IDENTITY "AGE-SECRET-KEY-1L7K2GCQN42NPYEQGJN3RJH5826U9V2GD79M23LSSZLZTM0QJW73Q234TQX"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static sli_age_identity *id;
  if (!id && sli_age_identity_parse(&id, TEST_ONLY_IDENTITY) != 0) abort();
  const sli_age_identity *ids[1] = {id};
  sli_age_dec *d;
  if (sli_age_dec_new(&d, ids, 1, 0)) return 0;
  size_t split = size ? data[0] % (size + 1) : 0;
  size_t cap = sli_age_dec_update_bound(d, size);
  uint8_t *out = malloc(cap);
  size_t n = cap;
  int rc = sli_age_dec_update(d, out, &n, data, split);
  if (!rc) {
    n = cap;
    rc = sli_age_dec_update(d, out, &n, data + split, size - split);
  }
  if (!rc) {
    n = cap;
    rc = sli_age_dec_final(d, out, &n);
  }
  if (rc && !sli_age_dec_error(d) && rc != SLI_E_NOMEM) abort(); /* every failure says why */
  free(out);
  sli_age_dec_free(d);
  return 0;
}
