/* seal.h — sealed blobs: the keyring object, shared by keyring.c and seal.c. Never installed. */
#ifndef SLI_SEAL_H
#define SLI_SEAL_H

#include <openssl/aead.h>

#include "core/core.h"

#define SLI_KEYRING_MAX 256

typedef struct sli__ring_key {
  uint32_t id;
  int64_t created;
  uint8_t key[32];
  EVP_AEAD_CTX aead; /* AES-256-GCM, set up once (sealing and opening may share it across threads) */
  int aead_ready;
} sli__ring_key;

struct sli_keyring {
  atomic_int refs;
  size_t n;               /* keys[0] is the primary */
  sli__ring_key keys[];
};

const sli__ring_key *sli__keyring_find(const sli_keyring *kr, uint32_t id);

#define SLI_SEAL_TAG 16

#endif
