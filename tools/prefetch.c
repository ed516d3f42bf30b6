/* prefetch.c — see prefetch.h. One reader thread, a ring of buffers: the reader fills slot after
 * slot (one read() each) while the consumer works on the one before. */
#include "prefetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct slot {
  uint8_t *p;
  ssize_t len; /* bytes, 0 = end of input, -1 = error */
  int err;
  int full;
} slot;

struct prefetch {
  int fd, nbufs, stop;
  size_t bufsize;
  slot *slots;
  int rd, cons; /* next slot to fill / to hand out */
  int held;     /* the consumer holds slot cons-1 until its next call */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static void *reader(void *arg) {
  prefetch *ra = arg;
  /* cancellable only inside read(): prefetch_stop must not wait on an input that never comes */
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
  for (;;) {
    pthread_mutex_lock(&ra->mu);
    slot *s = &ra->slots[ra->rd];
    while (s->full && !ra->stop) pthread_cond_wait(&ra->cv, &ra->mu);
    int stop = ra->stop;
    pthread_mutex_unlock(&ra->mu);
    if (stop) return NULL;
    size_t got = 0;
    int err = 0;
    for (;;) { /* one read: what a pipe has now is handed on at once */
      pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
      ssize_t r = read(ra->fd, s->p, ra->bufsize);
      pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) err = errno;
      else got = (size_t)r;
      break;
    }
    pthread_mutex_lock(&ra->mu);
    s->len = err && got == 0 ? -1 : (ssize_t)got;
    s->err = err;
    s->full = 1;
    ra->rd = (ra->rd + 1) % ra->nbufs;
    pthread_cond_broadcast(&ra->cv);
    pthread_mutex_unlock(&ra->mu);
    if (got == 0) return NULL; /* end of input or error: nothing more to read */
  }
}

prefetch *prefetch_start(int fd, size_t bufsize, int nbufs) {
  prefetch *ra = calloc(1, sizeof(*ra));
  if (!ra) return NULL;
  ra->fd = fd;
  ra->bufsize = bufsize;
  ra->nbufs = nbufs;
  ra->slots = calloc((size_t)nbufs, sizeof(slot));
  pthread_mutex_init(&ra->mu, NULL);
  pthread_cond_init(&ra->cv, NULL);
  int ok = ra->slots != NULL;
  for (int i = 0; ok && i < nbufs; i++) ok = (ra->slots[i].p = malloc(bufsize)) != NULL;
  if (!ok || pthread_create(&ra->thread, NULL, reader, ra) != 0) {
    if (ra->slots)
      for (int i = 0; i < nbufs; i++) free(ra->slots[i].p);
    free(ra->slots);
    free(ra);
    return NULL;
  }
  return ra;
}

ssize_t prefetch_next(prefetch *ra, const uint8_t **buf) {
  pthread_mutex_lock(&ra->mu);
  if (ra->held) { /* give the previous buffer back to the reader */
    ra->slots[(ra->cons + ra->nbufs - 1) % ra->nbufs].full = 0;
    ra->held = 0;
    pthread_cond_broadcast(&ra->cv);
  }
  slot *s = &ra->slots[ra->cons];
  while (!s->full) pthread_cond_wait(&ra->cv, &ra->mu);
  ssize_t len = s->len;
  if (len > 0) { /* the end and errors stay put: asking again gives the same answer */
    ra->cons = (ra->cons + 1) % ra->nbufs;
    ra->held = 1;
  } else if (len < 0) {
    errno = s->err;
  }
  *buf = s->p;
  pthread_mutex_unlock(&ra->mu);
  return len;
}

void prefetch_stop(prefetch *ra) {
  if (!ra) return;
  pthread_mutex_lock(&ra->mu);
  ra->stop = 1;
  pthread_cond_broadcast(&ra->cv);
  pthread_mutex_unlock(&ra->mu);
  pthread_cancel(ra->thread); /* takes effect only if it sits in read() */
  pthread_join(ra->thread, NULL);
  for (int i = 0; i < ra->nbufs; i++) {
    explicit_bzero(ra->slots[i].p, ra->bufsize); /* it may have held plaintext */
    free(ra->slots[i].p);
  }
  free(ra->slots);
  pthread_mutex_destroy(&ra->mu);
  pthread_cond_destroy(&ra->cv);
  free(ra);
}
