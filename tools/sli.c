/* sli.c — the `sli` command: dispatches to one file per subcommand. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: sli COMMAND [ARGS]\n"
          "\n"
          "  demo       start a TLS server on loopback and talk to it with a verifying client\n"
          "  serve      run a TLS server (echo, or forward to a plain backend)\n"
          "  proxy      a TLS front for a plain TCP server (as serve --backend)\n"
          "  connect    connect to a TLS server: stdin to it, its bytes to stdout\n"
          "  cert       inspect a certificate file\n"
          "  tickets    create or rotate a shared session-ticket key file\n"
          "  keyring    create, rotate or list a keyring for sealed blobs\n"
          "  seal       seal data (a database field, a file) with a keyring's primary key\n"
          "  unseal     open sealed data with the keyring\n"
          "  encrypt    encrypt a file in the age format (to age1... recipients or a passphrase)\n"
          "  decrypt    decrypt an age file\n"
          "  keygen     generate a key pair (rsa, ec, ed25519, x25519; --format age)\n"
          "  sign       make a detached signature\n"
          "  verify     check a detached signature\n"
          "  csr        make a certificate request (PKCS#10) for a CA\n"
          "  selfsign   make a self-signed certificate (or a CA certificate with --ca)\n"
          "  ca issue   issue a certificate from a request with a local CA\n"
          "  version    print the version\n"
          "\n"
          "'sli COMMAND --help' describes each command. Exit codes: 0 ok, 1 failure, 2 usage,\n"
          "3 configuration, 4 peer certificate refused, 5 TLS connection failed,\n6 a blob or signature failed.\n");
}

static const char *const level_names[] = {"log", "error", "warning", "notice", "info", "debug"};

/* log_stderr prints the library's notices and warnings, the command's own voice: "sli: warning: …". */
static void log_stderr(int level, const char *message, void *arg) {
  fprintf(stderr, "sli: %s: %s\n", level_names[level >= 1 && level <= 5 ? level : 0], message);
}

/* log_syslog sends them to the syslog socket `arg` (SLI_LOG_TARGET=syslog[:PATH]), one datagram
 * each, facility daemon, as "<PRI>sli[PID]: warning: …". */
static void log_syslog(int level, const char *message, void *arg) {
  static const int severity[] = {5, 3, 4, 5, 6, 7}; /* LOG_ERR .. LOG_DEBUG */
  int l = level >= 1 && level <= 5 ? level : 0;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", (const char *)arg);
  char line[1200];
  int n = snprintf(line, sizeof(line), "<%d>sli[%d]: %s: %s", 3 * 8 + severity[l], (int)getpid(),
                   level_names[l], message);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || n <= 0) return;
  sendto(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, MSG_DONTWAIT,
         (struct sockaddr *)&a, sizeof(a));
  close(fd);
}

/* log_target installs the library's log callback where SLI_LOG_TARGET says: stderr (the default)
 * or syslog (/dev/log, or syslog:PATH). 0, or -1 for a value it does not know. */
static int log_target(void) {
  static char path[108];
  const char *v = getenv("SLI_LOG_TARGET");
  if (!v || !strcmp(v, "stderr")) {
    sli_set_log_callback(log_stderr, SLI_LOG_NOTICE, NULL);
    return 0;
  }
  const char *p = !strcmp(v, "syslog") ? "/dev/log" : !strncmp(v, "syslog:", 7) ? v + 7 : NULL;
  if (!p || !*p || strlen(p) >= sizeof(path)) {
    sli_set_log_callback(log_stderr, SLI_LOG_NOTICE, NULL);
    fprintf(stderr, "sli: SLI_LOG_TARGET: '%s' is not stderr, syslog or syslog:PATH\n", v);
    return -1;
  }
  snprintf(path, sizeof(path), "%s", p);
  sli_set_log_callback(log_syslog, SLI_LOG_NOTICE, path);
  return 0;
}

int main(int argc, char **argv) {
  if (log_target()) return EXIT_USAGE;
  /* A peer that goes away while we write must cost that connection, not the process: writes to a
   * closed socket or pipe return EPIPE instead of raising SIGPIPE (which killed `sli serve`). */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2 || cli_is_help(argv[1])) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
    printf("sli %s\n", sli_version_string());
    return EXIT_OK;
  }
  if (!strcmp(cmd, "demo")) return cmd_demo(argc - 1, argv + 1);
  if (!strcmp(cmd, "serve") || !strcmp(cmd, "proxy")) return cmd_serve(argc - 1, argv + 1);
  if (!strcmp(cmd, "connect")) return cmd_connect(argc - 1, argv + 1);
  if (!strcmp(cmd, "cert")) return cmd_cert(argc - 1, argv + 1);
  if (!strcmp(cmd, "tickets")) return cmd_tickets(argc - 1, argv + 1);
  if (!strcmp(cmd, "keyring")) return cmd_keyring(argc - 1, argv + 1);
  if (!strcmp(cmd, "seal") || !strcmp(cmd, "unseal")) return cmd_seal(argc - 1, argv + 1);
  if (!strcmp(cmd, "keygen")) return cmd_keygen(argc - 1, argv + 1);
  if (!strcmp(cmd, "encrypt") || !strcmp(cmd, "decrypt")) return cmd_age(argc - 1, argv + 1);
  if (!strcmp(cmd, "csr") || !strcmp(cmd, "selfsign") || !strcmp(cmd, "ca")) return cmd_csr(argc - 1, argv + 1);
  if (!strcmp(cmd, "sign") || !strcmp(cmd, "verify")) return cmd_sign(argc - 1, argv + 1);
  fprintf(stderr, "sli: unknown command '%s'\n", cmd);
  usage(stderr);
  return EXIT_USAGE;
}
