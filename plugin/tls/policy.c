/* policy.c — named policies, cipher lists and protocol versions. Forward secrecy always: only ECDHE
 * key exchange; RC4, 3DES, NULL and export suites can never be enabled. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "tls/tls.h"

/* TLS 1.2 suites of the "default" policy: ECDHE + AEAD, strongest first. */
static const char default_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
/* "compat" adds ECDHE CBC-SHA suites for old TLS 1.2 peers. */
static const char compat_extra[] =
    ":ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA";

int sli__policy_known(const char *name) {
  return !strcmp(name, "default") || !strcmp(name, "modern") || !strcmp(name, "compat");
}

static int contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (strncasecmp(hay, needle, n) == 0) return 1;
  return 0;
}

int sli__ciphers_check(const char *list, sli__error *e) {
  static const char *const banned[] = {"RC4", "3DES", "DES", "NULL", "EXP", "MD5", "ADH",
                                       "AECDH", "SRP"};
  char tok[256];
  const char *p = list;
  while (*p) {
    size_t l = strcspn(p, ": ,;");
    if (l > 0) {
      if (l >= sizeof(tok)) l = sizeof(tok) - 1;
      memcpy(tok, p, l);
      tok[l] = 0;
      /* Exclusions (!X, -X) only remove suites: always allowed. */
      if (tok[0] != '!' && tok[0] != '-') {
        for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
          if (contains_ci(tok, banned[i]))
            return sli__fail(e, SLI_E_CIPHERS,
                             "cipher list names '%s': RC4, 3DES, NULL, export, anonymous and "
                             "non-forward-secret suites are never enabled",
                             tok);
      }
    }
    p += l;
    while (*p && strchr(": ,;", *p)) p++;
  }
  return 0;
}

int sli__policy_apply(SSL_CTX *ctx, const sli_config *cfg, sli__error *e) {
  uint16_t min = cfg->min_version, max = cfg->max_version;
  if (!strcmp(cfg->policy, "modern")) min = max = SLI_TLS1_3;
  if (min > max)
    return sli__fail(e, SLI_E_CONFIG, "minimum protocol version is above the maximum");
  if (!SSL_CTX_set_min_proto_version(ctx, min) || !SSL_CTX_set_max_proto_version(ctx, max))
    return sli__fail(e, SLI_E_INTERNAL, "cannot set protocol versions");

  char list[1024];
  if (cfg->ciphers) /* group names such as HIGH may pull in non-ECDHE suites: take them out */
    snprintf(list, sizeof(list), "%s:!kRSA:!kPSK:!3DES", cfg->ciphers);
  else if (!strcmp(cfg->policy, "compat"))
    snprintf(list, sizeof(list), "%s%s", default_ciphers, compat_extra);
  else
    snprintf(list, sizeof(list), "%s", default_ciphers);
  if (!SSL_CTX_set_strict_cipher_list(ctx, list)) {
    ERR_clear_error();
    return sli__fail(e, SLI_E_CIPHERS, "cipher list '%s' is not understood", list);
  }
  /* Whatever the list said: ECDHE key exchange only (forward secrecy), no 3DES. */
  STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
  size_t usable = 0;
  for (size_t i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
    const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
    if (SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe || SSL_CIPHER_get_cipher_nid(c) == NID_des_ede3_cbc)
      return sli__fail(e, SLI_E_CIPHERS,
                       "cipher list enables '%s', which lacks forward secrecy or uses a weak cipher",
                       SSL_CIPHER_get_name(c));
    usable++;
  }
  if (usable == 0 && min < SLI_TLS1_3)
    return sli__fail(e, SLI_E_CIPHERS, "cipher list '%s' selects no suite", list);
  return 0;
}
