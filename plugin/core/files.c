/* files.c — reading a whole file and writing one atomically, with named errors. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

#define MAX_FILE (16u << 20)

int sli__read_file(const char *path, char **out, size_t *out_len, sli__error *e) {
  *out = NULL;
  *out_len = 0;
  if (!path || !*path) return sli__fail(e, SLI_E_INVAL, "no file name given");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sli__fail(e, SLI_E_FILE, "cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE) {
    int err = errno;
    close(fd);
    if (err == 0 || S_ISDIR(st.st_mode))
      return sli__fail(e, SLI_E_FILE, "'%s' is not a regular file of at most 16 MiB", path);
    return sli__fail(e, SLI_E_FILE, "cannot stat '%s': %s", path, strerror(err));
  }
  size_t n = (size_t)st.st_size, got = 0;
  char *buf = malloc(n + 1);
  if (!buf) {
    close(fd);
    return sli__fail(e, SLI_E_NOMEM, "out of memory reading '%s'", path);
  }
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : EIO;
      close(fd);
      sli_free(buf, n + 1);
      return sli__fail(e, SLI_E_FILE, "cannot read '%s': %s", path, strerror(err));
    }
    got += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  *out = buf;
  *out_len = n;
  return 0;
}


int sli__write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           int exclusive, sli__error *e) {
  char tmp[PATH_MAX];
  if (!path || !*path) return sli__fail(e, SLI_E_INVAL, "no file name given");
  if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
    return sli__fail(e, SLI_E_FILE, "'%s': name too long", path);
  /* a fresh file of our own (never a link or a file someone planted at that name) */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return sli__fail(e, SLI_E_FILE, "cannot create '%s': %s", tmp, strerror(errno));
  size_t off = 0;
  int err = 0;
  while (off < len) {
    ssize_t w = write(fd, (const char *)data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = w < 0 ? errno : EIO;
      break;
    }
    off += (size_t)w;
  }
  if (!err && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && !err) err = errno;
  if (err) {
    unlink(tmp);
    return sli__fail(e, SLI_E_FILE, "cannot write '%s': %s", tmp, strerror(err));
  }
  /* link() fails if `path` exists: the first writer wins and everyone reads its file. */
  int r = exclusive ? link(tmp, path) : rename(tmp, path);
  err = errno;
  if (exclusive || r != 0) unlink(tmp);
  if (r != 0) {
    if (exclusive && err == EEXIST) return 0;
    return sli__fail(e, SLI_E_FILE, "cannot create '%s': %s", path, strerror(err));
  }
  return 0;
}
