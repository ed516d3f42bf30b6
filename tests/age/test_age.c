/* test_age.c — the age streaming API through libsli.so.1: any split of the input into updates
 * (down to one byte at a time) gives the same file, binary and armored; errors by class, each with
 * its message; keys of each type (X25519, Ed25519, RSA) as identities and recipients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"


static sli_age_identity *id;
static sli_age_recipient *rc_;
static uint32_t dec_flags; /* flags for the decryptor of decrypt() */

/* encrypt `in` in steps of `step` bytes (0: random steps) */
static int encrypt(const uint8_t *in, size_t n, size_t step, uint32_t flags, uint8_t **out, size_t *out_len) {
  sli_age_enc *e;
  const sli_age_recipient *r[1] = {rc_};
  if (sli_age_enc_new(&e, r, 1, flags)) return -1;
  size_t cap = n * 2 + 3 * 65536 + 4096, o = 0;
  uint8_t *buf = malloc(cap), *tmp = malloc(cap);
  for (size_t off = 0; off < n;) {
    size_t s = step ? step : (size_t)(rand() % 70000 + 1);
    if (s > n - off) s = n - off;
    size_t tl = cap;
    if (sli_age_enc_update(e, tmp, &tl, in + off, s)) return -1;
    memcpy(buf + o, tmp, tl);
    o += tl;
    off += s;
  }
  size_t tl = cap;
  if (sli_age_enc_final(e, tmp, &tl)) return -1;
  memcpy(buf + o, tmp, tl);
  o += tl;
  free(tmp);
  sli_age_enc_free(e);
  *out = buf;
  *out_len = o;
  return 0;
}

/* decrypt in steps; returns the code of the first failure (0 on success) */
static int decrypt(const uint8_t *in, size_t n, size_t step, uint8_t **out, size_t *out_len) {
  sli_age_dec *d;
  const sli_age_identity *ids[1] = {id};
  if (sli_age_dec_new(&d, ids, 1, dec_flags)) return -1;
  size_t cap = n + 4 * 65536, o = 0;
  uint8_t *buf = malloc(cap), *tmp = malloc(cap);
  int rc = 0;
  for (size_t off = 0; off < n && !rc;) {
    size_t s = step ? step : (size_t)(rand() % 70000 + 1);
    if (s > n - off) s = n - off;
    size_t tl = cap;
    rc = sli_age_dec_update(d, tmp, &tl, in + off, s);
    if (!rc) memcpy(buf + o, tmp, tl), o += tl;
    off += s;
  }
  size_t tl = cap;
  if (!rc) rc = sli_age_dec_final(d, tmp, &tl);
  if (!rc) memcpy(buf + o, tmp, tl), o += tl;
  /* a failure must say why, in the decryptor and in the thread's last error alike */
  if (rc && (!sli_age_dec_error(d) || !sli_last_error() || strcmp(sli_age_dec_error(d), sli_last_error())))
    rc = -2;
  free(tmp);
  sli_age_dec_free(d);
  *out = buf;
  *out_len = o;
  return rc;
}

static int test_any_split(void) {
  size_t sizes[] = {0, 1, 65535, 65536, 65537, 200000};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t n = sizes[i];
    uint8_t *pt = malloc(n + 1);
    for (size_t j = 0; j < n; j++) pt[j] = (uint8_t)(j * 13 + i);
    for (int armor = 0; armor < 2; armor++) {
      uint8_t *ct, *back;
      size_t cl, bl;
      CHECK_EQ(encrypt(pt, n, n > 1000 ? 0 : 1, armor ? SLI_AGE_ARMOR : 0, &ct, &cl), 0);
      size_t steps[] = {1, 7, 65536, 0};
      for (size_t s = 0; s < 4; s++) {
        if (steps[s] == 1 && cl > 300000) continue;
        CHECK_EQ(decrypt(ct, cl, steps[s], &back, &bl), 0);
        CHECK(bl == n && (n == 0 || memcmp(back, pt, n) == 0));
        free(back);
      }
      free(ct);
    }
    free(pt);
  }
  return 0;
}

