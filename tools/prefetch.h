/* prefetch.h — a reader thread that fills fixed-size buffers ahead of their consumer, so that
 * reading a file overlaps with the work done on what was read (`sli encrypt` / `decrypt`). */
#ifndef SLI_PREFETCH_H
#define SLI_PREFETCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct prefetch prefetch;

/* prefetch_start starts reading `fd` into `nbufs` buffers of `bufsize` bytes; NULL if it cannot. */
prefetch *prefetch_start(int fd, size_t bufsize, int nbufs);

/* prefetch_next hands out the next filled buffer (valid until the next call) and returns its
 * length: 0 at the end of the input, -1 on a read error (errno set). */
ssize_t prefetch_next(prefetch *ra, const uint8_t **buf);

/* prefetch_stop stops the reader (also before the end of the input, even one blocked in read())
 * and wipes and frees the buffers. */
void prefetch_stop(prefetch *ra);

#endif
