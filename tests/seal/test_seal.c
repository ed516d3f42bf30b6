/* test_seal.c — sealed blobs and keyrings through the public API only (linked against
 * libsli.so.1): round trips, every single-bit flip, truncation and extension, associated data,
 * size queries, rotation, unknown keys, keyring files; the messages of failures, one thread's apart
 * from another's. */
#include <errno.h>
#include <pthread.h>
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

/* A keyring has no message of its own (threads share it): a call on it that fails says why in
 * sli_last_error, naming the file and the system's reason; a later success leaves that message. */
static int test_last_error_names_the_file(void) {
  char path[256], saved[1024];
  snprintf(path, sizeof(path), "%s/missing-dir/keyring", dir);
  CHECK_EQ(sli_keyring_save_file(kr, path), SLI_E_FILE);
  const char *m = sli_last_error();
  CHECK(m && strstr(m, path) && strstr(m, strerror(ENOENT)));
  snprintf(saved, sizeof(saved), "%s", m);
  sli_keyring *k;
  CHECK_EQ(sli_keyring_generate(&k), 0);
  CHECK(sli_last_error() && strcmp(sli_last_error(), saved) == 0);
  sli_keyring_free(k);
  /* a call with an out_msg buffer writes the same message there and in the thread's */
  char msg[1024];
  CHECK_EQ(sli_keyring_load_file(&k, path, msg, sizeof(msg)), SLI_E_FILE);
  CHECK(strstr(msg, path) && strcmp(msg, sli_last_error()) == 0);
  uint8_t out[8];
  size_t ol = sizeof(out);
  CHECK_EQ(sli_open(kr, out, &ol, (const uint8_t *)"short", 5, NULL, 0), SLI_E_HEADER);
  CHECK(strstr(sli_last_error(), "not a sealed blob"));
  return 0;
}

/* One failure per thread: each thread reads its own failure's message, after both have failed. */
typedef struct {
  const char *path; /* save the keyring there, or (NULL) open a blob that is not one */
  pthread_barrier_t *both_failed;
  int fresh, rc;
  char msg[1024];
} failing_thread;

static void *fail_once(void *arg) {
  failing_thread *t = arg;
  t->fresh = sli_last_error() == NULL;
  uint8_t out[8];
  size_t ol = sizeof(out);
  t->rc = t->path ? sli_keyring_save_file(kr, t->path)
                  : sli_open(kr, out, &ol, (const uint8_t *)"\x02 not a blob of version 1 at all",
                             SLI_SEAL_OVERHEAD + 1, NULL, 0);
  pthread_barrier_wait(t->both_failed);
  snprintf(t->msg, sizeof(t->msg), "%s", sli_last_error() ? sli_last_error() : "(none)");
  return NULL;
}

static int test_last_error_per_thread(void) {
  char path[256], mine[1024];
  snprintf(path, sizeof(path), "%s/no-such-dir/kr", dir);
  CHECK_EQ(sli_keyring_save_file(NULL, path), SLI_E_INVAL);
  snprintf(mine, sizeof(mine), "%s", sli_last_error());
  pthread_barrier_t b;
  pthread_barrier_init(&b, NULL, 2);
  failing_thread saver = {path, &b, 0, 0, ""}, opener = {NULL, &b, 0, 0, ""};
  pthread_t t1, t2;
  CHECK(pthread_create(&t1, NULL, fail_once, &saver) == 0);
  CHECK(pthread_create(&t2, NULL, fail_once, &opener) == 0);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  pthread_barrier_destroy(&b);
  CHECK(saver.fresh && opener.fresh); /* a new thread has no failure yet */
  CHECK_EQ(saver.rc, SLI_E_FILE);
  CHECK_EQ(opener.rc, SLI_E_HEADER);
  CHECK(strstr(saver.msg, path) && !strstr(saver.msg, "sealed blob"));
  CHECK(strstr(opener.msg, "version byte 0x02") && !strstr(opener.msg, path));
  CHECK(strcmp(sli_last_error(), mine) == 0); /* the main thread's own is untouched */
  return 0;
}

int main(void) {
  if (!mkdtemp(dir) || sli_keyring_generate(&kr)) return 1;
  run("round_trip_sizes", test_round_trip_sizes);
  run("every_bit_flip_fails", test_every_bit_flip_fails);
  run("truncation_extension_ad", test_truncation_extension_ad);
  run("size_queries_and_alloc", test_size_queries_and_alloc);
  run("rotation_and_files", test_rotation_and_files);
  run("last_error_names_the_file", test_last_error_names_the_file);
  run("last_error_per_thread", test_last_error_per_thread);
  sli_keyring_free(kr);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd)) {}
  return finish();
}
