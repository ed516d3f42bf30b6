/* fuzz_seal_open.c — libFuzzer target: opening arbitrary input as a sealed blob with a fixed,
 * test-only keyring, with the first input byte choosing how much of the rest is associated data.
 * Target functions: sli_open, sli_open_alloc, sli_sealed_key_id. Deterministic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sli.h"

static const char ring[] =
    "# sli keyring v1\nprimary 01020304\n"
    "key 01020304 1700000000 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
    "key 0a0b0c0d 1600000000 1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static sli_keyring *kr;
  if (!kr) {
    char path[] = "/tmp/sli-fuzz-ring-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, ring, sizeof(ring) - 1) != (ssize_t)(sizeof(ring) - 1)) abort();
    close(fd);
    if (sli_keyring_load_file(&kr, path, NULL, 0)) abort();
    unlink(path);
  }
  size_t ad_len = size ? data[0] % 8 : 0;
  if (ad_len + 1 > size) ad_len = 0;
  const uint8_t *ad = size ? data + 1 : NULL, *in = size ? data + 1 + ad_len : data;
  size_t in_len = size ? size - 1 - ad_len : 0;
  uint8_t out[4096];
  size_t n = sizeof(out);
  int rc = sli_open(kr, out, &n, in, in_len, ad, ad_len);
  if (rc && rc != SLI_E_BUFSIZE && n != 0) abort(); /* no partial plaintext */
  uint8_t *p;
  size_t pl;
  if (sli_open_alloc(kr, &p, &pl, in, in_len, ad, ad_len) == 0) sli_free(p, pl);
  uint32_t id;
  (void)sli_sealed_key_id(in, in_len, &id);
  return 0;
}
