/* files.c — the CLI's file helpers: whole files in; files out — whole or streamed — through one
 * writer: a temporary file of its own (O_EXCL, O_NOFOLLOW, the output's mode: nothing planted at
 * its name is followed or reused), fsynced and renamed into place, removed on any failure and on
 * SIGINT/SIGTERM/SIGHUP (so no half-written file, no unauthenticated plaintext, is ever left);
 * which outputs are the same file; private keys others can read; passphrase files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int cli_read_all(const char *path, uint8_t **out, size_t *out_len) {
  return cli_read_max(path, SIZE_MAX - 1, out, out_len);
}

int cli_read_max(const char *path, size_t max, uint8_t **out, size_t *out_len) {
  int fd = (!path || !strcmp(path, "-")) ? 0 : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t cap = 65536, len = 0;
  uint8_t *buf = malloc(cap + 1);
  while (buf) {
    if (len > max) { /* refused before it all sits in memory */
      free(buf);
      if (fd) close(fd);
      errno = EFBIG;
      return -1;
    }
    if (len == cap) {
      uint8_t *p = realloc(buf, (cap *= 2) + 1);
      if (!p) break;
      buf = p;
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    if (r == 0) {
      if (fd) close(fd);
      buf[len] = 0;
      *out = buf;
      *out_len = len;
      return 0;
    }
    len += (size_t)r;
  }
  int e = errno;
  free(buf);
  if (fd) close(fd);
  errno = e;
  return -1;
}

/* ---- Temporary files removed on SIGINT, SIGTERM and SIGHUP ----
 * The outputs being written (at most a few at once) are listed here; the handler, installed with
 * the first, unlinks them (async-signal-safe) and dies of the signal as it would have. */
#define MAX_PENDING 8
static char pending[MAX_PENDING][4096];
static volatile sig_atomic_t pending_used[MAX_PENDING];

static void on_fatal_signal(int sig) {
  for (int i = 0; i < MAX_PENDING; i++)
    if (pending_used[i]) unlink(pending[i]);
  signal(sig, SIG_DFL);
  raise(sig);
}

static int pending_add(const char *tmp) {
  static int installed;
  if (!installed) {
    installed = 1;
    struct sigaction sa = {0};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
      struct sigaction old;
      /* a signal the caller ignores (nohup) stays ignored */
      if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
    }
  }
  for (int i = 0; i < MAX_PENDING; i++) {
    if (pending_used[i]) continue;
    snprintf(pending[i], sizeof(pending[i]), "%s", tmp);
    pending_used[i] = 1;
    return i;
  }
  return -1;
}

static void pending_remove(const char *tmp) {
  for (int i = 0; i < MAX_PENDING; i++)
    if (pending_used[i] && !strcmp(pending[i], tmp)) pending_used[i] = 0;
}

int cli_out_open(cli_out *o, const char *path, mode_t mode) {
  o->path = path;
  o->tmp[0] = 0;
  o->fd = 1;
  if (!path || !strcmp(path, "-")) return 0;
  /* A new file of our own, never an existing one: O_EXCL (a file or link planted at the name is
   * not followed or reused; another random name is tried), created with `mode`. */
  for (int attempt = 0; attempt < 16; attempt++) {
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r)) r = (uint32_t)rand();
    if ((size_t)snprintf(o->tmp, sizeof(o->tmp), "%s.tmp.%d.%08x", path, (int)getpid(), r) >=
        sizeof(o->tmp)) {
      errno = ENAMETOOLONG;
      return -1;
    }
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (o->fd >= 0) {
      if (pending_add(o->tmp) < 0) {
        close(o->fd);
        unlink(o->tmp);
        errno = EMFILE;
        return -1;
      }
      return 0;
    }
    if (errno != EEXIST) return -1;
  }
  return -1;
}

int cli_out_write(cli_out *o, const void *data, size_t len) {
  for (size_t off = 0; off < len;) {
    ssize_t w = write(o->fd, (const uint8_t *)data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  return 0;
}

/* sync_dir makes the rename durable: the directory holding `path`, fsynced. */
static void sync_dir(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir) slash[1] = 0;
  else if (slash) *slash = 0;
  else snprintf(dir, sizeof(dir), ".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

int cli_out_commit(cli_out *o) {
  if (o->fd == 1) return fflush(stdout) == 0 ? 0 : -1;
  int ok = fsync(o->fd) == 0;
  int e = errno;
  ok = close(o->fd) == 0 && ok;
  o->fd = -1;
  if (ok && rename(o->tmp, o->path) == 0) { /* a link at the name is replaced, never followed */
    pending_remove(o->tmp);
    sync_dir(o->path);
    return 0;
  }
  e = ok ? errno : e;
  unlink(o->tmp);
  pending_remove(o->tmp);
  errno = e;
  return -1;
}

void cli_out_abort(cli_out *o) {
  if (o->fd == 1 || o->fd < 0) return;
  close(o->fd);
  o->fd = -1;
  unlink(o->tmp); /* never leave partial output behind */
  pending_remove(o->tmp);
}

int cli_write_file(const char *path, const void *data, size_t len, mode_t mode) {
  if (!path || !strcmp(path, "-")) return fwrite(data, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
  cli_out o;
  if (cli_out_open(&o, path, mode)) return -1;
  if (cli_out_write(&o, data, len)) {
    int e = errno;
    cli_out_abort(&o);
    errno = e;
    return -1;
  }
  return cli_out_commit(&o);
}

int cli_same_file(const char *a, const char *b) {
  int a_out = !a || !strcmp(a, "-"), b_out = !b || !strcmp(b, "-");
  if (a_out || b_out) return a_out && b_out;
  if (!strcmp(a, b)) return 1;
  struct stat sa, sb;
  if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  char ra[PATH_MAX], rb[PATH_MAX]; /* not there yet: the same place once made? */
  char *pa = realpath(a, ra), *pb = realpath(b, rb);
  return pa && pb && !strcmp(ra, rb);
}

int cli_exists(const char *path) {
  struct stat st;
  return path && strcmp(path, "-") && lstat(path, &st) == 0;
}

void cli_check_key_mode(const char *cmd, const char *path) {
  struct stat st;
  if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 077)) return;
  fprintf(stderr, "sli%s%s: warning: the private key '%s' can be read by others (mode %04o): "
          "chmod 600 '%s'\n", cmd ? " " : "", cmd ? cmd : "", path, (unsigned)(st.st_mode & 07777), path);
}

char *cli_read_first_line(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return NULL;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, f); /* the whole line, however long: never cut */
  fclose(f);
  char *r = strdup(n > 0 ? line : "");
  if (line) {
    explicit_bzero(line, cap);
    free(line);
  }
  if (r) r[strcspn(r, "\r\n")] = 0;
  return r;
}
