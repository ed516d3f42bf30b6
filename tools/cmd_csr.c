/* cmd_csr.c — `sli csr`, `sli selfsign`, `sli ca issue`: certificate requests for a CA, self-signed
 * certificates and a tiny local CA for development and tests. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int usage(int help) {
  fprintf(help ? stdout : stderr,
          "usage: sli csr --key KEY --subject \"/CN=db.example.com/O=Acme/C=FR\" [--san DNS:x]...\n"
          "               [--passphrase-file F] -o REQ\n"
          "       sli selfsign --key KEY --subject S [--san ...]... [--days N] [--ca] -o CERT\n"
          "       sli ca issue --ca-cert F --ca-key F --csr REQ [--days N] [--passphrase-file F] -o CERT\n"
          "  Subject fields: CN, C, ST, L, O, OU, emailAddress. SANs: DNS:name, IP:address,\n"
          "  email:address. --ca makes a CA certificate that `sli ca issue` can issue from.\n");
  return help ? EXIT_OK : EXIT_USAGE;
}

int cmd_csr(int argc, char **argv) {
  const char *cmd = argv[0];
  int first = 1;
  if (!strcmp(cmd, "ca")) {
    if (argc < 2 || (strcmp(argv[1], "issue") && !cli_is_help(argv[1]))) return usage(0);
    if (cli_is_help(argv[1])) return usage(1);
    first = 2;
  }
  const char *key = NULL, *subject = NULL, *pwfile = NULL, *out = NULL, *ca_cert = NULL, *csr = NULL;
  const char *sans[64];
  size_t n_sans = 0;
  int days = 0;
  uint32_t flags = 0;
  for (int i = first; i < argc; i++) {
    if (cli_is_help(argv[i])) return usage(1);
    if ((!strcmp(argv[i], "--key") || !strcmp(argv[i], "--ca-key")) && i + 1 < argc) key = argv[++i];
    else if (!strcmp(argv[i], "--subject") && i + 1 < argc) subject = argv[++i];
    else if (!strcmp(argv[i], "--san") && i + 1 < argc) {
      if (n_sans == 64) { /* said, never dropped */
        fprintf(stderr, "sli %s: at most 64 --san\n", cmd);
        return EXIT_USAGE;
      }
      sans[n_sans++] = argv[++i];
    }
    else if ((!strcmp(argv[i], "--passphrase-file") || !strcmp(argv[i], "--password-file")) && i + 1 < argc) pwfile = argv[++i];
    else if (!strcmp(argv[i], "--days") && i + 1 < argc) days = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ca")) flags |= SLI_CERT_CA;
    else if (!strcmp(argv[i], "--ca-cert") && i + 1 < argc) ca_cert = argv[++i];
    else if (!strcmp(argv[i], "--csr") && i + 1 < argc) csr = argv[++i];
    else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else return usage(0);
  }
  int issuing = !strcmp(cmd, "ca");
  if (!key || !out || (issuing ? (!ca_cert || !csr) : !subject)) return usage(0);
  char *pw = pwfile ? cli_read_first_line(pwfile) : NULL;
  char msg[512] = "";
  sli_key *k;
  const char *pem_hint = NULL;
  int rc = sli_key_load_file(&k, key, pw, msg, sizeof(msg));
  if (pw) sli_free(pw, strlen(pw));
  if (rc) return cli_error(cmd, rc, msg);
  char *pem = NULL;
  size_t pem_len = 0;
  if (!strcmp(cmd, "csr")) {
    rc = sli_csr_create_alloc(k, subject, sans, n_sans, &pem, &pem_len);
  } else if (!strcmp(cmd, "selfsign")) {
    rc = sli_cert_selfsign_alloc(k, subject, sans, n_sans, days, flags, &pem, &pem_len);
  } else {
    size_t cl = 0, rl = 0;
    uint8_t *cb = NULL, *rb = NULL;
    if (cli_read_all(ca_cert, &cb, &cl) == 0) cli_read_all(csr, &rb, &rl);
    char *c = (char *)cb, *r = (char *)rb;
    if (!c || !r) {
      fprintf(stderr, "sli ca issue: cannot read '%s': %s\n", !c ? ca_cert : csr, strerror(errno));
      free(c);
      free(r);
      sli_key_free(k);
      return EXIT_CONFIG;
    }
    rc = sli_ca_issue_alloc(c, cl, k, r, rl, days, &pem, &pem_len);
    if (rc == SLI_E_PEM && strstr(r, "-----BEGIN CERTIFICATE-----") && !strstr(r, "REQUEST-----"))
      pem_hint = "the --csr file holds a certificate, not a certificate request";
    else if (rc == SLI_E_PEM)
      pem_hint = "the --csr file is not a readable PEM certificate request";
    free(c);
    free(r);
  }
  sli_key_free(k);
  if (rc) {
    const char *why = rc == SLI_E_INVAL ? "bad subject or SAN (see --help)"
                    : rc == SLI_E_UNSUPPORTED ? "this key cannot sign (x25519)"
                    : rc == SLI_E_KEY_MISMATCH ? "the CA key does not match the CA certificate"
                    : rc == SLI_E_CONFIG ? "the CA certificate is not a CA (make one with selfsign --ca)"
                    : rc == SLI_E_SIGNATURE ? "the request's signature does not verify" : pem_hint;
    return cli_error(cmd, rc, why);
  }
  int w = cli_write_file(out, pem, pem_len - 1, 0644);
  sli_free(pem, pem_len);
  if (w) {
    fprintf(stderr, "sli %s: cannot write '%s': %s\n", cmd, out, strerror(errno));
    return EXIT_FAIL;
  }
  return EXIT_OK;
}
