/* age.h — internals of the age v1 implementation (age_keys.c, age.c, bech32.c). */
#ifndef SLI_AGE_H
#define SLI_AGE_H

#include "internal.h"

#define AGE_SCRYPT_MAX_LOG2 22

struct sli_age_recipient {
  int scrypt;            /* 1: passphrase recipient */
  uint8_t pk[32];        /* X25519 public key */
  char *passphrase;
  int log2_n;
};

struct sli_age_identity {
  int scrypt;
  uint8_t sk[32];        /* X25519 private key */
  uint8_t pk[32];
  char *passphrase;
};

int sli__bech32_encode(char *out, size_t cap, const char *hrp, const uint8_t *bytes, size_t n,
                       int upper);
int sli__bech32_decode(const char *s, const char *want_hrp, uint8_t *out, size_t want_len);

#endif
