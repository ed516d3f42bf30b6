/* keyring.c — sealed-blob keyrings: several AES-256 keys with one primary, loaded from and saved to
 * a small text file (format in the README), immutable once built.
 *
 *   # sli keyring v1
 *   primary 5f3a09c2
 *   key 5f3a09c2 1795600000 <64 hex digits>
 *   key 0b7e1d44 1795500000 <64 hex digits>
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/mem.h>
#include <openssl/rand.h>

#include "seal/seal.h"

static sli_keyring *kr_new(size_t n) {
  sli_keyring *kr = sli__zalloc(sizeof(*kr) + n * sizeof(kr->keys[0]));
  if (!kr) return NULL;
  atomic_init(&kr->refs, 1);
  kr->n = n;
  return kr;
}

/* ready sets up every key's AEAD context; a keyring is immutable afterwards. */
static int ready(sli_keyring *kr, sli__error *e) {
  for (size_t i = 0; i < kr->n; i++) {
    if (kr->keys[i].aead_ready) continue;
    if (!EVP_AEAD_CTX_init(&kr->keys[i].aead, EVP_aead_aes_256_gcm(), kr->keys[i].key, 32,
                           SLI_SEAL_TAG, NULL))
      return sli__fail_ssl(e, SLI_E_INTERNAL, "cannot set up AES-256-GCM for key %08x",
                           kr->keys[i].id);
    kr->keys[i].aead_ready = 1;
  }
  return 0;
}

/* fresh_key makes a random key whose ID is none of `avoid`'s. */
static int fresh_key(sli__ring_key *k, const sli_keyring *avoid) {
  for (int tries = 0; tries < 16; tries++) {
    uint8_t id[4];
    if (!RAND_bytes(id, 4) || !RAND_bytes(k->key, 32))
      return sli__fail(NULL, SLI_E_INTERNAL, "no random bytes for a new key");
    k->id = (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16 | (uint32_t)id[2] << 8 | id[3];
    int clash = k->id == 0;
    for (size_t i = 0; avoid && i < avoid->n; i++) clash |= avoid->keys[i].id == k->id;
    if (!clash) {
      k->created = (int64_t)time(NULL);
      return 0;
    }
  }
  return sli__fail(NULL, SLI_E_INTERNAL, "no fresh key ID after 16 random draws");
}

int sli_keyring_generate(sli_keyring **out) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_keyring_generate: out is NULL");
  *out = NULL;
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_keyring_generate: the library cannot be initialised");
  sli_keyring *kr = kr_new(1);
  if (!kr) return sli__fail(NULL, SLI_E_NOMEM, "out of memory making a keyring");
  if ((rc = fresh_key(&kr->keys[0], NULL)) || (rc = ready(kr, NULL))) {
    sli_keyring_free(kr);
    return rc;
  }
  *out = kr;
  return 0;
}

int sli_keyring_rotate(sli_keyring **out, const sli_keyring *old) {
  if (!out || !old) return sli__fail(NULL, SLI_E_INVAL, "sli_keyring_rotate: out and kr are needed");
  *out = NULL;
  if (old->n >= SLI_KEYRING_MAX)
    return sli__fail(NULL, SLI_E_INVAL, "the keyring holds %d keys, the most it can", SLI_KEYRING_MAX);
  sli_keyring *kr = kr_new(old->n + 1);
  if (!kr) return sli__fail(NULL, SLI_E_NOMEM, "out of memory making a keyring");
  int rc = fresh_key(&kr->keys[0], old);
  if (rc) {
    sli_keyring_free(kr);
    return rc;
  }
  for (size_t i = 0; i < old->n; i++) {
    kr->keys[i + 1].id = old->keys[i].id;
    kr->keys[i + 1].created = old->keys[i].created;
    memcpy(kr->keys[i + 1].key, old->keys[i].key, 32);
  }
  if ((rc = ready(kr, NULL))) {
    sli_keyring_free(kr);
    return rc;
  }
  *out = kr;
  return 0;
}

void sli_keyring_free(sli_keyring *kr) {
  if (!kr || atomic_fetch_sub(&kr->refs, 1) != 1) return;
  for (size_t i = 0; i < kr->n; i++)
    if (kr->keys[i].aead_ready) EVP_AEAD_CTX_cleanup(&kr->keys[i].aead);
  OPENSSL_cleanse(kr->keys, kr->n * sizeof(kr->keys[0]));
  free(kr);
}

size_t sli_keyring_count(const sli_keyring *kr) { return kr ? kr->n : 0; }

uint32_t sli_keyring_key_id(const sli_keyring *kr, size_t i) {
  return kr && i < kr->n ? kr->keys[i].id : 0;
}

int64_t sli_keyring_key_created(const sli_keyring *kr, size_t i) {
  return kr && i < kr->n ? kr->keys[i].created : 0;
}

