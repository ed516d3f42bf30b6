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

/* A list of -r/-R/-i strings, as long as they come: no silent cap. */
typedef struct keylist {
  char **v;
  int n, cap;
} keylist;

static int keylist_add(keylist *l, char *s) {
  if (!s) return -1;
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 16;
    char **v = realloc(l->v, (size_t)cap * sizeof(*v));
    if (!v) {
      free(s);
      return -1;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = s;
  return 0;
}

static void keylist_free(keylist *l) {
  for (int i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
}

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
static int read_keys_file(const char *path, keylist *out, int identities) {
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
    if (strstr(line, "-----BEGIN ")) {
      fclose(f);
      cli_check_key_mode("decrypt", path);
      char *entry = malloc(strlen(path) + 2);
      if (entry) {
        entry[0] = PEM_FILE;
        strcpy(entry + 1, path);
      }
      return keylist_add(out, entry);
    }
    cli_check_key_mode("decrypt", path); /* age identities are private keys too */
  }
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\r\n")] = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') continue;
    if (keylist_add(out, strdup(p))) {
      fclose(f);
      fprintf(stderr, "sli: out of memory reading '%s'\n", path);
      return -1;
    }
  }
  fclose(f);
  return 0;
}

/* ---- the stream: input through an encryptor or decryptor to the output ---- */

/* One direction's calls, so that one loop serves both. */
typedef struct age_stream {
  const char *cmd;
  sli_age_enc *e;
  sli_age_dec *d;
} age_stream;

static size_t stream_bound(const age_stream *s, size_t in) {
  size_t cap = s->e ? sli_age_enc_update_bound(s->e, in) : sli_age_dec_update_bound(s->d, in);
  size_t fin = s->e ? sli_age_enc_final_bound(s->e) : SLI_AGE_CHUNK_BYTES;
  return fin > cap ? fin : cap;
}

static int stream_step(age_stream *s, uint8_t *out, size_t *on, const uint8_t *in, size_t n) {
  if (n == 0) return s->e ? sli_age_enc_final(s->e, out, on) : sli_age_dec_final(s->d, out, on);
  return s->e ? sli_age_enc_update(s->e, out, on, in, n) : sli_age_dec_update(s->d, out, on, in, n);
}

/* run_stream reads IN (or stdin), runs it through `s` and writes OUT (or stdout); with OUT the file
 * appears only once everything succeeded (a temporary file renamed, removed otherwise). Returns an
 * exit code. */
static int run_stream(age_stream *s, const char *in, const char *outp) {
  int ifd = (!in || !strcmp(in, "-")) ? 0 : open(in, O_RDONLY | O_CLOEXEC);
  if (ifd < 0) {
    fprintf(stderr, "sli %s: cannot open '%s': %s\n", s->cmd, in, strerror(errno));
    return EXIT_FAIL;
  }
  int result = EXIT_OK, rc = 0;
  cli_out out;
  if (cli_out_open(&out, outp, 0600)) {
    fprintf(stderr, "sli %s: cannot create '%s': %s\n", s->cmd, out.tmp, strerror(errno));
    if (ifd) close(ifd);
    return EXIT_FAIL;
  }
  const size_t IN = 16 * SLI_AGE_CHUNK_BYTES; /* 1 MiB reads */
  size_t cap = stream_bound(s, IN);
  /* a reader thread fills the next 1 MiB while this one encrypts or decrypts the last */
  prefetch *ra = prefetch_start(ifd, IN, 4);
  uint8_t *obuf = malloc(cap);
  int werr = 0;
  if (!ra || !obuf) {
    fprintf(stderr, "sli %s: out of memory\n", s->cmd);
    result = EXIT_FAIL;
  }
  while (ra && obuf) {
    const uint8_t *ibuf = NULL;
    ssize_t r = prefetch_next(ra, &ibuf);
    if (r < 0) {
      fprintf(stderr, "sli %s: read error: %s\n", s->cmd, strerror(errno));
      result = EXIT_FAIL;
      break;
    }
    size_t on = cap;
    if ((rc = stream_step(s, obuf, &on, ibuf, (size_t)r))) break;
    if (cli_out_write(&out, obuf, on)) {
      werr = 1;
      break;
    }
    if (r == 0) break;
  }
  if (rc) result = cli_error(s->cmd, rc, s->d ? sli_age_dec_error(s->d) : NULL);
  else if (werr) {
    fprintf(stderr, "sli %s: write error: %s\n", s->cmd, strerror(errno));
    result = EXIT_FAIL;
  }
  if (result != EXIT_OK) cli_out_abort(&out); /* never leave partial output behind */
  else if (cli_out_commit(&out)) result = EXIT_FAIL;
  prefetch_stop(ra);
  if (ifd) close(ifd);
  if (obuf) sli_free(obuf, cap);
  return result;
}