static int test_errors_by_class(void) {
  uint8_t pt[100000], *ct, *back;
  size_t cl, bl;
  memset(pt, 7, sizeof(pt));
  CHECK_EQ(encrypt(pt, sizeof(pt), 0, 0, &ct, &cl), 0);
  sli_age_identity *other;
  CHECK_EQ(sli_age_identity_generate(&other), 0);
  sli_age_identity *keep = id;
  id = other;
  CHECK_EQ(decrypt(ct, cl, 0, &back, &bl), SLI_E_NO_MATCH);
  free(back);
  id = keep;
  sli_age_identity_free(other);
  ct[cl - 5] ^= 1;
  CHECK_EQ(decrypt(ct, cl, 0, &back, &bl), SLI_E_PAYLOAD);
  free(back);
  ct[cl - 5] ^= 1;
  CHECK_EQ(decrypt(ct, cl - 1, 0, &back, &bl), SLI_E_PAYLOAD);
  free(back);
  CHECK_EQ(decrypt(ct, 3, 0, &back, &bl), SLI_E_HEADER);
  free(back);
  ct[0] = 'b';
  CHECK_EQ(decrypt(ct, cl, 0, &back, &bl), SLI_E_HEADER);
  free(back);
  free(ct);
  char s[100];
  CHECK_EQ(sli_age_identity_encode(id, s, sizeof(s)), 0);
  CHECK(strncmp(s, "AGE-SECRET-KEY-1", 16) == 0 && strlen(s) == 74);
  sli_age_identity *again;
  CHECK_EQ(sli_age_identity_parse(&again, s), 0);
  s[20] = s[20] == 'Q' ? 'P' : 'Q'; /* checksum catches it */
  sli_age_identity *bad;
  CHECK_EQ(sli_age_identity_parse(&bad, s), SLI_E_INVAL);
  sli_age_identity_free(again);
  sli_age_recipient *tmp_r;
  CHECK_EQ(sli_age_recipient_parse(&tmp_r, "age1notarecipient"), SLI_E_INVAL);
  CHECK(tmp_r == NULL);
  sli_age_recipient *pw;
  CHECK_EQ(sli_age_recipient_scrypt(&pw, "pw", 10), 0);
  const sli_age_recipient *mix[2] = {rc_, pw};
  sli_age_enc *e;
  CHECK_EQ(sli_age_enc_new(&e, mix, 2, 0), SLI_E_INVAL); /* a passphrase stands alone */
  sli_age_recipient_free(pw);
  return 0;
}

/* The encryptor says why a call on it failed (sli_age_enc_error: a misuse, a short buffer), and so
 * does sli_last_error; sli_age_enc_new, which has no encryptor to return, says it there only. */
