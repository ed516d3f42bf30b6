/* age_keys.c — age recipients ("age1…", an OpenSSH public-key line, or a passphrase) and identities
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

int sli_age_identity_generate(sli_age_identity **out) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  int rc = sli__ensure_init();
  if (rc) return rc;
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id) return SLI_E_NOMEM;
  X25519_keypair(id->pk, id->sk);
  *out = id;
  return 0;
}

int sli_age_identity_parse(sli_age_identity **out, const char *s) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!s) return SLI_E_INVAL;
  int rc = sli__ensure_init();
  if (rc) return rc;
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id) return SLI_E_NOMEM;
  if (strncmp(s, "AGE-SECRET-KEY-1", 16) != 0 || sli__bech32_decode(s, "AGE-SECRET-KEY-", id->sk, 32)) {
    sli_age_identity_free(id);
    return SLI_E_INVAL;
  }
  X25519_public_from_private(id->pk, id->sk);
  *out = id;
  return 0;
}

int sli_age_identity_scrypt(sli_age_identity **out, const char *passphrase) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!passphrase || !*passphrase) return SLI_E_INVAL;
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id || !(id->passphrase = sli__strdup(passphrase))) {
    free(id);
    return SLI_E_NOMEM;
  }
  id->kind = AGE_SCRYPT;
  *out = id;
  return 0;
}

int sli_age_identity_encode(const sli_age_identity *id, char *out, size_t cap) {
  if (!id || !out || id->kind != AGE_X25519) return SLI_E_INVAL;
  return sli__bech32_encode(out, cap, "AGE-SECRET-KEY-", id->sk, 32, 1);
}

int sli_age_identity_recipient(const sli_age_identity *id, sli_age_recipient **out) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!id || id->kind == AGE_SCRYPT) return SLI_E_INVAL;
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r) return SLI_E_NOMEM;
  memcpy(r->pk, id->pk, 32);
  if (id->kind != AGE_X25519) {
    int rc = sli__age_ssh_recipient(r, id->pkey);
    if (rc) {
      free(r);
      return rc;
    }
  }
  *out = r;
  return 0;
}

int sli_age_identity_from_key(sli_age_identity **out, const sli_key *k) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!k || !k->has_private) return SLI_E_INVAL;
  sli_age_identity *id = sli__zalloc(sizeof(*id));
  if (!id) return SLI_E_NOMEM;
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
    return rc;
  }
  *out = id;
  return 0;
}

int sli_age_recipient_from_key(sli_age_recipient **out, const sli_key *k) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!k) return SLI_E_INVAL;
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r) return SLI_E_NOMEM;
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
    return rc;
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
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!s) return SLI_E_INVAL;
  if (!strncmp(s, "ssh-", 4) || !strncmp(s, "ecdsa-", 6) || !strncmp(s, "sk-", 3)) { /* an OpenSSH line */
    int rc = sli__ensure_init();
    if (rc) return rc;
    char msg[SLI_MSG_MAX];
    EVP_PKEY *pkey = NULL;
    sli_age_recipient *r = sli__zalloc(sizeof(*r));
    if (!r) return SLI_E_NOMEM;
    rc = sli__openssh_public_parse(s, &pkey, msg, sizeof(msg));
    if (!rc) rc = sli__age_ssh_recipient(r, pkey);
    EVP_PKEY_free(pkey);
    if (rc) {
      sli_age_recipient_free(r);
      return rc == SLI_E_PEM ? SLI_E_INVAL : rc;
    }
    *out = r;
    return 0;
  }
  if (strncmp(s, "age1", 4) != 0) return SLI_E_INVAL;
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r) return SLI_E_NOMEM;
  if (sli__bech32_decode(s, "age", r->pk, 32)) {
    free(r);
    return SLI_E_INVAL;
  }
  *out = r;
  return 0;
}

int sli_age_recipient_scrypt(sli_age_recipient **out, const char *passphrase, int log2_n) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!passphrase || !*passphrase || log2_n < 0 || log2_n > AGE_SCRYPT_MAX_LOG2) return SLI_E_INVAL;
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r || !(r->passphrase = sli__strdup(passphrase))) {
    free(r);
    return SLI_E_NOMEM;
  }
  r->kind = AGE_SCRYPT;
  r->log2_n = log2_n ? log2_n : 18;
  *out = r;
  return 0;
}

int sli_age_recipient_encode(const sli_age_recipient *r, char *out, size_t cap) {
  if (!r || !out || r->kind == AGE_SCRYPT) return SLI_E_INVAL;
  if (r->kind != AGE_X25519) { /* the OpenSSH line, without a comment */
    uint8_t *blob = NULL;
    size_t blen = 0, b64len = 0;
    int rc = sli__openssh_blob(r->pkey, &blob, &blen);
    if (rc) return rc;
    const char *name = r->kind == AGE_SSH_RSA ? "ssh-rsa " : "ssh-ed25519 ";
    EVP_EncodedLength(&b64len, blen); /* includes the NUL */
    if (cap < strlen(name) + b64len) {
      OPENSSL_free(blob);
      return SLI_E_BUFSIZE;
    }
    strcpy(out, name);
    EVP_EncodeBlock((uint8_t *)out + strlen(name), blob, blen);
    OPENSSL_free(blob);
    return 0;
  }
  return sli__bech32_encode(out, cap, "age", r->pk, 32, 0);
}

void sli_age_recipient_free(sli_age_recipient *r) {
  if (!r) return;
  if (r->passphrase) sli_free(r->passphrase, strlen(r->passphrase));
  EVP_PKEY_free(r->pkey);
  OPENSSL_cleanse(r, sizeof(*r));
  free(r);
}
