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

/* errors.c: sli__msg prints into an error-message buffer (NULL or `cap` 0: nothing) and returns
 * `code`, for tail calls. Every internal function returns 0 or a negative SLI_E_* code. */
int sli__msg(char *buf, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* sli__append_ssl_error appends the text of BoringSSL's first queued error (if any) to `buf` and
 * clears the queue. */
void sli__append_ssl_error(char *buf, size_t cap);

/* library.c: sli__ensure_init initialises the crypto library once (every public entry point that
 * creates an object calls it); the allocation helpers zero and never return NULL for n == 0. */
int sli__ensure_init(void);
void *sli__zalloc(size_t n);
char *sli__strdup(const char *s);
int64_t sli__now_ms(void);

/* files.c: sli__read_file reads a whole regular file of at most 16 MiB (NUL-terminated, malloc'd;
 * free with sli_free). sli__write_file_atomic writes `data` to a fresh temporary file next to
 * `path` (never following a link, never reusing a file someone else made), fsyncs it and renames it
 * over `path` — or, with `exclusive`, links it only if `path` does not exist yet (then the existing
 * file wins and 0 is returned). */
int sli__read_file(const char *path, char **out, size_t *out_len, char *msg, size_t cap);
int sli__write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           int exclusive, char *msg, size_t cap);

/* pem.c: sli__pem_check checks that `data` is PEM text and returns a normalised copy (LF line
 * endings, NUL-terminated, malloc'd): SLI_E_NOT_PEM, SLI_E_LINE_ENDINGS, SLI_E_PEM_TRUNCATED or
 * SLI_E_PEM otherwise. `what` names the input in messages. */
int sli__pem_check(const char *what, const char *data, size_t len, char **out_norm,
                   size_t *out_norm_len, char *msg, size_t cap);

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
