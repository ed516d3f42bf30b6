/* cmd_cert.c — `sli cert inspect FILE`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_cert(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "inspect") != 0) {
    FILE *f = argc >= 2 && cli_is_help(argv[1]) ? stdout : stderr;
    fprintf(f, "usage: sli cert inspect FILE\n"
               "  prints subject, issuer, validity dates and whether valid now, SANs and the\n"
               "  SHA-256 fingerprint of each certificate's leaf in FILE (PEM).\n");
    return f == stdout ? EXIT_OK : EXIT_USAGE;
  }
  sli_cert *c;
  char msg[512] = "";
  int rc = sli_cert_load_file(&c, argv[2], msg, sizeof(msg));
  if (rc) return cli_error("cert", rc, msg);
  cli_print_cert(c, "");
  sli_cert_free(c);
  return EXIT_OK;
}
