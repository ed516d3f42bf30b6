/* pki.h — keys, signatures, OpenSSH key formats, certificates and requests: the X.509 and key
 * objects shared by pki/ and by the domains above it (tls, age). Never installed. */
#ifndef SLI_PKI_H
#define SLI_PKI_H

#include <openssl/bio.h>
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

/* x509.c: the one X.509 builder. sli__x509_subject fills `name` from an OpenSSL-style subject
 * ("/CN=x/O=y/C=FR"; fields CN, C, ST, L, O, OU, emailAddress); sli__x509_sans makes a
 * subjectAltName extension from "DNS:x", "IP:x", "email:x" strings (NULL for none). Both return 0
 * or SLI_E_INVAL with a message (sli__fail: the thread's last error). */
int sli__x509_subject(X509_NAME *name, const char *subject);
int sli__x509_sans(const char *const *sans, size_t n, X509_EXTENSION **out);

/* The profiles of sli__x509_build: a leaf issued by a CA (CA:FALSE, serverAuth and clientAuth), a
 * self-signed leaf that is its own path-length-0 authority (so a client can trust exactly it, as
 * `openssl req -x509` makes them; the default identity is one), a CA (keyCertSign, cRLSign). */
enum { SLI__X509_LEAF, SLI__X509_SELF, SLI__X509_CA };

/* sli__x509_build makes a v3 certificate for `pub` with `subject`, valid from an hour ago for
 * `days` days (0: 365), with a random serial, the profile's extensions and `san` (may be NULL),
 * issued by `issuer` (NULL: self-signed) and signed with `signer` (SHA-256, or Ed25519 pure). */
int sli__x509_build(X509 **out, const X509_NAME *subject, EVP_PKEY *pub, X509 *issuer,
                    EVP_PKEY *signer, int profile, int days, X509_EXTENSION *san);
/* sli__x509_digest is the digest a signature by `signer` uses (NULL for Ed25519). */
const EVP_MD *sli__x509_digest(const EVP_PKEY *signer);
/* sli__bio_string moves a memory BIO's contents into a new NUL-terminated string (malloc'd);
 * `*out_len`, if asked, counts the NUL. */
int sli__bio_string(BIO *bio, char **out, size_t *out_len);

#endif