const sli__ring_key *sli__keyring_find(const sli_keyring *kr, uint32_t id) {
  for (size_t i = 0; i < kr->n; i++)
    if (kr->keys[i].id == id) return &kr->keys[i];
  return NULL;
}

/* hex32 reads 64 hex digits into `out`: 0 or SLI_E_CONFIG. */
static int hex32(const char *s, uint8_t out[32]) {
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return SLI_E_CONFIG;
    out[i] = (uint8_t)v;
  }
  return 0;
}

int sli_keyring_load_file(sli_keyring **out, const char *path, char *msg, size_t cap) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_keyring_load_file: out is NULL");
  *out = NULL;
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_keyring_load_file: the library cannot be initialised");
  char *data;
  size_t len;
  sli__error err = {0};
  if ((rc = sli__read_file(path, &data, &len, &err))) {
    sli__error_to_buf(&err, msg, cap);
    return rc;
  }
  sli__ring_key keys[SLI_KEYRING_MAX];
  memset(keys, 0, sizeof(keys));
  size_t n = 0, lineno = 0;
  uint32_t primary = 0;
  int have_primary = 0;
  rc = strncmp(data, "# sli keyring v1", 16) == 0
           ? 0
           : sli__fail(&err, SLI_E_CONFIG,
                       "'%s' is not an sli keyring (its first line is not '# sli keyring v1')", path);
  for (char *save, *line = rc ? NULL : strtok_r(data, "\n", &save); line && !rc; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    line[strcspn(line, "\r")] = 0;
    if (!*line || *line == '#') continue;
    unsigned id;
    long long created;
    char hex[80];
    if (sscanf(line, "primary %8x", &id) == 1 && !have_primary) {
      primary = id;
      have_primary = 1;
    } else if (sscanf(line, "key %8x %lld %70s", &id, &created, hex) == 3 && strlen(hex) == 64 &&
               n < SLI_KEYRING_MAX && hex32(hex, keys[n].key) == 0 && id != 0) {
      keys[n].id = id;
      keys[n].created = created;
      for (size_t i = 0; i < n; i++)
        if (keys[i].id == id) rc = sli__fail(&err, SLI_E_CONFIG, "keyring '%s', line %zu: key %08x appears twice", path, lineno, id);
      n++;
    } else {
      rc = sli__fail(&err, SLI_E_CONFIG, "keyring '%s', line %zu: expected 'primary ID' or 'key ID CREATED HEX64'", path, lineno);
    }
  }
  OPENSSL_cleanse(data, len);
  free(data);
  if (!rc && (n == 0 || !have_primary)) rc = sli__fail(&err, SLI_E_CONFIG, "keyring '%s' has no %s", path, n ? "primary line" : "key");
  /* the primary goes first */
  size_t pi = n;
  for (size_t i = 0; !rc && i < n; i++)
    if (keys[i].id == primary) pi = i;
  if (!rc && pi == n) rc = sli__fail(&err, SLI_E_CONFIG, "keyring '%s': the primary %08x is not one of its keys", path, primary);
  sli_keyring *kr = rc ? NULL : kr_new(n);
  if (!rc && !kr) rc = sli__fail(&err, SLI_E_NOMEM, "out of memory reading keyring '%s'", path);
  if (!rc) {
    kr->keys[0] = keys[pi];
    for (size_t i = 0, o = 1; i < n; i++)
      if (i != pi) kr->keys[o++] = keys[i];
    if ((rc = ready(kr, &err))) {
      sli_keyring_free(kr);
      kr = NULL;
    } else {
      *out = kr;
    }
  }
  OPENSSL_cleanse(keys, sizeof(keys));
  if (rc) sli__error_to_buf(&err, msg, cap);
  return rc;
}

int sli_keyring_save_file(const sli_keyring *kr, const char *path) {
  if (!kr || !path) return sli__fail(NULL, SLI_E_INVAL, "sli_keyring_save_file: kr and path are needed");
  /* "key %08x %lld %64x\n" per key, after two comment lines and the primary */
  size_t cap = 200 + kr->n * 110, len = 0;
  char *text = malloc(cap);
  if (!text) return sli__fail(NULL, SLI_E_NOMEM, "out of memory saving keyring '%s'", path);
  len += (size_t)snprintf(text + len, cap - len,
                          "# sli keyring v1\n# keys seal with the primary; every key opens. Keep "
                          "this file secret.\nprimary %08x\n",
                          kr->keys[0].id);
  for (size_t i = 0; i < kr->n; i++) {
    len += (size_t)snprintf(text + len, cap - len, "key %08x %lld ", kr->keys[i].id,
                            (long long)kr->keys[i].created);
    for (int k = 0; k < 32; k++) len += (size_t)snprintf(text + len, cap - len, "%02x", kr->keys[i].key[k]);
    text[len++] = '\n';
  }
  int rc = sli__write_file_atomic(path, text, len, 0600, 0, NULL);
  sli_free(text, cap);
  return rc;
}
