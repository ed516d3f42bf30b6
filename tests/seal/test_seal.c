/* test_seal.c — sealed blobs and keyrings through the public API only (linked against
 * libsli.so.1): round trips, every single-bit flip, truncation and extension, associated data,
 * size queries, rotation, unknown keys, keyring files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"


static sli_keyring *kr;
static char dir[] = "/tmp/sli-seal-XXXXXX";

static int test_round_trip_sizes(void) {
  CHECK_EQ(sli_seal_overhead(), 33);
  size_t sizes[] = {0, 1, 15, 16, 17, 64, 4096, 1 << 20};
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    size_t n = sizes[s];
    uint8_t *in = malloc(n + 1), *out = malloc(n + 33), *back = malloc(n + 1);
    for (size_t i = 0; i < n; i++) in[i] = (uint8_t)(i * 7 + 3);
    size_t out_len = n + 33, back_len = n;
    CHECK_EQ(sli_seal(kr, out, &out_len, in, n, (const uint8_t *)"t.c", 3), 0);
    CHECK_EQ(out_len, n + 33);
    CHECK_EQ(out[0], 1);
    uint32_t id;
    CHECK_EQ(sli_sealed_key_id(out, out_len, &id), 0);
    CHECK_EQ(id, sli_keyring_key_id(kr, 0));
    CHECK_EQ(sli_open(kr, back, &back_len, out, out_len, (const uint8_t *)"t.c", 3), 0);
    CHECK_EQ(back_len, n);
    CHECK(n == 0 || memcmp(in, back, n) == 0);
    free(in);
    free(out);
    free(back);
  }
  /* two seals of the same plaintext differ (random nonces) */
  uint8_t a[40], b[40];
  size_t al = sizeof(a), bl = sizeof(b);
  CHECK_EQ(sli_seal(kr, a, &al, (const uint8_t *)"same", 4, NULL, 0), 0);
  CHECK_EQ(sli_seal(kr, b, &bl, (const uint8_t *)"same", 4, NULL, 0), 0);
  CHECK(memcmp(a, b, al) != 0);
  return 0;
}

static int test_every_bit_flip_fails(void) {
  const char msg[] = "account 42: balance 1000";
  uint8_t blob[64], out[64];
  size_t bl = sizeof(blob);
  CHECK_EQ(sli_seal(kr, blob, &bl, (const uint8_t *)msg, sizeof(msg), (const uint8_t *)"ad", 2), 0);
  for (size_t byte = 0; byte < bl; byte++)
    for (int bit = 0; bit < 8; bit++) {
      blob[byte] ^= (uint8_t)(1 << bit);
      size_t ol = sizeof(out);
      memset(out, 0xAA, sizeof(out));
      int rc = sli_open(kr, out, &ol, blob, bl, (const uint8_t *)"ad", 2);
      int want = byte == 0 ? SLI_E_HEADER : byte < 5 ? SLI_E_NO_MATCH : SLI_E_PAYLOAD;
      CHECK_EQ(rc, want);
      CHECK_EQ(ol, 0);
      for (size_t i = 0; i < sizeof(out); i++) CHECK(out[i] == 0); /* no partial plaintext */
      blob[byte] ^= (uint8_t)(1 << bit);
    }
  return 0;
}

static int test_truncation_extension_ad(void) {
  uint8_t blob[80], ext[81], out[80];
  size_t bl = sizeof(blob), ol;
  CHECK_EQ(sli_seal(kr, blob, &bl, (const uint8_t *)"hello", 5, (const uint8_t *)"a", 1), 0);
  for (size_t cut = 0; cut < bl; cut++) {
    ol = sizeof(out);
    int rc = sli_open(kr, out, &ol, blob, cut, (const uint8_t *)"a", 1);
    CHECK_EQ(rc, cut < 33 ? SLI_E_HEADER : SLI_E_PAYLOAD);
  }
  memcpy(ext, blob, bl);
  ext[bl] = 0;
  ol = sizeof(out);
  CHECK_EQ(sli_open(kr, out, &ol, ext, bl + 1, (const uint8_t *)"a", 1), SLI_E_PAYLOAD);
  ol = sizeof(out);
  CHECK_EQ(sli_open(kr, out, &ol, blob, bl, (const uint8_t *)"b", 1), SLI_E_PAYLOAD);
  ol = sizeof(out);
  CHECK_EQ(sli_open(kr, out, &ol, blob, bl, NULL, 0), SLI_E_PAYLOAD);
  ol = sizeof(out);
  CHECK_EQ(sli_open(kr, out, &ol, blob, bl, (const uint8_t *)"a", 1), 0);
  CHECK(ol == 5 && memcmp(out, "hello", 5) == 0);
  return 0;
}

