/* age.h — internals of the age v1 implementation, laid out as age's own packages: header.c
 * (internal/format), stream.c (internal/stream), armor.c (armor), encrypt.c and decrypt.c (the
 * encryptor and decryptor objects), recipients.c (X25519 and passphrase recipients and
 * identities), ssh.c (agessh), bech32.c. Never installed. */
#ifndef SLI_AGE_H
#define SLI_AGE_H

#include <openssl/aead.h>

#include "pki/pki.h"

#define AGE_SCRYPT_MAX_LOG2 22
/* AGE_VERSION_LINE is the first line of every age v1 file (without its newline). */
#define AGE_VERSION_LINE "age-encryption.org/v1"
/* AGE_CHUNK is the plaintext size of a payload chunk; AGE_TAG the size of its tag. */
#define AGE_CHUNK SLI_AGE_CHUNK_BYTES
#define AGE_TAG SLI_AGE_TAG_BYTES

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

/* sli__age_buf is a growable byte buffer: the header being written or read, an armor line, the
 * first bytes of a decryption (header.c). */
typedef struct sli__age_buf {
  uint8_t *p;
  size_t len, cap;
} sli__age_buf;
/* sli__age_buf_add appends `n` bytes: 0 or SLI_E_NOMEM. */
int sli__age_buf_add(sli__age_buf *b, const void *d, size_t n);
/* sli__age_buf_wipe zeroes and frees the bytes and empties the buffer. */
void sli__age_buf_wipe(sli__age_buf *b);

/* sli__age_wrap_key seals the 16-byte file key under `key` with ChaCha20-Poly1305 and a zero nonce,
 * as every stanza type does, into 32 bytes: 0 or SLI_E_INTERNAL (header.c). */
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
/* sli__age_header_write appends the header for `n` recipients to `h`: the version line, a stanza
 * wrapping `file_key` for each, the MAC line. A failure is recorded in the thread's last error. */
int sli__age_header_write(sli__age_buf *h, const sli_age_recipient *const *rcpts, size_t n,
                          const uint8_t file_key[16]);
/* sli__age_header_parse checks the complete header `h` of `len` bytes (ending with the MAC line's
 * newline; it writes into it) and finds the file key with one of `ids`: 0 with `file_key`, or
 * SLI_E_HEADER, SLI_E_NO_MATCH, SLI_E_HEADER_MAC (recorded in `e`). */
int sli__age_header_parse(char *h, size_t len, sli_age_identity *const *ids, size_t n_ids,
                          uint8_t file_key[16], sli__error *e);

/* sli__age_chunk_nonce makes the nonce of payload chunk `counter`: 11 bytes of counter, big-endian,
 * and the last-chunk flag (stream.c). */
void sli__age_chunk_nonce(uint8_t nonce[12], uint64_t counter, int last);
/* sli__age_stream_key sets up the payload's ChaCha20-Poly1305 under HKDF(file key, nonce,
 * "payload"): 0 or SLI_E_INTERNAL. */
int sli__age_stream_key(EVP_AEAD_CTX *aead, const uint8_t file_key[16], const uint8_t nonce[16]);
/* sli__age_helper returns the object's helper thread for a run of `k` chunks, starting it on first
 * use, or NULL to work on the caller's thread alone (not asked for with `*parallel`, too few chunks,
 * or no thread to be had: then `*parallel` is cleared). */
sli__worker *sli__age_helper(int *parallel, sli__worker **w, size_t k);
/* sli__age_chunks_run seals (or, with `open`, opens) `k` whole, non-last chunks from `counter` on,
 * straight from `in` to `out`, the second half on `w` if given. It returns the index of the first
 * chunk that failed, or `k`. */
size_t sli__age_chunks_run(sli__worker *w, const EVP_AEAD_CTX *aead, int open, uint8_t *out,
                           const uint8_t *in, uint64_t counter, size_t k);

/* sli__age_armor_writer is the armor encoder's state: the raw bytes of a line not yet full, and
 * whether the BEGIN line is out (armor.c). */
typedef struct sli__age_armor_writer {
  uint8_t rest[48];
  size_t len;
  int begun;
} sli__age_armor_writer;
/* sli__age_armored_size returns the most the armor makes of `raw` bytes, BEGIN and END lines
 * included. */
size_t sli__age_armored_size(size_t raw);
/* sli__age_armor_write armors `n` bytes into `out` + `*o` (the BEGIN line first), advancing `*o`. */
void sli__age_armor_write(sli__age_armor_writer *w, uint8_t *out, size_t *o, const uint8_t *d,
                          size_t n);
/* sli__age_armor_write_end writes the last, short line and the END line. */
void sli__age_armor_write_end(sli__age_armor_writer *w, uint8_t *out, size_t *o);
/* sli__age_sink takes the bytes the armor reader decodes: 0 or a failure code. */
typedef int (*sli__age_sink)(void *arg, const uint8_t *bytes, size_t n);
/* sli__age_armor_reader is the armor decoder's state: `stage` 0 for binary input, 1 before the
 * BEGIN line, 2 in the data lines, 3 after the short last one; `ended` after the END line; the line
 * being collected. */
typedef struct sli__age_armor_reader {
  int stage, ended;
  sli__age_buf line;
} sli__age_armor_reader;
/* sli__age_armor_read decodes armored input line by line, handing the bytes to `sink`: 0, or the
 * failure (SLI_E_ARMOR recorded in `e`, or the sink's). */
int sli__age_armor_read(sli__age_armor_reader *r, const uint8_t *in, size_t in_len, sli__age_sink sink,
                        void *arg, sli__error *e);
/* sli__age_armor_read_end decodes a last line without newline and checks that the END line came. */
int sli__age_armor_read_end(sli__age_armor_reader *r, sli__age_sink sink, void *arg, sli__error *e);

#endif
