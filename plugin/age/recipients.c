/* recipients.c — age recipients ("age1…", an OpenSSH public-key line, or a passphrase) and identities
 * ("AGE-SECRET-KEY-1…", an sli_key — X25519, or Ed25519 / RSA used as age's SSH types —, or a
 * passphrase). */
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/curve25519.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>

#include "age/age.h"

/* no_memory fails `fn` for want of memory. */
static int no_memory(const char *fn) { return sli__fail(NULL, SLI_E_NOMEM, "%s: out of memory", fn); }

int sli_age_identity_generate(sli_age_identity **out) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_generate: out is NULL");
  *out = NULL;
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_age_identity_generate: the library cannot be initialised");
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id) return no_memory("sli_age_identity_generate");
  X25519_keypair(id->pk, id->sk);
  *out = id;
  return 0;
}

int sli_age_identity_parse(sli_age_identity **out, const char *s) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_parse: out is NULL");
  *out = NULL;
  if (!s) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_parse: s is NULL");
  int rc = sli__ensure_init();
  if (rc) return sli__fail(NULL, rc, "sli_age_identity_parse: the library cannot be initialised");
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id) return no_memory("sli_age_identity_parse");
  if (strncmp(s, "AGE-SECRET-KEY-1", 16) != 0 || sli__bech32_decode(s, "AGE-SECRET-KEY-", id->sk, 32)) {
    sli_age_identity_free(id);
    return sli__fail(NULL, SLI_E_INVAL,
                     "not an age identity: expected AGE-SECRET-KEY-1 and 58 more Bech32 characters");
  }
  X25519_public_from_private(id->pk, id->sk);
  *out = id;
  return 0;
}

int sli_age_identity_scrypt(sli_age_identity **out, const char *passphrase) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_scrypt: out is NULL");
  *out = NULL;
  if (!passphrase || !*passphrase)
    return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_scrypt: the passphrase is empty");
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id || !(id->passphrase = sli__strdup(passphrase))) {
    free(id);
    return no_memory("sli_age_identity_scrypt");
  }
  id->kind = AGE_SCRYPT;
  *out = id;
  return 0;
}

/* encoded passes on 0, or fails `fn` with `rc` (SLI_E_BUFSIZE): `cap` bytes cannot hold the text. */
static int encoded(const char *fn, int rc, size_t cap) {
  return rc ? sli__fail(NULL, rc, "%s: %zu bytes cannot hold the text", fn, cap) : 0;
}

int sli_age_identity_encode(const sli_age_identity *id, char *out, size_t cap) {
  if (!id || !out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_encode: id and out are needed");
  if (id->kind != AGE_X25519)
    return sli__fail(NULL, SLI_E_INVAL, "only an X25519 identity has an AGE-SECRET-KEY-1 form");
  return encoded("sli_age_identity_encode",
                 sli__bech32_encode(out, cap, "AGE-SECRET-KEY-", id->sk, 32, 1), cap);
}

int sli_age_identity_recipient(const sli_age_identity *id, sli_age_recipient **out) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_recipient: out is NULL");
  *out = NULL;
  if (!id) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_recipient: id is NULL");
  if (id->kind == AGE_SCRYPT) return sli__fail(NULL, SLI_E_INVAL, "a passphrase identity has no recipient");
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r) return no_memory("sli_age_identity_recipient");
  memcpy(r->pk, id->pk, 32);
  if (id->kind != AGE_X25519) {
    int rc = sli__age_ssh_recipient(r, id->pkey);
    if (rc) {
      free(r);
      return sli__fail(NULL, rc, "the identity's SSH key makes no recipient: %s", sli_strerror(rc));
    }
  }
  *out = r;
  return 0;
}

/* key_refused fails `fn` for a key that cannot be used with age, saying why. */
static int key_refused(const char *fn, int rc) {
  return sli__fail(NULL, rc, "%s: %s", fn,
                   rc == SLI_E_UNSUPPORTED ? "age uses X25519, Ed25519 and RSA keys only"
                   : rc == SLI_E_WEAK_KEY  ? "age refuses RSA keys below 2048 bits"
                   : rc == SLI_E_INVAL     ? "an identity needs a private key"
                                           : sli_strerror(rc));
}

int sli_age_identity_from_key(sli_age_identity **out, const sli_key *k) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_from_key: out is NULL");
  *out = NULL;
  if (!k) return sli__fail(NULL, SLI_E_INVAL, "sli_age_identity_from_key: k is NULL");
  if (!k->has_private) return key_refused("sli_age_identity_from_key", SLI_E_INVAL);
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id) return no_memory("sli_age_identity_from_key");
  int rc = 0;
  if (EVP_PKEY_id(k->pkey) == EVP_PKEY_X25519) {
    size_t n = 32;
    if (!EVP_PKEY_get_raw_private_key(k->pkey, id->sk, &n)) rc = SLI_E_INTERNAL;
    else X25519_public_from_private(id->pk, id->sk);
  } else {
    rc = sli__age_ssh_identity(id, k->pkey);
  }
  ERR_clear_error();
  if (rc) {
    sli_age_identity_free(id);
    return key_refused("sli_age_identity_from_key", rc);
  }
  *out = id;
  return 0;
}

