/* log.c — the library's notices and warnings go to the host's log callback, never to a file
 * descriptor of the host's: without a callback they are dropped (inside a daemon fd 2 may be closed
 * or reused by a data file). */
#include <stdio.h>

#include "core/core.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static sli_log_fn log_fn;
static int log_level;
static void *log_arg;

void sli_set_log_callback(sli_log_fn fn, int level, void *arg) {
  pthread_mutex_lock(&mu);
  log_fn = fn;
  log_level = level;
  log_arg = arg;
  pthread_mutex_unlock(&mu);
}

void sli__log(int level, const char *fmt, ...) {
  pthread_mutex_lock(&mu);
  sli_log_fn fn = log_fn;
  void *arg = log_arg;
  int wanted = fn && level <= log_level;
  pthread_mutex_unlock(&mu);
  if (!wanted) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fn(level, msg, arg);
}