static int test_encryptor_errors(void) {
  sli_age_enc *e;
  const sli_age_recipient *r[1] = {rc_};
  CHECK_EQ(sli_age_enc_new(&e, r, 1, 0x80), SLI_E_INVAL);
  CHECK(e == NULL && sli_last_error() && strstr(sli_last_error(), "flags 0x80"));
  sli_age_recipient *pw;
  CHECK_EQ(sli_age_recipient_scrypt(&pw, "pw", 10), 0);
  const sli_age_recipient *mix[2] = {rc_, pw};
  CHECK_EQ(sli_age_enc_new(&e, mix, 2, 0), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "passphrase recipient must be the only"));
  sli_age_recipient_free(pw);

  CHECK_EQ(sli_age_enc_new(&e, r, 1, 0), 0);
  CHECK(sli_age_enc_error(e) == NULL && sli_age_enc_error(NULL) == NULL);
  uint8_t small[16];
  size_t n = sizeof(small);
  CHECK_EQ(sli_age_enc_update(e, small, &n, (const uint8_t *)"x", 1), SLI_E_BUFSIZE);
  CHECK_EQ(n, sli_age_enc_update_bound(e, 1));
  CHECK(sli_age_enc_error(e) && strstr(sli_age_enc_error(e), "sli_age_enc_update_bound"));
  CHECK(strcmp(sli_age_enc_error(e), sli_last_error()) == 0);
  size_t cap = sli_age_enc_update_bound(e, 1) + sli_age_enc_final_bound(e);
  uint8_t *buf = malloc(cap);
  n = cap;
  CHECK_EQ(sli_age_enc_update(e, buf, &n, (const uint8_t *)"x", 1), 0);
  CHECK(strstr(sli_age_enc_error(e), "sli_age_enc_update_bound")); /* a success keeps the message */
  n = cap;
  CHECK_EQ(sli_age_enc_final(e, buf, &n), 0);
  n = cap;
  CHECK_EQ(sli_age_enc_update(e, buf, &n, (const uint8_t *)"x", 1), SLI_E_INVAL);
  CHECK(strstr(sli_age_enc_error(e), "sli_age_enc_update: the file is finished"));
  n = cap;
  CHECK_EQ(sli_age_enc_final(e, buf, &n), SLI_E_INVAL);
  CHECK(strstr(sli_age_enc_error(e), "sli_age_enc_final: the file is finished"));
  CHECK(strcmp(sli_age_enc_error(e), sli_last_error()) == 0);
  CHECK_EQ(sli_age_enc_update(NULL, buf, &n, NULL, 0), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "the encryptor is NULL"));
  free(buf);
  sli_age_enc_free(e);
  return 0;
}

/* SLI_AGE_PARALLEL: big updates sealed on two threads give files that decrypt to the input, for
 * sizes around chunk edges and updates that start on a held-back full chunk or a partial one. */
static int test_parallel(void) {
  size_t sizes[] = {5 * 65536, 5 * 65536 + 1, 16 * 65536, 3 * 1048576 + 12345};
  size_t steps[] = {1048576, 5 * 65536, 65536 * 4 + 1, 300001};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t n = sizes[i];
    uint8_t *pt = malloc(n), *ct, *back;
    size_t cl, bl;
    for (size_t j = 0; j < n; j++) pt[j] = (uint8_t)(j * 7 + i);
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
      CHECK_EQ(encrypt(pt, n, steps[s], SLI_AGE_PARALLEL, &ct, &cl), 0);
      for (int par = 0; par < 2; par++) { /* decrypted on one thread (random steps), then on two */
        dec_flags = par ? SLI_AGE_PARALLEL : 0;
        size_t dstep = par ? steps[s] : 0;
        CHECK_EQ(decrypt(ct, cl, dstep, &back, &bl), 0);
        CHECK(bl == n && memcmp(back, pt, n) == 0);
        free(back);
        ct[cl / 2] ^= 1; /* still authenticated chunk by chunk */
        CHECK_EQ(decrypt(ct, cl, dstep, &back, &bl), SLI_E_PAYLOAD);
        free(back);
        ct[cl / 2] ^= 1;
      }
      dec_flags = 0;
      /* chunks swapped inside one parallel run are caught too */
      if (n >= 16 * 65536) {
        size_t hdr = cl - (n / 65536) * (65536 + 16) - (n % 65536 ? n % 65536 + 16 : 0); /* payload start */
        uint8_t *tmp = malloc(65536 + 16);
        memcpy(tmp, ct + hdr, 65536 + 16);
        memmove(ct + hdr, ct + hdr + 65552, 65552);
        memcpy(ct + hdr + 65552, tmp, 65552);
        free(tmp);
        dec_flags = SLI_AGE_PARALLEL;
        CHECK_EQ(decrypt(ct, cl, 1048576 * 4, &back, &bl), SLI_E_PAYLOAD);
        free(back);
        dec_flags = 0;
      }
      free(ct);
    }
    free(pt);
  }
  sli_age_enc *e;
  const sli_age_recipient *r[1] = {rc_};
  CHECK_EQ(sli_age_enc_new(&e, r, 1, 0x80), SLI_E_INVAL); /* unknown flags */
  return 0;
}

