/* cli.h — shared by the `sli` subcommands. */
#ifndef SLI_CLI_H
#define SLI_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sli.h"

/* Exit codes, documented in the README. */
#define EXIT_OK 0
#define EXIT_FAIL 1     /* other failure (I/O, internal) */
#define EXIT_USAGE 2    /* bad command line */
#define EXIT_CONFIG 3   /* a file, key, certificate or setting cannot be used */
#define EXIT_VERIFY 4   /* the peer's certificate was refused */
#define EXIT_TLS 5      /* the TLS connection failed (protocol, alert, closed, timeout) */
#define EXIT_CRYPTO 6   /* a blob or signature failed: tampered, wrong key or associated data */

/* Config flags shared by serve and connect: the rows of SLI_SETTING_MAP (--cert F --key F ...). */
typedef struct cli_tls_opts {
  const char *names[32];
  const char *values[32];
  int n;
} cli_tls_opts;

/* cli_take_tls_flag: if argv[*i] is a TLS config flag, records it (consuming its value) and returns 1;
 * returns 0 if it is not one; -1 if its value is missing. */
int cli_take_tls_flag(cli_tls_opts *o, int argc, char **argv, int *i);
/* cli_apply_tls_flags applies the recorded flags to `cfg`, password files first; prints the error. */
int cli_apply_tls_flags(const cli_tls_opts *o, sli_config *cfg);
/* cli_print_tls_flags prints the TLS flags with their help, from SLI_SETTING_MAP. */
void cli_print_tls_flags(FILE *f);
/* cli_exit_code maps an SLI_* code to an exit code. */
int cli_exit_code(int code);
/* cli_error prints "sli CMD: NAME: message" to stderr and returns the exit code for `code`. */
int cli_error(const char *cmd, int code, const char *msg);
int cli_is_help(const char *arg);
/* cli_listen / cli_connect: TCP on "HOST:PORT" ("[::1]:443" for IPv6); return an fd or -1. */
int cli_listen(const char *addr, int *out_port);
/* cli_listen_shared is cli_listen with SO_REUSEPORT, for a server whose loops each listen. */
int cli_listen_shared(const char *addr, int *out_port);
int cli_connect(const char *addr, char *out_host, size_t host_cap);
void cli_print_cert(const sli_cert *c, const char *indent);

/* files.c. cli_read_all reads a whole file (stdin for NULL or "-") into a malloc'd buffer, with a
 * NUL after its `*out_len` bytes; -1 with errno on failure. */
int cli_read_all(const char *path, uint8_t **out, size_t *out_len);
/* cli_read_max is cli_read_all for inputs of at most `max` bytes: a larger one fails with EFBIG
 * once `max` bytes are read, never all of it held in memory. */
int cli_read_max(const char *path, size_t max, uint8_t **out, size_t *out_len);
/* cli_out: one output file written through a temporary file next to it (stdout for NULL or "-").
 * cli_out_open creates the temporary — a new file (O_EXCL, O_NOFOLLOW) with `mode`, removed if the
 * process dies of SIGINT, SIGTERM or SIGHUP; cli_out_write writes all of `data`; cli_out_commit
 * fsyncs it and renames it into place; cli_out_abort removes it. Each returns 0 or -1 with errno. */
typedef struct cli_out {
  const char *path;
  char tmp[4096];
  int fd;
} cli_out;
int cli_out_open(cli_out *o, const char *path, mode_t mode);
int cli_out_write(cli_out *o, const void *data, size_t len);
int cli_out_commit(cli_out *o);
void cli_out_abort(cli_out *o);
/* cli_write_file writes to stdout (NULL or "-"), or to `path` created with `mode` through a temporary
 * file that is fsync'd and renamed into place; -1 on failure, leaving nothing behind. */
int cli_write_file(const char *path, const void *data, size_t len, mode_t mode);
/* cli_same_file says whether two paths (NULL or "-": stdout) name the same file, or would once
 * created. */
int cli_same_file(const char *a, const char *b);
/* cli_exists says whether something (a file, a link) is at `path`. */
int cli_exists(const char *path);
/* cli_check_key_mode warns on stderr when the private key file `path` can be read by others. */
void cli_check_key_mode(const char *cmd, const char *path);
/* cli_read_first_line returns the whole first line of a passphrase file without its line ending
 * ("" for an empty file; free it with sli_free), or NULL if it cannot be read. */
char *cli_read_first_line(const char *path);

/* systemd.c: cli_sd_listen_fd returns the listening socket systemd handed over (LISTEN_FDS), or -1;
 * cli_sd_notify tells systemd the service's state ("READY=1", "STOPPING=1") if it asked. */
int cli_sd_listen_fd(void);
void cli_sd_notify(const char *state);

int cmd_demo(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_tickets(int argc, char **argv);
int cmd_keyring(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_csr(int argc, char **argv);
int cmd_age(int argc, char **argv);

#endif
