/* bufpool.c — the shim's 16 KiB buffers (read-ahead, decrypted plaintext, corked plaintext) come
 * from a few spares kept per process instead of malloc/free per record: an idle connection holds
 * none, and a server answering small requests (nginx: one record in, one out, each through a
 * buffer) does not make the heap grow and shrink with brk on every request.
 *
 * The spares are a small stack behind a spin flag taken with try-lock only: a thread that finds it
 * taken uses malloc/free, so no thread ever waits here and a child forked while another thread
 * held the flag simply reinitialises it (shim_buf_atfork_child). */
#include <stdatomic.h>
#include <stdlib.h>

#include "shim.h"

#define SPARES 16

static atomic_flag busy = ATOMIC_FLAG_INIT;
static void *spare[SPARES];
static int nspare;

void *shim_buf_get(void) {
  void *p = NULL;
  if (!atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) {
    if (nspare) p = spare[--nspare];
    atomic_flag_clear_explicit(&busy, memory_order_release);
  }
  return p ? p : malloc(SHIM_BUF_SIZE);
}

void shim_buf_put(void *p) {
  if (!p) return;
  if (!atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) {
    if (nspare < SPARES) {
      spare[nspare++] = p;
      p = NULL;
    }
    atomic_flag_clear_explicit(&busy, memory_order_release);
  }
  free(p);
}

void shim_buf_atfork_child(void) { atomic_flag_clear(&busy); }
