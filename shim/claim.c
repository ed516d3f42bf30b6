/* claim.c — one owner per TLS session across fork. A session's keys and sequence numbers live in
 * process memory, which fork copies: two processes writing with one copy each would reuse an AEAD
 * nonce. Each connection therefore has a claim word in memory shared by every process that forks
 * from its creator (MAP_SHARED, made before the fork): the owning pid, CLAIM_OPEN (since a fork,
 * nobody has done I/O: the first process to do so takes it) or CLAIM_ENDED (the owner ended the
 * session). process.c opens the claims a process owns when it forks.
 *
 * Words come from 4 KiB slabs. After a fork, both processes stop allocating from the slabs they
 * share (their words may still be in use by the other process) and start new ones; a slab is
 * unmapped in a process once none of that process's connections uses a word in it. */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shim.h"

#define SLAB_BYTES 4096
#define SLAB_WORDS (SLAB_BYTES / sizeof(int32_t))

typedef struct slab {
  _Atomic int32_t *base;
  size_t used;  /* words handed out (never reused) */
  size_t live;  /* words in use by this process */
  int frozen;   /* shared with another process since a fork: no new words from it */
  struct slab *next;
} slab;

static slab *slabs, *current;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void unlink_slab(slab *s) {
  for (slab **p = &slabs; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  munmap((void *)s->base, SLAB_BYTES);
  free(s);
}

_Atomic int32_t *claim_alloc(void **out) {
  pthread_mutex_lock(&mu);
  if (!current || current->frozen || current->used + 2 > SLAB_WORDS) {
    if (current && current->live == 0) unlink_slab(current);
    current = NULL;
    slab *s = calloc(1, sizeof(*s));
    void *p = s ? mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
                : MAP_FAILED;
    if (p == MAP_FAILED) {
      free(s);
      pthread_mutex_unlock(&mu);
      return NULL;
    }
    s->base = p;
    s->next = slabs;
    slabs = s;
    current = s;
  }
  _Atomic int32_t *w = current->base + current->used;
  current->used += 2; /* the claim, then the count of processes holding an fd of the connection */
  current->live++;
  atomic_store(w, shim_pid);
  atomic_store(w + 1, 1);
  *out = current;
  pthread_mutex_unlock(&mu);
  return w;
}

void claim_free(void *p) {
  slab *s = p;
  if (!s) return;
  pthread_mutex_lock(&mu);
  if (--s->live == 0 && s != current) unlink_slab(s);
  pthread_mutex_unlock(&mu);
}

/* In both processes after a fork (the lock was taken by the forking thread in prepare). */
void claim_after_fork(void) {
  for (slab *s = slabs; s; s = s->next) s->frozen = 1;
  if (current && current->live == 0) unlink_slab(current);
  current = NULL;
}

void claim_lock(void) { pthread_mutex_lock(&mu); }
void claim_unlock(void) { pthread_mutex_unlock(&mu); }