/* ---- sli encrypt ---- */

/* recipients turns the -r/-R strings (or the passphrase) into recipient objects; an exit code. */
static int recipients(char **keys, int n_keys, int pass, sli_age_recipient **out, int *n) {
  int rc = 0;
  if (pass) {
    char *passphrase = get_passphrase(1);
    if (!passphrase) return EXIT_CONFIG;
    rc = sli_age_recipient_scrypt(&out[0], passphrase, 0);
    sli_free(passphrase, strlen(passphrase));
    if (rc) return cli_error("encrypt", rc, "empty passphrase");
    *n = 1;
  }
  for (int i = 0; i < n_keys && !rc; i++) {
    rc = sli_age_recipient_parse(&out[*n], keys[i]);
    if (rc == SLI_E_INVAL)
      fprintf(stderr, "sli encrypt: '%.24s…' is not a valid recipient (age1... or an ssh-ed25519 / "
                      "ssh-rsa public key)\n", keys[i]);
    else if (rc)
      cli_error("encrypt", rc, rc == SLI_E_WEAK_KEY ? "an ssh-rsa recipient needs at least 2048 bits"
                               : rc == SLI_E_UNSUPPORTED ? "only ssh-ed25519 and ssh-rsa SSH keys can be age recipients" : NULL);
    else (*n)++;
  }
  return rc ? cli_exit_code(rc) : EXIT_OK;
}

static int cmd_encrypt(int argc, char **argv) {
  int pass = 0, armor = 0, n = 0;
  const char *outp = NULL, *in = NULL;
  keylist keys = {0};
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) return usage("encrypt", 1);
    if (!strcmp(argv[i], "-r") && i + 1 < argc) {
      if (keylist_add(&keys, strdup(argv[++i]))) return EXIT_FAIL;
    } else if (!strcmp(argv[i], "-R") && i + 1 < argc) {
      if (read_keys_file(argv[++i], &keys, 0)) return EXIT_CONFIG;
    } else if (!strcmp(argv[i], "-p")) pass = 1;
    else if (!strcmp(argv[i], "-a")) armor = 1;
    else if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
    else if ((argv[i][0] != '-' || !strcmp(argv[i], "-")) && !in) in = argv[i];
    else return usage("encrypt", 0);
  }
  if (pass ? keys.n > 0 : keys.n == 0) return usage("encrypt", 0);
  if (outp && in && cli_same_file(outp, in)) {
    keylist_free(&keys);
    fprintf(stderr, "sli encrypt: the output would replace its input ('%s')\n", outp);
    return EXIT_USAGE;
  }
  sli_age_recipient **rcpts = calloc((size_t)keys.n + 1, sizeof(*rcpts));
  int result = rcpts ? recipients(keys.v, keys.n, pass, rcpts, &n) : EXIT_FAIL;
  keylist_free(&keys);
  age_stream s = {.cmd = "encrypt"};
  if (result == EXIT_OK) {
    int rc = sli_age_enc_new(&s.e, (const sli_age_recipient *const *)rcpts, (size_t)n,
                             armor ? SLI_AGE_ARMOR : SLI_AGE_PARALLEL);
    result = rc ? cli_error("encrypt", rc, NULL) : run_stream(&s, in, outp);
  }
  sli_age_enc_free(s.e);
  for (int i = 0; i < n; i++) sli_age_recipient_free(rcpts[i]);
  free(rcpts);
  return result;
}

