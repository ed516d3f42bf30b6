/* cmd_tickets.c — `sli tickets rotate FILE`: puts a fresh session-ticket key at the top of FILE
 * (creating it 0600), keeping the previous keys for decryption, at most 3 in all. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli.h"

#define KEEP 3

int cmd_tickets(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "rotate") != 0) {
    FILE *f = argc >= 2 && cli_is_help(argv[1]) ? stdout : stderr;
    fprintf(f, "usage: sli tickets rotate FILE\n"
               "  adds a new session-ticket key at the top of FILE (created 0600 if missing) and\n"
               "  keeps the %d newest. Servers given --ticket-keys FILE encrypt tickets with the\n"
               "  first key and accept all; reload them after rotating.\n", KEEP);
    return f == stdout ? EXIT_OK : EXIT_USAGE;
  }
  const char *path = argv[2];
  char old[KEEP][200];
  int n_old = 0;
  FILE *in = fopen(path, "r");
  if (in) {
    char line[512];
    while (n_old < KEEP - 1 && fgets(line, sizeof(line), in)) {
      line[strcspn(line, "\r\n")] = 0;
      if (strlen(line) == 160) snprintf(old[n_old++], sizeof(old[0]), "%s", line);
    }
    fclose(in);
  }
  unsigned char key[80];
  if (getrandom(key, sizeof(key), 0) != sizeof(key)) {
    fprintf(stderr, "sli tickets: no randomness: %s\n", strerror(errno));
    return EXIT_FAIL;
  }
  char text[(160 + 1) * KEEP + 1];
  size_t len = 0;
  for (size_t i = 0; i < sizeof(key); i++) len += (size_t)snprintf(text + len, sizeof(text) - len, "%02x", key[i]);
  text[len++] = '\n';
  for (int i = 0; i < n_old; i++) len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\n", old[i]);
  memset(key, 0, sizeof(key));
  int rc = cli_write_file(path, text, len, 0600);
  explicit_bzero(text, sizeof(text));
  if (rc) {
    fprintf(stderr, "sli tickets: cannot write '%s': %s\n", path, strerror(errno));
    return EXIT_CONFIG;
  }
  printf("%s: %d key(s); the new one encrypts, all decrypt\n", path, n_old + 1);
  return EXIT_OK;
}
