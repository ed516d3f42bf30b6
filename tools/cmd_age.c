/* cmd_age.c — `sli encrypt` / `sli decrypt`: age v1 files, flags as the `age` tool has them. The
 * passphrase (-p) comes from the file named by SLI_PASSPHRASE_FILE, else from the terminal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "prefetch.h"

#define MAXKEYS 64

static int usage(const char *cmd, int help) {
  if (!strcmp(cmd, "encrypt"))
    fprintf(help ? stdout : stderr,
            "usage: sli encrypt [-r RECIPIENT]... [-R FILE]... [-p] [-a] [-o OUT] [IN]\n"
            "  Encrypts IN (or stdin) to age recipients (age1..., or an OpenSSH ssh-ed25519 / ssh-rsa\n"
            "  public key such as ~/.ssh/id_ed25519.pub) or, with -p, a passphrase (from the file\n"
            "  named by SLI_PASSPHRASE_FILE, else the terminal). -a writes ASCII armor.\n");
  else
    fprintf(help ? stdout : stderr,
            "usage: sli decrypt [-i FILE]... [-o OUT] [IN]\n"
            "  Decrypts an age file with the identities in FILE (AGE-SECRET-KEY-1... lines, or an\n"
            "  unencrypted OpenSSH private key such as ~/.ssh/id_ed25519), or with a passphrase when\n"
            "  no -i is given. With -o, OUT appears only if the whole file decrypted and authenticated.\n");
  return help ? EXIT_OK : EXIT_USAGE;
}

static char *get_passphrase(int confirm) {
  const char *f = getenv("SLI_PASSPHRASE_FILE");
  char buf[1024];
  if (f && *f) {
    char *p = cli_read_first_line(f);
    if (!p || !*p) {
      free(p);
      fprintf(stderr, "sli: cannot read SLI_PASSPHRASE_FILE '%s'\n", f);
      return NULL;
    }
    return p;
  }
  int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (tty < 0) {
    fprintf(stderr, "sli: a passphrase is needed: set SLI_PASSPHRASE_FILE or run on a terminal\n");
    return NULL;
  }
  struct termios t, saved;
  tcgetattr(tty, &saved);
  t = saved;
  t.c_lflag &= ~(tcflag_t)ECHO;
  char again[1024] = "";
  int ok = 1;
  for (int round = 0; round < (confirm ? 2 : 1) && ok; round++) {
    const char *prompt = round ? "Confirm passphrase: " : "Enter passphrase: ";
    if (write(tty, prompt, strlen(prompt)) < 0) ok = 0;
    tcsetattr(tty, TCSANOW, &t);
    char *dst = round ? again : buf;
    ssize_t n = read(tty, dst, 1023);
    tcsetattr(tty, TCSANOW, &saved);
    if (write(tty, "\n", 1) < 0) ok = 0;
    if (n <= 0) ok = 0;
    else dst[n] = 0, dst[strcspn(dst, "\r\n")] = 0;
  }
  close(tty);
  if (!ok || (confirm && strcmp(buf, again))) {
    fprintf(stderr, "sli: passphrases %s\n", ok ? "do not match" : "could not be read");
    return NULL;
  }
  return strdup(buf);
}

#define PEM_FILE '\1' /* marks an identity file holding a PEM key: "\1path" */

/* read_keys_file collects non-comment lines of a recipients or identities file; an identities file
 * holding a PEM key (an OpenSSH or PKCS#8 private key) is kept as a path, for sli_key_load_file. */
static int read_keys_file(const char *path, char **out, int *n, int identities) {
  FILE *f = fopen(path, "re");
  if (!f) {
    fprintf(stderr, "sli: cannot open '%s': %s\n", path, strerror(errno));
    return -1;
  }
  static char line[16384];
  if (identities) {
    size_t got = fread(line, 1, sizeof(line) - 1, f);
    line[got] = 0;
    rewind(f);
    if (strstr(line, "-----BEGIN ") && *n < MAXKEYS) {
      fclose(f);
      out[*n] = malloc(strlen(path) + 2);
      if (!out[*n]) return -1;
      out[*n][0] = PEM_FILE;
      strcpy(out[(*n)++] + 1, path);
      return 0;
    }
  }
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\r\n")] = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') continue;
    if (*n == MAXKEYS) break;
    out[(*n)++] = strdup(p);
  }
  fclose(f);
  return 0;
}

