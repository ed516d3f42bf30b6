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

/* sli__bech32_encode writes `n` bytes as Bech32 with human-readable part `hrp` (upper case with
 * `upper`) into `out` of `cap` bytes: 0 or SLI_E_BUFSIZE (bech32.c). */
int sli__bech32_encode(char *out, size_t cap, const char *hrp, const uint8_t *bytes, size_t n,
                       int upper);
/* sli__bech32_decode reads exactly `want_len` bytes from Bech32 text with human-readable part
 * `want_hrp` (either case): 0 or SLI_E_INVAL (bech32.c). */
int sli__bech32_decode(const char *s, const char *want_hrp, uint8_t *out, size_t want_len);

/* sli__age_ssh_recipient fills a recipient of kind AGE_SSH_* from an Ed25519 or RSA key, taking a
 * reference: 0, SLI_E_UNSUPPORTED, SLI_E_WEAK_KEY or SLI_E_PEM (ssh.c). */
int sli__age_ssh_recipient(sli_age_recipient *r, EVP_PKEY *pkey);
/* sli__age_ssh_identity is sli__age_ssh_recipient for an identity; a public key alone is
 * SLI_E_INVAL (ssh.c). */
int sli__age_ssh_identity(sli_age_identity *id, EVP_PKEY *pkey);
/* sli__age_ssh_wrap writes the stanza line ("-> ssh-… args\n") and its body (at most 2048 bytes):
 * 0 or SLI_E_INTERNAL (ssh.c). */
int sli__age_ssh_wrap(const sli_age_recipient *r, const uint8_t file_key[16], char *line, size_t cap,
                      uint8_t *body, size_t *body_len);
/* sli__age_ssh_unwrap returns 0 with the file key if `id` opens the stanza, SLI_E_NO_MATCH if the
 * stanza is not for `id` (or does not open with it), or SLI_E_HEADER if it is malformed (ssh.c). */
int sli__age_ssh_unwrap(const sli_age_identity *id, char **args, int nargs, const uint8_t *body, size_t blen,
                        uint8_t file_key[16]);
/* sli__age_identity_dup copies an identity (its passphrase and key reference too); NULL when out
 * of memory (recipients.c). */
sli_age_identity *sli__age_identity_dup(const sli_age_identity *src);

/* sli__age_wrap_key seals the 16-byte file key under `key` with ChaCha20-Poly1305 and a zero nonce,
 * as every stanza type does, into 32 bytes: 0 or SLI_E_INTERNAL. */
int sli__age_wrap_key(uint8_t *out32, const uint8_t key[32], const uint8_t file_key[16]);
/* sli__age_unwrap_key opens a wrapped file key: 0, or SLI_E_NO_MATCH if `key` does not open `body`
 * (the stanza is for another key, or was modified). */
int sli__age_unwrap_key(uint8_t file_key[16], const uint8_t key[32], const uint8_t *body, size_t len);
/* sli__age_hkdf32 derives 32 bytes with HKDF-SHA-256 and the label `info`: 0 or SLI_E_INTERNAL. */
int sli__age_hkdf32(uint8_t out[32], const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                    const char *info);
/* sli__age_b64 writes `n` bytes as unpadded base64, as age writes stanza arguments, bodies and the
 * MAC, NUL-terminated; it returns the length. */
size_t sli__age_b64(char *out, const uint8_t *in, size_t n);
/* sli__age_b64_decode reads the canonical unpadded base64 of exactly `want_len` bytes from the `n`
 * characters at `in`: 0 or SLI_E_HEADER. */
int sli__age_b64_decode(uint8_t *out, size_t want_len, const char *in, size_t n);
/* sli__age_b64_decode_max is sli__age_b64_decode for a length up to `cap` (at most 3072 bytes),
 * written to `*out_len`. */
int sli__age_b64_decode_max(uint8_t *out, size_t cap, size_t *out_len, const char *in, size_t n);

#endif
