/* cmd_keys.c — `sli keygen`, `sli sign`, `sli verify`: key pairs in formats other tools read, and
 * detached signatures that `openssl` checks (and whose signatures we check). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int keygen_usage(int help) {
  fprintf(help ? stdout : stderr,
          "usage: sli keygen --type rsa|ec|ed25519|x25519 [--bits N] [--curve P-256|P-384|P-521]\n"
          "                  [--format pem|ssh|age] [--passphrase-file F] [--insecure-weak] [--force]\n"
          "                  -o KEY [--pub PUB]\n"
          "  Writes the private key (0600) as PEM PKCS#8 (encrypted if --passphrase-file) and, with\n"
          "  --pub, the public key as PEM SubjectPublicKeyInfo. --format ssh (rsa, ed25519): an OpenSSH\n"
          "  private key, as ssh-keygen writes it, and an OpenSSH public line. --format age (x25519):\n"
          "  an age identity file and its age1... recipient.\n"
          "  RSA defaults to 2048 bits (3072, 4096); below 2048 needs\n"
          "  --insecure-weak. EC defaults to P-256. An existing KEY or PUB is never replaced\n"
          "  without --force, and KEY and PUB must be two files.\n");
  return help ? EXIT_OK : EXIT_USAGE;
}

int cmd_keygen(int argc, char **argv) {
  const char *type = NULL, *curve = NULL, *format = "pem", *pwfile = NULL, *out = NULL, *pub = NULL;
  int bits = 0, force = 0;
  uint32_t flags = 0;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) return keygen_usage(1);
    if (!strcmp(argv[i], "--type") && i + 1 < argc) type = argv[++i];
    else if (!strcmp(argv[i], "--bits") && i + 1 < argc) bits = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--curve") && i + 1 < argc) curve = argv[++i];
    else if (!strcmp(argv[i], "--format") && i + 1 < argc) format = argv[++i];
    else if ((!strcmp(argv[i], "--passphrase-file") || !strcmp(argv[i], "--password-file")) && i + 1 < argc) pwfile = argv[++i];
    else if (!strcmp(argv[i], "--insecure-weak")) flags |= SLI_KEYGEN_INSECURE_WEAK;
    else if (!strcmp(argv[i], "--force")) force = 1;
    else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--pub") && i + 1 < argc) pub = argv[++i];
    else return keygen_usage(0);
  }
  if (!type || !out) return keygen_usage(0);
  int t = !strcmp(type, "rsa") ? SLI_KEY_RSA : !strcmp(type, "ec") ? SLI_KEY_EC
        : !strcmp(type, "ed25519") ? SLI_KEY_ED25519 : !strcmp(type, "x25519") ? SLI_KEY_X25519 : 0;
  if (!t) return keygen_usage(0);
  int param = bits;
  if (t == SLI_KEY_EC) {
    param = !curve || !strcmp(curve, "P-256") || !strcmp(curve, "prime256v1") ? 256
          : !strcmp(curve, "P-384") || !strcmp(curve, "secp384r1") ? 384
          : !strcmp(curve, "P-521") || !strcmp(curve, "secp521r1") ? 521 : -1;
    if (param < 0) return keygen_usage(0);
  }
  if (strcmp(format, "pem") && strcmp(format, "ssh") && strcmp(format, "age")) return keygen_usage(0);
  if (pub && cli_same_file(out, pub)) {
    fprintf(stderr, "sli keygen: -o and --pub name the same file: the private key would be lost\n");
    return EXIT_USAGE;
  }
  const char *outs[] = {out, pub};
  for (int i = 0; i < 2 && !force; i++) {
    if (outs[i] && cli_exists(outs[i])) {
      fprintf(stderr, "sli keygen: '%s' exists: not replacing it (--force does)\n", outs[i]);
      return EXIT_CONFIG;
    }
  }
  if (!strcmp(format, "age")) { /* an age identity file, as age-keygen writes it */
    if (t != SLI_KEY_X25519) return cli_error("keygen", SLI_E_UNSUPPORTED, "--format age is for x25519 keys");
    sli_age_identity *id;
    sli_age_recipient *r;
    char sk[128], pk[128], text[512];
    int arc = sli_age_identity_generate(&id);
    if (!arc) arc = sli_age_identity_recipient(id, &r);
    if (arc) return cli_error("keygen", arc, NULL);
    sli_age_identity_encode(id, sk, sizeof(sk));
    sli_age_recipient_encode(r, pk, sizeof(pk));
    snprintf(text, sizeof(text), "# created by sli keygen\n# public key: %s\n%s\n", pk, sk);
    int bad = cli_write_file(out, text, strlen(text), 0600);
    snprintf(text, sizeof(text), "%s\n", pk);
    bad = bad || (pub && cli_write_file(pub, text, strlen(text), 0644));
    explicit_bzero(sk, sizeof(sk));
    sli_age_identity_free(id);
    sli_age_recipient_free(r);
    if (bad) {
      fprintf(stderr, "sli keygen: cannot write the key files: %s\n", strerror(errno));
      return EXIT_FAIL;
    }
    fprintf(stderr, "Public key: %s\n", pk);
    return EXIT_OK;
  }
  if (flags & SLI_KEYGEN_INSECURE_WEAK)
    fprintf(stderr, "sli keygen: WARNING: --insecure-weak: keys below 2048 bits can be broken\n");
  sli_key *k;
  int rc = sli_key_generate(&k, t, param, flags);
  if (rc == SLI_E_WEAK_KEY)
    return cli_error("keygen", rc, "RSA keys below 2048 bits are refused (add --insecure-weak to insist)");
  if (rc) return cli_error("keygen", rc, sli_last_error());
  char *pw = pwfile ? cli_read_first_line(pwfile) : NULL;
  if (pwfile && !pw) {
    fprintf(stderr, "sli keygen: cannot read '%s': %s\n", pwfile, strerror(errno));
    sli_key_free(k);
    return EXIT_CONFIG;
  }
  if (pw && !*pw) { /* as `sli encrypt -p` refuses one */
    fprintf(stderr, "sli keygen: the passphrase in '%s' is empty\n", pwfile);
    sli_free(pw, 0);
    sli_key_free(k);
    return EXIT_CONFIG;
  }
  char *pem = NULL, *pubtxt = NULL;
  size_t pem_len = 0, pub_len = 0;
  int ssh = !strcmp(format, "ssh");
  if (ssh && pw) {
    rc = SLI_E_UNSUPPORTED;
    fprintf(stderr, "sli keygen: an OpenSSH private key cannot be passphrase-protected by sli (bcrypt_pbkdf): "
                    "add one afterwards with 'ssh-keygen -p -f %s', or use --format pem\n", out);
  } else {
    rc = ssh ? sli_key_openssh_private_alloc(k, "sli keygen", &pem, &pem_len)
             : sli_key_private_pem_alloc(k, pw, &pem, &pem_len);
  }
  if (!rc && pub)
    rc = !strcmp(format, "ssh") ? sli_key_openssh_public_alloc(k, NULL, &pubtxt, &pub_len)
                                : sli_key_public_pem_alloc(k, &pubtxt, &pub_len);
  int result = EXIT_OK;
  if (rc) {
    result = cli_error("keygen", rc, rc == SLI_E_UNSUPPORTED && !pw ? "OpenSSH keys exist for rsa and ed25519" : NULL);
  } else if (cli_write_file(out, pem, pem_len - 1, 0600)) {
    fprintf(stderr, "sli keygen: cannot write '%s': %s\n", out, strerror(errno));
    result = EXIT_FAIL;
  } else if (pub && cli_write_file(pub, pubtxt, pub_len - 1, 0644)) {
    fprintf(stderr, "sli keygen: cannot write '%s': %s\n", pub, strerror(errno));
    result = EXIT_FAIL;
  }
  if (pw) sli_free(pw, strlen(pw));
  sli_free(pem, pem_len);
  sli_free(pubtxt, pub_len);
  sli_key_free(k);
  return result;
}