/* ---- sli decrypt ---- */

/* identity_from_file makes an identity of a private key file (OpenSSH or PEM); 0 or a code. */
static int identity_from_file(const char *path, sli_age_identity **out) {
  char msg[600] = "";
  sli_key *k = NULL;
  int rc = sli_key_load_file(&k, path, NULL, msg, sizeof(msg));
  if (!rc && (rc = sli_age_identity_from_key(out, k)))
    snprintf(msg, sizeof(msg), "'%s' holds a key that cannot be an age identity (X25519, Ed25519 or RSA >= 2048 bits)", path);
  sli_key_free(k);
  if (rc) cli_error("decrypt", rc, msg);
  return rc;
}

/* identities turns the -i contents (or, with none, the passphrase) into identity objects; an exit
 * code. */
static int identities(char **keys, int n_keys, sli_age_identity **out, int *n) {
  int rc = 0;
  if (n_keys == 0) {
    char *passphrase = get_passphrase(0);
    if (!passphrase) return EXIT_CONFIG;
    rc = sli_age_identity_scrypt(&out[0], passphrase);
    sli_free(passphrase, strlen(passphrase));
    if (rc) return cli_error("decrypt", rc, "empty passphrase");
    *n = 1;
  }
  for (int i = 0; i < n_keys && !rc; i++) {
    if (keys[i][0] == PEM_FILE) rc = identity_from_file(keys[i] + 1, &out[*n]);
    else if ((rc = sli_age_identity_parse(&out[*n], keys[i])) == SLI_E_INVAL)
      fprintf(stderr, "sli decrypt: '%.24s…' is not a valid age identity (AGE-SECRET-KEY-1...)\n", keys[i]);
    else if (rc)
      cli_error("decrypt", rc, NULL);
    if (!rc) (*n)++;
  }
  return rc ? cli_exit_code(rc) : EXIT_OK;
}

static int cmd_decrypt(int argc, char **argv) {
  int n = 0;
  const char *outp = NULL, *in = NULL;
  keylist keys = {0};
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) return usage("decrypt", 1);
    if (!strcmp(argv[i], "-i") && i + 1 < argc) {
      if (read_keys_file(argv[++i], &keys, 1)) return EXIT_CONFIG;
    } else if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
    else if ((argv[i][0] != '-' || !strcmp(argv[i], "-")) && !in) in = argv[i];
    else return usage("decrypt", 0);
  }
  if (outp && in && cli_same_file(outp, in)) {
    keylist_free(&keys);
    fprintf(stderr, "sli decrypt: the output would replace its input ('%s')\n", outp);
    return EXIT_USAGE;
  }
  sli_age_identity **ids = calloc((size_t)keys.n + 1, sizeof(*ids));
  int result = ids ? identities(keys.v, keys.n, ids, &n) : EXIT_FAIL;
  keylist_free(&keys);
  age_stream s = {.cmd = "decrypt"};
  if (result == EXIT_OK) {
    int rc = sli_age_dec_new(&s.d, (const sli_age_identity *const *)ids, (size_t)n, SLI_AGE_PARALLEL);
    result = rc ? cli_error("decrypt", rc, NULL) : run_stream(&s, in, outp);
  }
  sli_age_dec_free(s.d);
  for (int i = 0; i < n; i++) sli_age_identity_free(ids[i]);
  free(ids);
  return result;
}

int cmd_age(int argc, char **argv) {
  return !strcmp(argv[0], "encrypt") ? cmd_encrypt(argc, argv) : cmd_decrypt(argc, argv);
}
