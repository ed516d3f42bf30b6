/* test_keys.c — key pairs and signatures through the public API (linked against libsli.so.1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"


static char dir[] = "/tmp/sli-keys-XXXXXX";

static int test_generate_sign_verify(void) {
  static const int types[][2] = {{SLI_KEY_RSA, 0}, {SLI_KEY_EC, 256}, {SLI_KEY_EC, 384},
                                 {SLI_KEY_EC, 521}, {SLI_KEY_ED25519, 0}};
  const uint8_t msg[] = "transfer 100 to Alice";
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    sli_key *k;
    CHECK_EQ(sli_key_generate(&k, types[i][0], types[i][1], 0), 0);
    CHECK_EQ(sli_key_type(k), types[i][0]);
    CHECK(sli_key_has_private(k));
    size_t n = 0;
    CHECK_EQ(sli_key_sign(k, NULL, &n, msg, sizeof(msg)), SLI_E_BUFSIZE);
    CHECK_EQ(n, sli_key_sig_max_size(k));
    uint8_t sig[1024];
    n = sizeof(sig);
    CHECK_EQ(sli_key_sign(k, sig, &n, msg, sizeof(msg)), 0);
    CHECK_EQ(sli_key_verify(k, sig, n, msg, sizeof(msg)), 0);
    uint8_t other[sizeof(msg)];
    memcpy(other, msg, sizeof(msg));
    other[9] ^= 1;
    CHECK_EQ(sli_key_verify(k, sig, n, other, sizeof(other)), SLI_E_SIGNATURE);
    sig[n / 2] ^= 0x10;
    CHECK_EQ(sli_key_verify(k, sig, n, msg, sizeof(msg)), SLI_E_SIGNATURE);
    CHECK_EQ(sli_key_verify(k, sig, 0, msg, sizeof(msg)), SLI_E_SIGNATURE);
    CHECK(strstr(sli_last_error(), "signature does not verify"));
    sli_key_free(k);
  }
  sli_key *x;
  CHECK_EQ(sli_key_generate(&x, SLI_KEY_X25519, 0, 0), 0);
  CHECK_EQ(sli_key_sig_max_size(x), 0);
  size_t n = 64;
  uint8_t sig[64];
  CHECK_EQ(sli_key_sign(x, sig, &n, msg, sizeof(msg)), SLI_E_UNSUPPORTED);
  sli_key_free(x);
  return 0;
}

static int test_weak_and_invalid(void) {
  sli_key *k = (sli_key *)1;
  CHECK_EQ(sli_key_generate(&k, SLI_KEY_RSA, 1024, 0), SLI_E_WEAK_KEY);
  CHECK(k == NULL && strstr(sli_last_error(), "1024 bits is too weak"));
  CHECK_EQ(sli_key_generate(&k, SLI_KEY_RSA, 1024, SLI_KEYGEN_INSECURE_WEAK), 0);
  CHECK_EQ(sli_key_bits(k), 1024);
  sli_key_free(k);
  /* key generation has no object to carry a message: each failure says why in sli_last_error */
  CHECK_EQ(sli_key_generate(&k, SLI_KEY_EC, 123, 0), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "P-256, P-384 or P-521") && strstr(sli_last_error(), "123 asked"));
  CHECK_EQ(sli_key_generate(&k, 99, 0, 0), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "unknown key type 99"));
  CHECK_EQ(sli_key_generate(&k, SLI_KEY_EC, 0, 0x80), SLI_E_INVAL);
  CHECK(strstr(sli_last_error(), "unknown flags 0x80"));
  CHECK_EQ(sli_key_generate(&k, SLI_KEY_X25519, 0, 0), 0);
  uint8_t sig[8];
  size_t n = sizeof(sig);
  CHECK_EQ(sli_key_sign(k, sig, &n, (const uint8_t *)"x", 1), SLI_E_UNSUPPORTED);
  CHECK(strstr(sli_last_error(), "X25519 key cannot sign"));
  sli_key_free(k);
  sli_key_free(NULL);
  return 0;
}

static int write_file(const char *path, const char *data) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(data, f);
  return fclose(f);
}