int sli_age_recipient_from_key(sli_age_recipient **out, const sli_key *k) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_recipient_from_key: out is NULL");
  *out = NULL;
  if (!k) return sli__fail(NULL, SLI_E_INVAL, "sli_age_recipient_from_key: k is NULL");
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r) return no_memory("sli_age_recipient_from_key");
  int rc = 0;
  if (EVP_PKEY_id(k->pkey) == EVP_PKEY_X25519) {
    size_t n = 32;
    if (!EVP_PKEY_get_raw_public_key(k->pkey, r->pk, &n)) rc = SLI_E_INTERNAL;
  } else {
    rc = sli__age_ssh_recipient(r, k->pkey);
  }
  ERR_clear_error();
  if (rc) {
    sli_age_recipient_free(r);
    return key_refused("sli_age_recipient_from_key", rc);
  }
  *out = r;
  return 0;
}

sli_age_identity *sli__age_identity_dup(const sli_age_identity *src) {
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id) return NULL;
  *id = *src;
  id->passphrase = NULL;
  if (src->passphrase && !(id->passphrase = sli__strdup(src->passphrase))) {
    OPENSSL_cleanse(id, sizeof(*id));
    free(id);
    return NULL;
  }
  if (id->pkey) EVP_PKEY_up_ref(id->pkey);
  return id;
}

void sli_age_identity_free(sli_age_identity *id) {
  if (!id) return;
  if (id->passphrase) sli_free(id->passphrase, strlen(id->passphrase));
  EVP_PKEY_free(id->pkey);
  OPENSSL_cleanse(id, sizeof(*id));
  free(id);
}

int sli_age_recipient_parse(sli_age_recipient **out, const char *s) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_recipient_parse: out is NULL");
  *out = NULL;
  if (!s) return sli__fail(NULL, SLI_E_INVAL, "sli_age_recipient_parse: s is NULL");
  if (!strncmp(s, "ssh-", 4) || !strncmp(s, "ecdsa-", 6) || !strncmp(s, "sk-", 3)) { /* an OpenSSH line */
    int rc = sli__ensure_init();
    if (rc) return sli__fail(NULL, rc, "sli_age_recipient_parse: the library cannot be initialised");
    sli__error why = {0};
    EVP_PKEY *pkey = NULL;
    sli_age_recipient *r = sli__zalloc(sizeof(*r));
    if (!r) return no_memory("sli_age_recipient_parse");
    rc = sli__openssh_public_parse(s, &pkey, &why);
    if (rc) rc = sli__fail(NULL, rc == SLI_E_PEM ? SLI_E_INVAL : rc, "recipient: %s", why.msg);
    else if ((rc = sli__age_ssh_recipient(r, pkey))) key_refused("sli_age_recipient_parse", rc);
    EVP_PKEY_free(pkey);
    if (rc) {
      sli_age_recipient_free(r);
      return rc;
    }
    *out = r;
    return 0;
  }
  if (strncmp(s, "age1", 4) != 0)
    return sli__fail(NULL, SLI_E_INVAL,
                     "not an age recipient: neither age1... nor an OpenSSH public key line");
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r) return no_memory("sli_age_recipient_parse");
  if (sli__bech32_decode(s, "age", r->pk, 32)) {
    free(r);
    return sli__fail(NULL, SLI_E_INVAL,
                     "not an age recipient: age1 and 58 more Bech32 characters expected");
  }
  *out = r;
  return 0;
}

int sli_age_recipient_scrypt(sli_age_recipient **out, const char *passphrase, int log2_n) {
  if (!out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_recipient_scrypt: out is NULL");
  *out = NULL;
  if (!passphrase || !*passphrase)
    return sli__fail(NULL, SLI_E_INVAL, "sli_age_recipient_scrypt: the passphrase is empty");
  if (log2_n < 0 || log2_n > AGE_SCRYPT_MAX_LOG2)
    return sli__fail(NULL, SLI_E_INVAL, "scrypt work factor 2^%d: 0 (the default, 2^18) to %d are accepted",
                     log2_n, AGE_SCRYPT_MAX_LOG2);
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r || !(r->passphrase = sli__strdup(passphrase))) {
    free(r);
    return no_memory("sli_age_recipient_scrypt");
  }
  r->kind = AGE_SCRYPT;
  r->log2_n = log2_n ? log2_n : 18;
  *out = r;
  return 0;
}

int sli_age_recipient_encode(const sli_age_recipient *r, char *out, size_t cap) {
  if (!r || !out) return sli__fail(NULL, SLI_E_INVAL, "sli_age_recipient_encode: r and out are needed");
  if (r->kind == AGE_SCRYPT) return sli__fail(NULL, SLI_E_INVAL, "a passphrase recipient has no text form");
  if (r->kind != AGE_X25519) { /* the OpenSSH line, without a comment */
    uint8_t *blob = NULL;
    size_t blen = 0, b64len = 0;
    int rc = sli__openssh_blob(r->pkey, &blob, &blen);
    if (rc) return sli__fail(NULL, rc, "cannot write the SSH recipient: %s", sli_strerror(rc));
    const char *name = r->kind == AGE_SSH_RSA ? "ssh-rsa " : "ssh-ed25519 ";
    EVP_EncodedLength(&b64len, blen); /* includes the NUL */
    if (cap < strlen(name) + b64len) {
      OPENSSL_free(blob);
      return encoded("sli_age_recipient_encode", SLI_E_BUFSIZE, cap);
    }
    strcpy(out, name);
    EVP_EncodeBlock((uint8_t *)out + strlen(name), blob, blen);
    OPENSSL_free(blob);
    return 0;
  }
  return encoded("sli_age_recipient_encode", sli__bech32_encode(out, cap, "age", r->pk, 32, 0), cap);
}

void sli_age_recipient_free(sli_age_recipient *r) {
  if (!r) return;
  if (r->passphrase) sli_free(r->passphrase, strlen(r->passphrase));
  EVP_PKEY_free(r->pkey);
  OPENSSL_cleanse(r, sizeof(*r));
  free(r);
}