static int test_size_queries_and_alloc(void) {
  size_t n = 0;
  CHECK_EQ(sli_seal(kr, NULL, &n, (const uint8_t *)"12345", 5, NULL, 0), SLI_E_BUFSIZE);
  CHECK_EQ(n, 38);
  uint8_t small[10];
  n = sizeof(small);
  CHECK_EQ(sli_seal(kr, small, &n, (const uint8_t *)"12345", 5, NULL, 0), SLI_E_BUFSIZE);
  CHECK_EQ(n, 38);
  uint8_t *blob, *plain;
  size_t bl, pl;
  CHECK_EQ(sli_seal_alloc(kr, &blob, &bl, (const uint8_t *)"12345", 5, NULL, 0), 0);
  n = 0;
  CHECK_EQ(sli_open(kr, NULL, &n, blob, bl, NULL, 0), SLI_E_BUFSIZE);
  CHECK_EQ(n, 5);
  CHECK_EQ(sli_open_alloc(kr, &plain, &pl, blob, bl, NULL, 0), 0);
  CHECK(pl == 5 && memcmp(plain, "12345", 5) == 0);
  sli_free(plain, pl);
  blob[bl - 1] ^= 1;
  plain = (uint8_t *)1;
  CHECK_EQ(sli_open_alloc(kr, &plain, &pl, blob, bl, NULL, 0), SLI_E_PAYLOAD);
  CHECK(plain == NULL && pl == 0);
  sli_free(blob, bl);
  CHECK_EQ(sli_seal(NULL, small, &n, NULL, 0, NULL, 0), SLI_E_INVAL);
  return 0;
}

static int test_rotation_and_files(void) {
  char path[256];
  snprintf(path, sizeof(path), "%s/keyring", dir);
  CHECK_EQ(sli_keyring_save_file(kr, path), 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  uint8_t old_blob[64];
  size_t obl = sizeof(old_blob);
  CHECK_EQ(sli_seal(kr, old_blob, &obl, (const uint8_t *)"old", 3, NULL, 0), 0);
  sli_keyring *loaded, *rotated;
  char msg[256];
  CHECK_EQ(sli_keyring_load_file(&loaded, path, msg, sizeof(msg)), 0);
  CHECK_EQ(sli_keyring_rotate(&rotated, loaded), 0);
  CHECK_EQ(sli_keyring_count(rotated), 2);
  CHECK(sli_keyring_key_id(rotated, 0) != sli_keyring_key_id(loaded, 0));
  CHECK_EQ(sli_keyring_key_id(rotated, 1), sli_keyring_key_id(loaded, 0));
  CHECK_EQ(sli_keyring_save_file(rotated, path), 0);
  sli_keyring *reread;
  CHECK_EQ(sli_keyring_load_file(&reread, path, msg, sizeof(msg)), 0);
  CHECK_EQ(sli_keyring_key_id(reread, 0), sli_keyring_key_id(rotated, 0));
  uint8_t out[64], nb[64];
  size_t ol = sizeof(out), nbl = sizeof(nb);
  CHECK_EQ(sli_open(reread, out, &ol, old_blob, obl, NULL, 0), 0); /* old data still opens */
  CHECK_EQ(sli_seal(reread, nb, &nbl, (const uint8_t *)"new", 3, NULL, 0), 0);
  uint32_t id;
  CHECK_EQ(sli_sealed_key_id(nb, nbl, &id), 0);
  CHECK_EQ(id, sli_keyring_key_id(reread, 0)); /* new data uses the new primary */
  ol = sizeof(out);
  CHECK_EQ(sli_open(loaded, out, &ol, nb, nbl, NULL, 0), SLI_E_NO_MATCH); /* the old ring lacks it */
  sli_keyring_free(loaded);
  sli_keyring_free(rotated);
  sli_keyring_free(reread);
  /* bad files: named errors with the file and line */
  const char *bad[] = {"not a keyring\n", "# sli keyring v1\nprimary 01020304\n",
                       "# sli keyring v1\nprimary 0a0a0a0a\nkey 01020304 1 00\n",
                       ("# sli keyring v1\nprimary 0a0a0a0a\nkey 01020304 1 "
                        "0000000000000000000000000000000000000000000000000000000000000000\n")};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    FILE *f = fopen(path, "w");
    fputs(bad[i], f);
    fclose(f);
    sli_keyring *k = (sli_keyring *)1;
    CHECK_EQ(sli_keyring_load_file(&k, path, msg, sizeof(msg)), SLI_E_CONFIG);
    CHECK(k == NULL && strstr(msg, "keyring"));
  }
  sli_keyring *k;
  CHECK_EQ(sli_keyring_load_file(&k, "/nonexistent/kr", msg, sizeof(msg)), SLI_E_FILE);
  sli_keyring_free(NULL);
  return 0;
}

int main(void) {
  if (!mkdtemp(dir) || sli_keyring_generate(&kr)) return 1;
  run("round_trip_sizes", test_round_trip_sizes);
  run("every_bit_flip_fails", test_every_bit_flip_fails);
  run("truncation_extension_ad", test_truncation_extension_ad);
  run("size_queries_and_alloc", test_size_queries_and_alloc);
  run("rotation_and_files", test_rotation_and_files);
  sli_keyring_free(kr);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd)) {}
  return finish();
}
