/* files.c — the CLI's file helpers: whole files in, files out through a temporary file renamed into
 * place (so a failure never leaves a half-written file), passphrase files. */
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

int cli_write_file(const char *path, const void *data, size_t len, mode_t mode) {
  if (!path || !strcmp(path, "-")) return fwrite(data, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, (const uint8_t *)data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  int ok = off == len && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
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
