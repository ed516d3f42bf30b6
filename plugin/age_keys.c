/* age_keys.c — age recipients ("age1…", or a passphrase) and identities ("AGE-SECRET-KEY-1…", or a
 * passphrase). */
#include <stdlib.h>
#include <string.h>

#include <openssl/curve25519.h>
#include <openssl/mem.h>

#include "age.h"

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
  id->scrypt = 1;
  *out = id;
  return 0;
}

int sli_age_identity_encode(const sli_age_identity *id, char *out, size_t cap) {
  if (!id || !out || id->scrypt) return SLI_E_INVAL;
  return sli__bech32_encode(out, cap, "AGE-SECRET-KEY-", id->sk, 32, 1);
}

int sli_age_identity_recipient(const sli_age_identity *id, sli_age_recipient **out) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!id || id->scrypt) return SLI_E_INVAL;
  sli_age_recipient *r = sli__zalloc(sizeof(*r));
  if (!r) return SLI_E_NOMEM;
  memcpy(r->pk, id->pk, 32);
  *out = r;
  return 0;
}

void sli_age_identity_free(sli_age_identity *id) {
  if (!id) return;
  if (id->passphrase) sli_free(id->passphrase, strlen(id->passphrase));
  OPENSSL_cleanse(id, sizeof(*id));
  free(id);
}

int sli_age_recipient_parse(sli_age_recipient **out, const char *s) {
  if (!out) return SLI_E_INVAL;
  *out = NULL;
  if (!s || strncmp(s, "age1", 4) != 0) return SLI_E_INVAL;
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
  r->scrypt = 1;
  r->log2_n = log2_n ? log2_n : 18;
  *out = r;
  return 0;
}

int sli_age_recipient_encode(const sli_age_recipient *r, char *out, size_t cap) {
  if (!r || !out || r->scrypt) return SLI_E_INVAL;
  return sli__bech32_encode(out, cap, "age", r->pk, 32, 0);
}

void sli_age_recipient_free(sli_age_recipient *r) {
  if (!r) return;
  if (r->passphrase) sli_free(r->passphrase, strlen(r->passphrase));
  OPENSSL_cleanse(r, sizeof(*r));
  free(r);
}
