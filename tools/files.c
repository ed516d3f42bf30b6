/* files.c — the CLI's file helpers: whole files in; files out — whole or streamed — through one
 * writer, a temporary file fsynced and renamed into place (so a failure never leaves a half-written
 * file); passphrase files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_read_all(const char *path, uint8_t **out, size_t *out_len) {
  int fd = (!path || !strcmp(path, "-")) ? 0 : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t cap = 65536, len = 0;
  uint8_t *buf = malloc(cap + 1);
  while (buf) {
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

int cli_out_open(cli_out *o, const char *path, mode_t mode) {
  o->path = path;
  o->tmp[0] = 0;
  o->fd = 1;
  if (!path || !strcmp(path, "-")) return 0;
  if ((size_t)snprintf(o->tmp, sizeof(o->tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(o->tmp)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  return o->fd < 0 ? -1 : 0;
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

int cli_out_commit(cli_out *o) {
  if (o->fd == 1) return 0;
  int ok = fsync(o->fd) == 0;
  int e = errno;
  ok = close(o->fd) == 0 && ok;
  o->fd = -1;
  if (ok && rename(o->tmp, o->path) == 0) return 0;
  e = ok ? errno : e;
  unlink(o->tmp);
  errno = e;
  return -1;
}

void cli_out_abort(cli_out *o) {
  if (o->fd == 1 || o->fd < 0) return;
  close(o->fd);
  o->fd = -1;
  unlink(o->tmp); /* never leave partial output behind */
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

char *cli_read_first_line(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return NULL;
  char buf[1024];
  char *r = strdup(fgets(buf, sizeof(buf), f) ? buf : "");
  fclose(f);
  explicit_bzero(buf, sizeof(buf));
  if (r) r[strcspn(r, "\r\n")] = 0;
  return r;
}
