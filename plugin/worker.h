/* worker.h — one helper thread that runs one job at a time for the object that owns it (worker.c). */
#ifndef SLI_WORKER_H
#define SLI_WORKER_H

typedef struct sli_worker sli_worker;

/* sli__worker_new starts the helper thread (with every signal blocked, so a host's handlers never
 * run on it); NULL if it cannot, and the caller then does the work itself. */
sli_worker *sli__worker_new(void);

/* sli__worker_start hands `fn(arg)` to the idle helper; sli__worker_wait returns once it is done. */
void sli__worker_start(sli_worker *w, void (*fn)(void *), void *arg);
void sli__worker_wait(sli_worker *w);

/* sli__worker_free stops and joins the helper; NULL is a no-op. */
void sli__worker_free(sli_worker *w);

#endif