int cmd_age(int argc, char **argv) {
  int enc = !strcmp(argv[0], "encrypt"), pass = 0, armor = 0, result = EXIT_OK, rc = 0;
  const char *outp = NULL, *in = NULL;
  char *keys[MAXKEYS];
  int n_keys = 0;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) return usage(argv[0], 1);
    if (enc && !strcmp(argv[i], "-r") && i + 1 < argc && n_keys < MAXKEYS) keys[n_keys++] = strdup(argv[++i]);
    else if (((enc && !strcmp(argv[i], "-R")) || (!enc && !strcmp(argv[i], "-i"))) && i + 1 < argc) {
      if (read_keys_file(argv[i + 1], keys, &n_keys, !enc)) return EXIT_CONFIG;
      i++;
    } else if (enc && !strcmp(argv[i], "-p")) pass = 1;
    else if (enc && !strcmp(argv[i], "-a")) armor = 1;
    else if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
    else if ((argv[i][0] != '-' || !strcmp(argv[i], "-")) && !in) in = argv[i];
    else return usage(argv[0], 0);
  }
  if (enc && (pass ? n_keys > 0 : n_keys == 0)) return usage(argv[0], 0);
  sli_age_recipient *rcpts[MAXKEYS];
  sli_age_identity *ids[MAXKEYS];
  int n_objs = 0;
  char *passphrase = NULL;
  if (pass || (!enc && n_keys == 0)) {
    if (!(passphrase = get_passphrase(enc))) return EXIT_CONFIG;
    rc = enc ? sli_age_recipient_scrypt(&rcpts[0], passphrase, 0) : sli_age_identity_scrypt(&ids[0], passphrase);
    if (rc) return cli_error(argv[0], rc, "empty passphrase");
    n_objs = 1;
  }
  for (int i = 0; i < n_keys && !rc; i++) {
    if (keys[i][0] == PEM_FILE) { /* a private key file: OpenSSH (ssh-ed25519, ssh-rsa) or PEM */
      char msg[600] = "";
      sli_key *k = NULL;
      rc = sli_key_load_file(&k, keys[i] + 1, NULL, msg, sizeof(msg));
      if (!rc && (rc = sli_age_identity_from_key(&ids[n_objs], k)))
        snprintf(msg, sizeof(msg), "'%s' holds a key that cannot be an age identity (X25519, Ed25519 or RSA >= 2048 bits)", keys[i] + 1);
      sli_key_free(k);
      if (rc) cli_error(argv[0], rc, msg);
      else n_objs++;
      continue;
    }
    rc = enc ? sli_age_recipient_parse(&rcpts[n_objs], keys[i]) : sli_age_identity_parse(&ids[n_objs], keys[i]);
    if (rc == SLI_E_INVAL)
      fprintf(stderr, "sli %s: '%.24s…' is not a valid %s\n", argv[0], keys[i],
              enc ? "recipient (age1... or an ssh-ed25519 / ssh-rsa public key)" : "age identity (AGE-SECRET-KEY-1...)");
    else if (rc)
      cli_error(argv[0], rc, rc == SLI_E_WEAK_KEY ? "an ssh-rsa recipient needs at least 2048 bits"
                             : rc == SLI_E_UNSUPPORTED ? "only ssh-ed25519 and ssh-rsa SSH keys can be age recipients" : NULL);
    else n_objs++;
  }
  for (int i = 0; i < n_keys; i++) free(keys[i]);
  if (passphrase) sli_free(passphrase, strlen(passphrase));
  if (rc) {
    result = cli_exit_code(rc);
    goto cleanup_keys;
  }
  int ifd = (!in || !strcmp(in, "-")) ? 0 : open(in, O_RDONLY | O_CLOEXEC);
  char tmp[4096] = "";
  int ofd = 1;
  if (ifd < 0) {
    fprintf(stderr, "sli %s: cannot open '%s': %s\n", argv[0], in, strerror(errno));
    result = EXIT_FAIL;
    goto cleanup_keys;
  }
  if (outp && strcmp(outp, "-")) {
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", outp, (int)getpid());
    ofd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (ofd < 0) {
      fprintf(stderr, "sli %s: cannot create '%s': %s\n", argv[0], tmp, strerror(errno));
      result = EXIT_FAIL;
      goto cleanup_keys;
    }
  }
  sli_age_enc *e = NULL;
  sli_age_dec *d = NULL;
  rc = enc ? sli_age_enc_new(&e, (const sli_age_recipient *const *)rcpts, (size_t)n_objs,
                             armor ? SLI_AGE_ARMOR : SLI_AGE_PARALLEL)
           : sli_age_dec_new(&d, (const sli_age_identity *const *)ids, (size_t)n_objs, SLI_AGE_PARALLEL);
  const size_t IN = 16 * SLI_AGE_CHUNK_BYTES; /* 1 MiB reads */
  size_t cap = 0;
  if (!rc) {
    cap = enc ? sli_age_enc_update_bound(e, IN) : sli_age_dec_update_bound(d, IN);
    size_t fin = enc ? sli_age_enc_final_bound(e) : SLI_AGE_CHUNK_BYTES;
    if (fin > cap) cap = fin;
  }
  /* a reader thread fills the next 1 MiB while this one encrypts or decrypts the last */
  prefetch *ra = rc ? NULL : prefetch_start(ifd, IN, 4);
  uint8_t *obuf = malloc(cap ? cap : 1);
  const uint8_t *ibuf = NULL;
  int werr = 0;
  if (!rc && (!ra || !obuf)) {
    fprintf(stderr, "sli %s: out of memory\n", argv[0]);
    result = EXIT_FAIL;
  }
  while (!rc && ra && obuf) {
    ssize_t r = prefetch_next(ra, &ibuf);
    if (r < 0) {
      fprintf(stderr, "sli %s: read error: %s\n", argv[0], strerror(errno));
      result = EXIT_FAIL;
      break;
    }
    size_t on = cap;
    if (r == 0) rc = enc ? sli_age_enc_final(e, obuf, &on) : sli_age_dec_final(d, obuf, &on);
    else rc = enc ? sli_age_enc_update(e, obuf, &on, ibuf, (size_t)r) : sli_age_dec_update(d, obuf, &on, ibuf, (size_t)r);
    for (size_t off = 0; !rc && off < on;) {
      ssize_t w = write(ofd, obuf + off, on - off);
      if (w <= 0) {
        werr = 1;
        break;
      }
      off += (size_t)w;
    }
    if (werr || r == 0) break;
  }
  if (rc) result = cli_error(argv[0], rc, d ? sli_age_dec_error(d) : NULL);
  else if (werr) {
    fprintf(stderr, "sli %s: write error: %s\n", argv[0], strerror(errno));
    result = EXIT_FAIL;
  }
  if (ofd != 1) {
    if (result == EXIT_OK && fsync(ofd) != 0) result = EXIT_FAIL;
    close(ofd);
    if (result == EXIT_OK && rename(tmp, outp) != 0) result = EXIT_FAIL;
    if (result != EXIT_OK) unlink(tmp); /* never leave partial output behind */
  }
  prefetch_stop(ra);
  if (ifd) close(ifd);
  if (obuf) sli_free(obuf, cap);
  sli_age_enc_free(e);
  sli_age_dec_free(d);
cleanup_keys:
  for (int i = 0; i < n_objs; i++) {
    if (enc) sli_age_recipient_free(rcpts[i]);
    else sli_age_identity_free(ids[i]);
  }
  return result;
}
