/* sli.c — the `sli` command: dispatches to one file per subcommand. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: sli COMMAND [ARGS]\n"
          "\n"
          "  demo       start a TLS server on loopback and talk to it with a verifying client\n"
          "  serve      run a TLS server (echo, or forward to a plain backend)\n"
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

/* log_stderr prints the library's notices and warnings, the command's own voice: "sli: warning: …". */
static void log_stderr(int level, const char *message, void *arg) {
  static const char *const names[] = {"", "error", "warning", "notice", "info", "debug"};
  fprintf(stderr, "sli: %s: %s\n", level >= 1 && level <= 5 ? names[level] : "log", message);
}

int main(int argc, char **argv) {
  sli_set_log_callback(log_stderr, SLI_LOG_NOTICE, NULL);
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
  if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
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
