/* age.h — internals of the age v1 implementation (age.c, recipients.c, ssh.c, bech32.c). Never
 * installed. */
#ifndef SLI_AGE_H
#define SLI_AGE_H

#include "pki/pki.h"

#define AGE_SCRYPT_MAX_LOG2 22

/* Recipient and identity kinds. */
enum { AGE_X25519 = 0, AGE_SCRYPT, AGE_SSH_ED25519, AGE_SSH_RSA };

struct sli_age_recipient {
  int kind;
  uint8_t pk[32];        /* X25519 public key (ssh-ed25519: the Montgomery form of the Ed25519 key) */
  char *passphrase;      /* scrypt */
  int log2_n;
  char tag[8];           /* ssh-*: base64 of the first 4 bytes of SHA-256(public-key wire blob) */
  uint8_t tweak[32];     /* ssh-ed25519: HKDF(ikm = "", salt = blob, "age-encryption.org/v1/ssh-ed25519") */
  EVP_PKEY *pkey;        /* ssh-*: the SSH public key (kept to print it and, for RSA, to encrypt) */
};

struct sli_age_identity {
  int kind;
  uint8_t sk[32];        /* X25519 private key (ssh-ed25519: SHA-512(seed)[0..32]) */
  uint8_t pk[32];
  char *passphrase;
  char tag[8];
  uint8_t tweak[32];
  EVP_PKEY *pkey;        /* ssh-*: the private key */
};

int sli__bech32_encode(char *out, size_t cap, const char *hrp, const uint8_t *bytes, size_t n,
                       int upper);
int sli__bech32_decode(const char *s, const char *want_hrp, uint8_t *out, size_t want_len);

/* age_ssh.c. sli__age_ssh_recipient / _identity fill an object of kind AGE_SSH_* from an Ed25519 or
 * RSA key (taking a reference), returning 0, SLI_E_UNSUPPORTED or SLI_E_WEAK_KEY / SLI_E_PEM. */
int sli__age_ssh_recipient(sli_age_recipient *r, EVP_PKEY *pkey);
int sli__age_ssh_identity(sli_age_identity *id, EVP_PKEY *pkey);
/* sli__age_ssh_wrap writes the stanza line ("-> ssh-… args\n") and its body (at most 2048 bytes). */
int sli__age_ssh_wrap(const sli_age_recipient *r, const uint8_t file_key[16], char *line, size_t cap,
                      uint8_t *body, size_t *body_len);
/* sli__age_ssh_unwrap returns 1 with the file key if `id` opens the stanza, 0 if it is not for
 * `id`, or SLI_E_HEADER if the stanza is malformed. */
int sli__age_ssh_unwrap(const sli_age_identity *id, char **args, int nargs, const uint8_t *body, size_t blen,
                        uint8_t file_key[16]);
/* sli__age_identity_dup copies an identity (its passphrase and key reference too). */
sli_age_identity *sli__age_identity_dup(const sli_age_identity *src);
/* The ChaCha20-Poly1305 wrap of a file key under `key` (zero nonce), shared by every stanza type. */
int sli__age_wrap_key(uint8_t *out32, const uint8_t key[32], const uint8_t file_key[16]);
int sli__age_unwrap_key(uint8_t file_key[16], const uint8_t key[32], const uint8_t *body, size_t len);
int sli__age_hkdf32(uint8_t out[32], const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                    const char *info);
size_t sli__age_b64(char *out, const uint8_t *in, size_t n);
long sli__age_b64_decode(uint8_t *out, size_t cap, const char *in, size_t n);

#endif
