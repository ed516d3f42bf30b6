/* check.h — the assertions and case runner shared by the C tests of every feature (each a program that
 * runs its cases, prints "ok"/"FAIL" per case and a closing "N passed, N failed"). */
#ifndef SLI_TEST_CHECK_H
#define SLI_TEST_CHECK_H

#include <stdio.h>

#include "sli.h"

static int failures, passes;

/* CHECK fails the current case (returns 1 from it) with the condition's text. */
#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                                  \
    }                                                                            \
  } while (0)

/* CHECK_EQ compares two integers (often SLI_* codes) and prints both sides, with code names. */
#define CHECK_EQ(a, b)                                                                      \
  do {                                                                                      \
    long long _a = (long long)(a), _b = (long long)(b);                                     \
    if (_a != _b) {                                                                         \
      fprintf(stderr, "  %s:%d: %s == %lld (%s), expected %lld (%s)\n", __FILE__, __LINE__, \
              #a, _a, sli_err_name((int)_a), _b, sli_err_name((int)_b));                    \
      return 1;                                                                             \
    }                                                                                       \
  } while (0)

static void run(const char *name, int (*fn)(void)) {
  int r = fn();
  printf("%s %s\n", r ? "FAIL" : "ok  ", name);
  fflush(stdout);
  if (r) failures++;
  else passes++;
}

/* finish prints the closing line and gives the program's exit status. */
static int finish(void) {
  printf("%d passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}

#endif
