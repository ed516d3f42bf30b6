/* pki.h — keys, signatures, OpenSSH key formats, certificates and requests: the X.509 and key
 * objects shared by pki/ and by the domains above it (tls, age). Never installed. */
#ifndef SLI_PKI_H
#define SLI_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/core.h"

/* keys.c: a key pair, or a public key alone. */
struct sli_key {
  atomic_int refs;
  EVP_PKEY *pkey;
  int has_private;
};

/* cert.c: a parsed certificate (plus the chain it came with) and its accessors. */
struct sli_cert {
  atomic_int refs;
  X509 *x509;
  STACK_OF(X509) *chain; /* includes x509 first; may be NULL */
  char *subject, *issuer, *fingerprint, *chain_pem;
  char **sans;
  size_t n_sans;
};

/* sli__cert_from_x509 makes an sli_cert holding references to `x509` and `chain`; NULL when out of
 * memory. */
sli_cert *sli__cert_from_x509(X509 *x509, STACK_OF(X509) *chain);

/* sli__parse_chain reads every certificate of a PEM text, leaf first (load.c). `what` names the
 * input in messages. */
int sli__parse_chain(const char *what, const char *pem, size_t len, STACK_OF(X509) **out,
                     sli__error *e);
/* sli__parse_key reads one private key (PKCS#8, traditional, or OpenSSH; `password` for an
 * encrypted one) of a supported type (load.c). `what` names the input in messages. */
int sli__parse_key(const char *what, const char *pem, size_t len, const char *password,
                   EVP_PKEY **out, sli__error *e);

/* sli__openssh_public_parse reads "ssh-ed25519|ssh-rsa BASE64 [comment]" into `*out` (openssh.c).
 * Returns 0 or SLI_E_PEM / SLI_E_UNSUPPORTED / SLI_E_NOMEM, with a message. */
int sli__openssh_public_parse(const char *line, EVP_PKEY **out, sli__error *e);
/* sli__openssh_private_parse reads an unencrypted "OPENSSH PRIVATE KEY" PEM block (Ed25519, RSA).
 * An encrypted one is SLI_E_KEY_ENCRYPTED. `what` names the input in messages. */
int sli__openssh_private_parse(const char *what, const char *pem, size_t len, EVP_PKEY **out,
                               sli__error *e);
/* sli__openssh_blob writes the public-key wire blob of an Ed25519 or RSA key (OPENSSL_malloc'd):
 * 0, SLI_E_UNSUPPORTED for another type, SLI_E_NOMEM or SLI_E_INTERNAL. */
int sli__openssh_blob(const EVP_PKEY *pkey, uint8_t **out, size_t *out_len);
/* sli__openssh_private_write writes an unencrypted openssh-key-v1 PEM block (malloc'd,
 * NUL-terminated; `*out_len` counts the NUL) for an Ed25519 or RSA private key: 0 or a code as
 * sli__openssh_blob's. */
int sli__openssh_private_write(const EVP_PKEY *pkey, const char *comment, char **out,
                               size_t *out_len);

#endif
