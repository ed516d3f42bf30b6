/* dup2_stdio_noexec MODE — a fork-per-connection server whose child puts the connection on fd 1
 * with dup2() and then answers with glibc stdio on stdout (printf / puts / fflush), no exec: small
 * inetd-style services written in C do this. glibc's stdio writes through its internal write(), not
 * the interposed one, so this is where plaintext would leak. MODE:
 *   fflush:  printf, fflush, puts, fflush, exit(0);
 *   exit:    printf, puts, exit(0) (exit flushes stdout: the last bytes leave during exit);
 *   pending: the child printf()s a header line while stdout is still the log (stdio buffers it:
 *            the log is a file), then dup2()s the connection onto 1 and prints the body; the kernel
 *            way, the buffered header goes to the connection too (stdout's buffer follows fd 1);
 *   saved:   the stream is used through a FILE pointer saved before the dup2 (`FILE *out =
 *            stdout`, as a logging helper keeps it): fprintf(out), fflush(out) — it is still the
 *            stream on fd 1, which is now the connection.
 * The child reports its return values through a saved copy of the original stdout. */
#include "../host.h"

static int obsfd = -1;

__attribute__((format(printf, 1, 2))) static void cobs(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  if (write(obsfd, line, (size_t)n) < 0) _exit(98);
}

static void child(int i, int fd, const char *mode) {
  char req[256];
  obsfd = dup(1);
  if (!strcmp(mode, "stdin") || !strcmp(mode, "unbuffered")) {
    if (dup2(fd, 0) != 0 || dup2(fd, 1) != 1) _exit(97);
    close(fd);
    int a = !strcmp(mode, "unbuffered") ? printf("name? ") : 0;
    const char *g = fgets(req, sizeof(req), stdin) ? "a line" : "NULL";
    int b = printf("hello %d, you said %s", i, req);
    int c = fflush(stdout);
    cobs("child %d: printf %d, fgets %s, printf %d, fflush %d", i, a, g, b, c);
    exit(0);
  }
  read_line(fd, req, sizeof(req));
  FILE *out = stdout;
  if (!strcmp(mode, "pending")) printf("Status: 200 from child %d\n", i); /* buffered */
  const char *d = RET(dup2(fd, 1));
  cobs("child %d: dup2 onto 1: %s", i, d);
  close(fd);
  if (!strcmp(mode, "saved")) {
    int a = fprintf(out, "hello %d, you said %s", i, req);
    int b = fflush(out);
    cobs("child %d: fprintf %d, fflush %d", i, a, b);
    exit(0);
  }
  int a = printf("hello %d, you said %s", i, req);
  if (!strcmp(mode, "exit")) {
    int c = puts("bye");
    cobs("child %d: printf %d, puts %d", i, a, c);
    exit(0);
  }
  int b = fflush(stdout);
  int c = puts("bye");
  int e = fflush(stdout);
  cobs("child %d: printf %d, fflush %d, puts %d, fflush %d", i, a, b, c, e);
  exit(0);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: dup2_stdio_noexec PORT MODE");
  int lfd = listen_on(atoi(argv[1]));
  const char *mode = argv[2];
  if (!strcmp(mode, "unbuffered")) setvbuf(stdout, NULL, _IONBF, 0);
  ready();
  for (int i = 0; i < 2; i++) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      close(lfd);
      child(i, fd, mode);
    }
    close(fd);
    int st;
    if (waitpid(pid, &st, 0) < 0) die("waitpid");
    OBS("conn %d: child exit %d", i, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }
  return 0;
}
