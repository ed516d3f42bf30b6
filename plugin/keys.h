/* keys.h — the key object, shared by keys.c and sign.c. */
#ifndef SLI_KEYS_H
#define SLI_KEYS_H

#include "internal.h"

struct sli_key {
  atomic_int refs;
  EVP_PKEY *pkey;
  int has_private;
};

#endif