/* Keys of every type as identities: X25519 natively, Ed25519 and RSA as age's SSH recipient types;
 * the recipient survives encode + parse; a public key cannot be an identity; a P-256 key is refused. */
static int test_identities_from_keys(void) {
  int types[] = {SLI_KEY_X25519, SLI_KEY_ED25519, SLI_KEY_RSA};
  const char *prefix[] = {"age1", "ssh-ed25519 ", "ssh-rsa "};
  sli_age_identity *keep_id = id;
  sli_age_recipient *keep_r = rc_;
  for (int t = 0; t < 3; t++) {
    sli_key *k;
    CHECK_EQ(sli_key_generate(&k, types[t], 0, 0), 0);
    sli_age_identity *kid;
    sli_age_recipient *kr, *parsed;
    CHECK_EQ(sli_age_identity_from_key(&kid, k), 0);
    CHECK_EQ(sli_age_recipient_from_key(&kr, k), 0);
    sli_key_free(k); /* the identity keeps what it needs */
    char text[3000];
    CHECK_EQ(sli_age_recipient_encode(kr, text, 20), SLI_E_BUFSIZE);
    CHECK_EQ(sli_age_recipient_encode(kr, text, sizeof(text)), 0);
    CHECK(strncmp(text, prefix[t], strlen(prefix[t])) == 0);
    CHECK_EQ(sli_age_recipient_parse(&parsed, text), 0);
    uint8_t pt[70000], *ct, *back;
    size_t cl, bl;
    memset(pt, t, sizeof(pt));
    id = kid;
    rc_ = parsed;
    CHECK_EQ(encrypt(pt, sizeof(pt), 0, 0, &ct, &cl), 0);
    CHECK_EQ(decrypt(ct, cl, 0, &back, &bl), 0);
    CHECK(bl == sizeof(pt) && memcmp(back, pt, bl) == 0);
    free(back);
    free(ct);
    rc_ = kr;
    CHECK_EQ(encrypt(pt, 10, 0, SLI_AGE_ARMOR, &ct, &cl), 0);
    id = keep_id; /* an identity of another type: no match */
    CHECK_EQ(decrypt(ct, cl, 0, &back, &bl), SLI_E_NO_MATCH);
    free(back);
    free(ct);
    sli_age_identity_free(kid);
    sli_age_recipient_free(kr);
    sli_age_recipient_free(parsed);
  }
  id = keep_id;
  rc_ = keep_r;
  sli_key *ec;
  sli_age_identity *none = (sli_age_identity *)1;
  CHECK_EQ(sli_key_generate(&ec, SLI_KEY_EC, 0, 0), 0);
  CHECK_EQ(sli_age_identity_from_key(&none, ec), SLI_E_UNSUPPORTED);
  CHECK(none == NULL);
  sli_key_free(ec);
  sli_key *weak;
  CHECK_EQ(sli_key_generate(&weak, SLI_KEY_RSA, 1024, SLI_KEYGEN_INSECURE_WEAK), 0);
  CHECK_EQ(sli_age_identity_from_key(&none, weak), SLI_E_WEAK_KEY);
  sli_key_free(weak);
  sli_age_recipient *r;
  CHECK_EQ(sli_age_recipient_parse(&r, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad"), SLI_E_INVAL);
  CHECK_EQ(sli_age_recipient_parse(&r, "ssh-dss AAAAB3NzaC1kc3MAAA== x"), SLI_E_UNSUPPORTED);
  return 0;
}

int main(void) {
  srand(1);
  if (sli_age_identity_generate(&id) || sli_age_identity_recipient(id, &rc_)) return 1;
  run("any_split", test_any_split);
  run("errors_by_class", test_errors_by_class);
  run("encryptor_errors", test_encryptor_errors);
  run("identities_from_keys", test_identities_from_keys);
  run("parallel", test_parallel);
  sli_age_identity_free(id);
  sli_age_recipient_free(rc_);
  return finish();
}
