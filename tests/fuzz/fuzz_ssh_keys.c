/* fuzz_ssh_keys.c — libFuzzer target: OpenSSH key parsing of arbitrary input. The bytes are read as
 * an age recipient line (sli_age_recipient_parse: "ssh-ed25519 …", "ssh-rsa …", "age1…") and as a key
 * file (sli_key_load_file through a memfd: openssh-key-v1 private keys, OpenSSH public lines, PEM);
 * a key that loads is then made an age identity or recipient, as `sli decrypt -i` does, and a
 * private one is written as an OpenSSH private key. Promises checked (abort = finding): a failed
 * parse leaves its output NULL; an OpenSSH key sli writes, sli reads back. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sli.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = 0;
  sli_age_recipient *r = (sli_age_recipient *)1;
  if (sli_age_recipient_parse(&r, s) == 0) {
    char text[3000];
    (void)sli_age_recipient_encode(r, text, sizeof(text));
    sli_age_recipient_free(r);
  } else if (r) {
    abort();
  }
  free(s);

  if (fd < 0) {
    fd = memfd_create("fuzz_ssh_keys", MFD_CLOEXEC);
    if (fd < 0) abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
  sli_key *k = (sli_key *)1;
  char msg[256];
  if (sli_key_load_file(&k, path, NULL, msg, sizeof(msg)) == 0) {
    sli_age_identity *id = NULL;
    sli_age_recipient *kr = NULL;
    if (sli_key_has_private(k)) (void)sli_age_identity_from_key(&id, k);
    char *ossh = NULL;
    size_t olen = 0;
    if (sli_key_has_private(k) && sli_key_openssh_private_alloc(k, "fuzz", &ossh, &olen) == 0) {
      /* what sli writes, sli reads back */
      sli_key *again = NULL;
      if (ftruncate(fd, 0) != 0 || pwrite(fd, ossh, olen - 1, 0) != (ssize_t)(olen - 1)) abort();
      if (sli_key_load_file(&again, path, NULL, msg, sizeof(msg)) != 0) abort();
      sli_key_free(again);
      sli_free(ossh, olen);
    }
    (void)sli_age_recipient_from_key(&kr, k);
    sli_age_identity_free(id);
    sli_age_recipient_free(kr);
    sli_key_free(k);
  } else if (k) {
    abort();
  }
  return 0;
}
