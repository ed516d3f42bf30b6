/* openssh.h — OpenSSH public-key lines and openssh-key-v1 private keys (openssh.c). */
#ifndef SLI_OPENSSH_H
#define SLI_OPENSSH_H

#include "internal.h"

/* sli__openssh_public_parse reads "ssh-ed25519|ssh-rsa BASE64 [comment]" into `*out`. Returns 0 or
 * SLI_E_PEM / SLI_E_UNSUPPORTED with a message. */
int sli__openssh_public_parse(const char *line, EVP_PKEY **out, char *msg, size_t cap);

/* sli__openssh_private_parse reads an unencrypted "OPENSSH PRIVATE KEY" PEM block (Ed25519, RSA).
 * An encrypted one is SLI_E_KEY_ENCRYPTED. */
int sli__openssh_private_parse(const char *what, const char *pem, size_t len, EVP_PKEY **out, char *msg,
                               size_t cap);

/* sli__openssh_blob writes the public-key wire blob of an Ed25519 or RSA key (OPENSSL_malloc'd). */
int sli__openssh_blob(const EVP_PKEY *pkey, uint8_t **out, size_t *out_len);

/* sli__openssh_private_write writes an unencrypted openssh-key-v1 PEM block (malloc'd, NUL-terminated;
 * `*out_len` counts the NUL) for an Ed25519 or RSA private key. */
int sli__openssh_private_write(const EVP_PKEY *pkey, const char *comment, char **out, size_t *out_len);

#endif