static int sign_usage(const char *cmd, int help) {
  if (!strcmp(cmd, "sign"))
    fprintf(help ? stdout : stderr,
            "usage: sli sign --key KEY [--passphrase-file F] [-o SIG] [IN]\n"
            "  Detached signature of IN (or stdin): Ed25519, ECDSA-SHA256 (DER) or RSA-PSS-SHA256.\n");
  else
    fprintf(help ? stdout : stderr,
            "usage: sli verify --pub PUB --sig SIG [IN]\n"
            "  Exit 0 and 'verified' if SIG is a valid signature of IN (or stdin) by PUB (a public or\n"
            "  private PEM key); exit 6 with SLI_E_SIGNATURE if not.\n");
  return help ? EXIT_OK : EXIT_USAGE;
}

int cmd_sign(int argc, char **argv) {
  int signing = !strcmp(argv[0], "sign");
  const char *keyp = NULL, *pwfile = NULL, *sigp = NULL, *in = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) return sign_usage(argv[0], 1);
    if ((!strcmp(argv[i], "--key") || !strcmp(argv[i], "--pub")) && i + 1 < argc) keyp = argv[++i];
    else if ((!strcmp(argv[i], "--passphrase-file") || !strcmp(argv[i], "--password-file")) && i + 1 < argc) pwfile = argv[++i];
    else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--sig")) && i + 1 < argc) sigp = argv[++i];
    else if ((argv[i][0] != '-' || !strcmp(argv[i], "-")) && !in) in = argv[i];
    else return sign_usage(argv[0], 0);
  }
  if (!keyp || (!signing && !sigp)) return sign_usage(argv[0], 0);
  if (signing && sigp && cli_same_file(sigp, in)) {
    fprintf(stderr, "sli sign: the signature would replace the message it signs ('%s')\n", sigp);
    return EXIT_USAGE;
  }
  if (signing) cli_check_key_mode("sign", keyp);
  char *pw = pwfile ? cli_read_first_line(pwfile) : NULL;
  char msg[512] = "";
  sli_key *k;
  int rc = sli_key_load_file(&k, keyp, pw, msg, sizeof(msg));
  if (pw) sli_free(pw, strlen(pw));
  if (rc) return cli_error(argv[0], rc, msg);
  /* the message is read in pieces and hashed as it comes (ECDSA, RSA: constant memory; Ed25519
   * signs the whole message at once and keeps it) */
  uint8_t *sig = NULL;
  size_t sig_len = 0;
  int result = EXIT_OK;
  sli_signer *sg = NULL;
  if (!signing && cli_read_all(sigp, &sig, &sig_len)) {
    fprintf(stderr, "sli verify: cannot read '%s': %s\n", sigp, strerror(errno));
    sli_key_free(k);
    return EXIT_FAIL;
  }
  rc = sli_signer_new(&sg, k, !signing);
  if (rc) {
    result = cli_error(argv[0], rc, rc == SLI_E_UNSUPPORTED ? "x25519 keys only agree keys" : NULL);
    goto done;
  }
  int fd = (!in || !strcmp(in, "-")) ? 0 : open(in, O_RDONLY | O_CLOEXEC);
  uint8_t *buf = malloc(1 << 20);
  if (fd < 0 || !buf) {
    fprintf(stderr, "sli %s: cannot read '%s': %s\n", argv[0], in ? in : "stdin", strerror(errno));
    result = EXIT_FAIL;
  }
  while (result == EXIT_OK) {
    ssize_t n = read(fd, buf, 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "sli %s: cannot read '%s': %s\n", argv[0], in ? in : "stdin", strerror(errno));
      result = EXIT_FAIL;
    } else if (n == 0) {
      break;
    } else if ((rc = sli_signer_update(sg, buf, (size_t)n))) {
      result = cli_error(argv[0], rc, sli_last_error());
    }
  }
  free(buf);
  if (fd > 0) close(fd);
  if (result != EXIT_OK) goto done;
  if (signing) {
    sig_len = sli_key_sig_max_size(k);
    sig = malloc(sig_len ? sig_len : 1);
    rc = sig ? sli_signer_sign_final(sg, sig, &sig_len) : SLI_E_NOMEM;
    if (rc) result = cli_error("sign", rc, NULL);
    else if (cli_write_file(sigp, sig, sig_len, 0644)) {
      fprintf(stderr, "sli sign: cannot write '%s': %s\n", sigp ? sigp : "stdout", strerror(errno));
      result = EXIT_FAIL;
    }
  } else {
    rc = sli_signer_verify_final(sg, sig, sig_len);
    if (rc) result = cli_error("verify", rc, NULL);
    else printf("verified\n");
  }
done:
  sli_signer_free(sg);
  free(sig);
  sli_key_free(k);
  return result;
}
