/* core.h — what every domain of plugin/ builds on: messages and error codes, allocation, files,
 * PEM text checks and the worker thread. Nothing here knows TLS or X.509; the domains depend on it
 * one way: core <- pki <- tls, core <- seal, pki <- age. Never installed. */
#ifndef SLI_CORE_H
#define SLI_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sli.h"

#define SLI_MSG_MAX 512

/* sli__error is the one carrier of a failure: its SLI_E_* code (0: none) and a message naming what
 * failed and why. An object that reports its own failures (sli_config, sli_conn, the age encryptor
 * and decryptor) holds one; internal functions that can say why they fail take one; every failure is
 * also recorded in the calling thread's own carrier, the one `sli_last_error` reads (errors.c). */
typedef struct sli__error {
  int code;
  char msg[SLI_MSG_MAX];
} sli__error;

/* sli__fail records `code` and the printf-style message in `e` (NULL: in no object) and in the
 * calling thread's last error, and returns `code`, for tail calls. Every internal function returns 0
 * or a negative SLI_E_* code. */
int sli__fail(sli__error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* sli__fail_ssl is sli__fail with the text of BoringSSL's first queued error (if any) appended in
 * parentheses; it clears that queue. */
int sli__fail_ssl(sli__error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* sli__error_clear forgets the failure held in `e`. */
void sli__error_clear(sli__error *e);
/* sli__error_msg returns the message of the failure held in `e`, or NULL when it holds none. */
const char *sli__error_msg(const sli__error *e);
/* sli__error_to_buf copies the message of `e` into `buf` of `cap` bytes (NULL or 0: nothing), for
 * the 1.0 calls that take an `out_msg` buffer. */
void sli__error_to_buf(const sli__error *e, char *buf, size_t cap);
/* sli__last_error is the calling thread's own carrier (NULL if none can be allocated). Work done on
 * a best-effort basis saves it first and restores it afterwards, so that what it ignores is not
 * reported as a failure. */
sli__error *sli__last_error(void);

/* log.c: sli__log hands a printf-style message to the host's log callback (sli_set_log_callback)
 * if one is set for `level` (SLI_LOG_*); the library prints nothing by itself. */
void sli__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* library.c: sli__ensure_init initialises the crypto library once (every public entry point that
 * creates an object calls it); the allocation helpers zero and never return NULL for n == 0. */
int sli__ensure_init(void);
void *sli__zalloc(size_t n);
char *sli__strdup(const char *s);
int64_t sli__now_ms(void);

/* sli__read_file reads the whole regular file `path` of at most 16 MiB into `*out` (NUL-terminated,
 * malloc'd; free with sli_free) and its length into `*out_len`; a failure names the file and the OS
 * reason (files.c). */
int sli__read_file(const char *path, char **out, size_t *out_len, sli__error *e);
/* sli__write_file_atomic writes `data` to a fresh temporary file next to `path` (never following a
 * link, never reusing a file someone else made), fsyncs it and renames it over `path` — or, with
 * `exclusive`, links it only if `path` does not exist yet (then the existing file wins and 0 is
 * returned). A failure names the file and the OS reason (files.c). */
int sli__write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           int exclusive, sli__error *e);

/* sli__pem_check checks that `data` is PEM text and returns a normalised copy (LF line endings,
 * NUL-terminated, malloc'd): SLI_E_NOT_PEM, SLI_E_LINE_ENDINGS, SLI_E_PEM_TRUNCATED or SLI_E_PEM
 * otherwise. `what` names the input in messages (pem.c). */
int sli__pem_check(const char *what, const char *data, size_t len, char **out_norm,
                   size_t *out_norm_len, sli__error *e);

/* worker.c: one helper thread that runs one job at a time for the object that owns it.
 * sli__worker_new starts it (with every signal blocked, so a host's handlers never run on it); NULL
 * if it cannot, and the caller then does the work itself. sli__worker_start hands `fn(arg)` to the
 * idle helper; sli__worker_wait returns once it is done. sli__worker_free stops and joins it; NULL
 * is a no-op. */
typedef struct sli__worker sli__worker;
sli__worker *sli__worker_new(void);
void sli__worker_start(sli__worker *w, void (*fn)(void *), void *arg);
void sli__worker_wait(sli__worker *w);
void sli__worker_free(sli__worker *w);

#endif
