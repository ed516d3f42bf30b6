/* cmd_seal.c — `sli keyring new|rotate|list FILE`, `sli seal` and `sli unseal`: sealed blobs for
 * database fields (AES-256-GCM, key IDs, rotation without re-encryption). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* A sealed blob is a database field; larger data is a file for `sli encrypt`. */
#define SEAL_MAX (64 << 20)


static int keyring_usage(int help) {
  fprintf(help ? stdout : stderr,
          "usage: sli keyring new FILE      create a keyring with one fresh key (0600; refuses to overwrite)\n"
          "       sli keyring rotate FILE   add a fresh primary key; older keys still open old blobs\n"
          "       sli keyring list FILE     key IDs, creation dates, which one is primary\n");
  return help ? EXIT_OK : EXIT_USAGE;
}

int cmd_keyring(int argc, char **argv) {
  if (argc == 2 && cli_is_help(argv[1])) return keyring_usage(1);
  if (argc != 3) return keyring_usage(0);
  const char *verb = argv[1], *path = argv[2];
  char msg[512] = "";
  sli_keyring *kr = NULL, *next = NULL;
  int rc;
  if (!strcmp(verb, "new")) {
    if (access(path, F_OK) == 0) {
      fprintf(stderr, "sli keyring: '%s' exists; use 'sli keyring rotate'\n", path);
      return EXIT_CONFIG;
    }
    if ((rc = sli_keyring_generate(&kr)) || (rc = sli_keyring_save_file(kr, path))) {
      sli_keyring_free(kr);
      return cli_error("keyring", rc, sli_last_error());
    }
    printf("%s: new keyring, primary key %08x\n", path, sli_keyring_key_id(kr, 0));
  } else if (!strcmp(verb, "rotate")) {
    if ((rc = sli_keyring_load_file(&kr, path, msg, sizeof(msg)))) return cli_error("keyring", rc, msg);
    if ((rc = sli_keyring_rotate(&next, kr)) || (rc = sli_keyring_save_file(next, path))) {
      sli_keyring_free(kr);
      sli_keyring_free(next);
      return cli_error("keyring", rc, sli_last_error());
    }
    printf("%s: new primary key %08x; %zu key(s) in all\n", path, sli_keyring_key_id(next, 0),
           sli_keyring_count(next));
  } else if (!strcmp(verb, "list")) {
    if ((rc = sli_keyring_load_file(&kr, path, msg, sizeof(msg)))) return cli_error("keyring", rc, msg);
    for (size_t i = 0; i < sli_keyring_count(kr); i++) {
      time_t t = (time_t)sli_keyring_key_created(kr, i);
      char when[64];
      strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
      printf("%08x  %s%s\n", sli_keyring_key_id(kr, i), when, i == 0 ? "  primary" : "");
    }
  } else {
    return keyring_usage(0);
  }
  sli_keyring_free(kr);
  sli_keyring_free(next);
  return EXIT_OK;
}

static int seal_usage(const char *cmd, int help) {
  fprintf(help ? stdout : stderr,
          "usage: sli %s --keyring FILE [--ad STR] [-o OUT] [IN]\n"
          "  %s IN (or stdin) with the keyring's %s key, binding the associated data STR\n"
          "  (e.g. a table and column name); output to OUT (written via a temporary file) or stdout.\n",
          cmd, !strcmp(cmd, "seal") ? "Seals" : "Opens", !strcmp(cmd, "seal") ? "primary" : "matching");
  return help ? EXIT_OK : EXIT_USAGE;
}

int cmd_seal(int argc, char **argv) {
  int sealing = !strcmp(argv[0], "seal");
  const char *keyring = NULL, *ad = "", *in = NULL, *outp = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) return seal_usage(argv[0], 1);
    if (!strcmp(argv[i], "--keyring") && i + 1 < argc) keyring = argv[++i];
    else if (!strcmp(argv[i], "--ad") && i + 1 < argc) ad = argv[++i];
    else if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
    else if ((argv[i][0] != '-' || !strcmp(argv[i], "-")) && !in) in = argv[i];
    else return seal_usage(argv[0], 0);
  }
  if (!keyring) return seal_usage(argv[0], 0);
  if (outp && in && cli_same_file(outp, in)) {
    fprintf(stderr, "sli %s: the output would replace its input ('%s')\n", argv[0], outp);
    return EXIT_USAGE;
  }
  char msg[512] = "";
  sli_keyring *kr;
  int rc = sli_keyring_load_file(&kr, keyring, msg, sizeof(msg));
  if (rc) return cli_error(argv[0], rc, msg);
  uint8_t *data, *res = NULL;
  size_t len, res_len = 0;
  if (cli_read_max(in, SEAL_MAX, &data, &len)) {
    if (errno == EFBIG)
      fprintf(stderr, "sli %s: '%s' is larger than a sealed blob may be (%d MiB): for files, use "
              "'sli encrypt' (age, streamed)\n", argv[0], in ? in : "stdin", SEAL_MAX >> 20);
    else
      fprintf(stderr, "sli %s: cannot read '%s': %s\n", argv[0], in ? in : "stdin", strerror(errno));
    sli_keyring_free(kr);
    return EXIT_FAIL;
  }
  rc = sealing ? sli_seal_alloc(kr, &res, &res_len, data, len, (const uint8_t *)ad, strlen(ad))
               : sli_open_alloc(kr, &res, &res_len, data, len, (const uint8_t *)ad, strlen(ad));
  free(data);
  sli_keyring_free(kr);
  if (rc) return cli_error(argv[0], rc, NULL);
  int w = cli_write_file(outp, res, res_len, 0600);
  sli_free(res, res_len);
  if (w) {
    fprintf(stderr, "sli %s: cannot write '%s': %s\n", argv[0], outp ? outp : "stdout", strerror(errno));
    return EXIT_FAIL;
  }
  return EXIT_OK;
}