static int test_pem_round_trip(void) {
  sli_key *k, *back, *pubk;
  CHECK_EQ(sli_key_generate(&k, SLI_KEY_ED25519, 0, 0), 0);
  char *pem, *pub, *ssh;
  size_t pl, ul, sl;
  CHECK_EQ(sli_key_private_pem_alloc(k, "s3cret", &pem, &pl), 0);
  CHECK(strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
  CHECK_EQ(sli_key_public_pem_alloc(k, &pub, &ul), 0);
  CHECK(strstr(pub, "-----BEGIN PUBLIC KEY-----"));
  CHECK_EQ(sli_key_openssh_public_alloc(k, "me@host", &ssh, &sl), 0);
  CHECK(strncmp(ssh, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", 32) == 0 && strstr(ssh, " me@host\n"));
  char kp[256], up[256], msg[512];
  snprintf(kp, sizeof(kp), "%s/k.pem", dir);
  snprintf(up, sizeof(up), "%s/p.pem", dir);
  CHECK(write_file(kp, pem) == 0 && write_file(up, pub) == 0);
  CHECK_EQ(sli_key_load_file(&back, kp, NULL, msg, sizeof(msg)), SLI_E_PASSWORD);
  CHECK_EQ(sli_key_load_file(&back, kp, "wrong", msg, sizeof(msg)), SLI_E_PASSWORD);
  CHECK_EQ(sli_key_load_file(&back, kp, "s3cret", msg, sizeof(msg)), 0);
  CHECK_EQ(sli_key_load_file(&pubk, up, NULL, msg, sizeof(msg)), 0);
  CHECK(!sli_key_has_private(pubk));
  uint8_t sig[64];
  size_t n = sizeof(sig);
  CHECK_EQ(sli_key_sign(back, sig, &n, (const uint8_t *)"x", 1), 0);
  CHECK_EQ(sli_key_verify(pubk, sig, n, (const uint8_t *)"x", 1), 0);
  n = sizeof(sig);
  CHECK_EQ(sli_key_sign(pubk, sig, &n, (const uint8_t *)"x", 1), SLI_E_INVAL);
  sli_free(pem, pl);
  sli_free(pub, ul);
  sli_free(ssh, sl);
  sli_key_free(k);
  sli_key_free(back);
  sli_key_free(pubk);
  CHECK_EQ(sli_key_load_file(&back, "/nonexistent.pem", NULL, msg, sizeof(msg)), SLI_E_FILE);
  CHECK(strstr(msg, "/nonexistent.pem") && strcmp(msg, sli_last_error()) == 0); /* one message */
  return 0;
}

/* OpenSSH private keys and lines: written, read back (the private key signs, the line verifies), a
 * flipped byte in the key is a named error, public keys and other types are refused. */
static int test_openssh_round_trip(void) {
  int types[] = {SLI_KEY_ED25519, SLI_KEY_RSA};
  for (int t = 0; t < 2; t++) {
    sli_key *k, *back, *line;
    CHECK_EQ(sli_key_generate(&k, types[t], 0, 0), 0);
    char *priv, *pub, kp[256], up[256], msg[512];
    size_t pl, ul;
    CHECK_EQ(sli_key_openssh_private_alloc(k, "me@host", &priv, &pl), 0);
    CHECK(strncmp(priv, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36) == 0 && strlen(priv) == pl - 1);
    CHECK_EQ(sli_key_openssh_public_alloc(k, NULL, &pub, &ul), 0);
    snprintf(kp, sizeof(kp), "%s/id_%d", dir, t);
    snprintf(up, sizeof(up), "%s/id_%d.pub", dir, t);
    CHECK(write_file(kp, priv) == 0 && write_file(up, pub) == 0);
    CHECK_EQ(sli_key_load_file(&back, kp, NULL, msg, sizeof(msg)), 0);
    CHECK_EQ(sli_key_load_file(&line, up, NULL, msg, sizeof(msg)), 0);
    CHECK(sli_key_has_private(back) && !sli_key_has_private(line) && sli_key_type(back) == types[t]);
    uint8_t sig[512];
    size_t n = sizeof(sig);
    CHECK_EQ(sli_key_sign(back, sig, &n, (const uint8_t *)"x", 1), 0);
    CHECK_EQ(sli_key_verify(line, sig, n, (const uint8_t *)"x", 1), 0);
    char *p2;
    size_t l2;
    CHECK_EQ(sli_key_openssh_private_alloc(line, NULL, &p2, &l2), SLI_E_INVAL);
    /* a changed character in the base64 body: the check bytes, a length or the key no longer agree */
    priv[100] = priv[100] == 'A' ? 'B' : 'A';
    CHECK(write_file(kp, priv) == 0);
    sli_key *bad = (sli_key *)1;
    int rc = sli_key_load_file(&bad, kp, NULL, msg, sizeof(msg));
    CHECK(rc == SLI_E_PEM || rc == SLI_E_KEY_MISMATCH || rc == SLI_E_UNSUPPORTED);
    CHECK(bad == NULL && strstr(msg, "OpenSSH"));
    sli_free(priv, pl);
    sli_free(pub, ul);
    sli_key_free(k);
    sli_key_free(back);
    sli_key_free(line);
  }
  sli_key *ec;
  char *p;
  size_t l;
  CHECK_EQ(sli_key_generate(&ec, SLI_KEY_EC, 0, 0), 0);
  CHECK_EQ(sli_key_openssh_private_alloc(ec, NULL, &p, &l), SLI_E_UNSUPPORTED);
  sli_key_free(ec);
  return 0;
}

/* sli_signer: the signature of a message fed in pieces equals, for verification, the one made at
 * once — both ways — for every kind of key; a changed byte fails; misuses are named. */
static int test_signer_in_pieces(void) {
  static const struct { int type, param; } kinds[] = {
      {SLI_KEY_EC, 256}, {SLI_KEY_EC, 384}, {SLI_KEY_RSA, 2048}, {SLI_KEY_ED25519, 0}};
  uint8_t *msg = malloc(300000);
  CHECK(msg);
  for (size_t i = 0; i < 300000; i++) msg[i] = (uint8_t)(i * 7 + 3);
  for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
    sli_key *key;
    CHECK_EQ(sli_key_generate(&key, kinds[k].type, kinds[k].param, 0), 0);
    uint8_t sig[1024], sig2[1024];
    size_t n = sizeof(sig), n2 = sizeof(sig2);
    /* pieces of uneven sizes, some empty */
    sli_signer *s;
    CHECK_EQ(sli_signer_new(&s, key, 0), 0);
    size_t off = 0, step = 1;
    while (off < 300000) {
      size_t take = step < 300000 - off ? step : 300000 - off;
      CHECK_EQ(sli_signer_update(s, msg + off, take), 0);
      CHECK_EQ(sli_signer_update(s, msg + off, 0), 0);
      off += take;
      step = step * 3 + 1;
    }
    size_t small = 4;
    CHECK_EQ(sli_signer_sign_final(s, sig, &small), SLI_E_BUFSIZE); /* a size query */
    CHECK(small >= 64);
    CHECK_EQ(sli_signer_sign_final(s, sig, &n), 0);
    CHECK_EQ(sli_signer_sign_final(s, sig2, &n2), SLI_E_STATE); /* one signature per signer */
    n2 = sizeof(sig2);
    sli_signer_free(s);
    CHECK_EQ(sli_key_verify(key, sig, n, msg, 300000), 0); /* as sli_key_sign's */
    /* and the reverse: a signature made at once, checked in pieces */
    CHECK_EQ(sli_key_sign(key, sig2, &n2, msg, 300000), 0);
    CHECK_EQ(sli_signer_new(&s, key, 1), 0);
    CHECK_EQ(sli_signer_update(s, msg, 1000), 0);
    CHECK_EQ(sli_signer_update(s, msg + 1000, 299000), 0);
    CHECK_EQ(sli_signer_verify_final(s, sig2, n2), 0);
    sli_signer_free(s);
    /* a changed byte */
    CHECK_EQ(sli_signer_new(&s, key, 1), 0);
    msg[123456] ^= 1;
    CHECK_EQ(sli_signer_update(s, msg, 300000), 0);
    msg[123456] ^= 1;
    CHECK_EQ(sli_signer_verify_final(s, sig2, n2), SLI_E_SIGNATURE);
    sli_signer_free(s);
    /* a verifier cannot sign, nor a signer verify */
    CHECK_EQ(sli_signer_new(&s, key, 1), 0);
    CHECK_EQ(sli_signer_sign_final(s, sig, &n), SLI_E_INVAL);
    sli_signer_free(s);
    sli_key_free(key);
  }
  sli_key *x;
  sli_signer *s = NULL;
  CHECK_EQ(sli_key_generate(&x, SLI_KEY_X25519, 0, 0), 0);
  CHECK_EQ(sli_signer_new(&s, x, 0), SLI_E_UNSUPPORTED);
  CHECK(s == NULL);
  sli_key_free(x);
  sli_signer_free(NULL);
  free(msg);
  return 0;
}

int main(void) {
  if (!mkdtemp(dir)) return 1;
  run("generate_sign_verify", test_generate_sign_verify);
  run("weak_and_invalid", test_weak_and_invalid);
  run("pem_round_trip", test_pem_round_trip);
  run("openssh_round_trip", test_openssh_round_trip);
  run("signer_in_pieces", test_signer_in_pieces);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd)) {}
  return finish();
}
