/* identity.c — the per-install default identity: a self-signed ECDSA P-256 certificate generated the
 * first time a server runs without one, kept in the state directory and reused afterwards.
 *
 * Files: `default-identity.pem` (key + certificate, mode 0600, the truth; created with link() so two
 * first runs cannot race) and `default-cert.pem` (the certificate alone, 0644, for clients to trust). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

#define VALID_DAYS 825

static int state_dir(char *out, size_t cap, sli__error *e) {
  const char *env = getenv("SLI_STATE_DIR");
  if (env && *env) {
    snprintf(out, cap, "%s", env);
  } else if ((env = getenv("XDG_STATE_HOME")) && *env) {
    snprintf(out, cap, "%s/sli", env);
  } else if (geteuid() == 0) {
    snprintf(out, cap, "/var/lib/sli");
  } else {
    const char *home = getenv("HOME");
    if (!home || !*home) {
      struct passwd *pw = getpwuid(geteuid());
      home = pw ? pw->pw_dir : NULL;
    }
    if (!home) return sli__fail(e, SLI_E_FILE, "no state directory: set SLI_STATE_DIR");
    snprintf(out, cap, "%s/.local/state/sli", home);
  }
  /* mkdir -p, 0700 for what we create */
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof(tmp), "%s", out);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    mkdir(tmp, 0755);
    *p = '/';
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
    return sli__fail(e, SLI_E_FILE, "cannot create state directory '%s': %s", out, strerror(errno));
  return 0;
}

/* generate builds a new ECDSA P-256 key and its self-signed certificate (the one builder's
 * self-signed profile: its own path-length-0 authority, serverAuth and clientAuth, named for
 * localhost, 127.0.0.1, ::1 and the host name) as one PEM text, key first. */
static int generate(char **out_pem, size_t *out_len, sli__error *e) {
  int rc = SLI_E_INTERNAL;
  EVP_PKEY *pkey = EVP_PKEY_new();
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  X509_NAME *name = X509_NAME_new();
  X509_EXTENSION *san = NULL;
  X509 *x = NULL;
  BIO *bio = BIO_new(BIO_s_mem());
  if (!pkey || !ec || !name || !bio || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pkey, ec))
    goto done;
  ec = NULL;
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = 0;
  char cn[300], dns[300];
  snprintf(cn, sizeof(cn), "sli default identity (%s)", host);
  snprintf(dns, sizeof(dns), "DNS:%s", host);
  const char *sans[] = {"DNS:localhost", "IP:127.0.0.1", "IP:::1", dns};
  size_t n_sans = strcmp(host, "localhost") && !strchr(host, ',') ? 4 : 3;
  if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const uint8_t *)"sli", -1, -1, 0) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const uint8_t *)cn, -1, -1, 0))
    goto done;
  if ((rc = sli__x509_sans(sans, n_sans, &san)) ||
      (rc = sli__x509_build(&x, name, pkey, NULL, pkey, SLI__X509_SELF, VALID_DAYS, san)))
    goto done;
  rc = SLI_E_INTERNAL;
  if (!PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) || !PEM_write_bio_X509(bio, x))
    goto done;
  if ((rc = sli__bio_string(bio, out_pem, out_len)) == 0) (*out_len)--; /* without the NUL */
done:
  if (rc) sli__fail_ssl(e, rc, "cannot generate the default identity");
  ERR_clear_error();
  if (bio) {
    const uint8_t *d;
    size_t l;
    if (BIO_mem_contents(bio, &d, &l)) OPENSSL_cleanse((void *)d, l); /* held the private key */
  }
  BIO_free(bio);
  EC_KEY_free(ec);
  EVP_PKEY_free(pkey);
  X509_EXTENSION_free(san);
  X509_NAME_free(name);
  X509_free(x);
  return rc;
}

static int load_or_create(char *cert_path, char *key_path, size_t pcap, sli__identity *out,
                          sli__error *e) {
  char dir[PATH_MAX - 64];
  int rc = state_dir(dir, sizeof(dir), e);
  if (rc) return rc;
  snprintf(key_path, pcap, "%s/default-identity.pem", dir);
  snprintf(cert_path, pcap, "%s/default-cert.pem", dir);
  /* an expired identity takes three rounds: set aside, generate, read back */
  for (int attempt = 0; attempt < 3; attempt++) {
    char *data = NULL;
    size_t len = 0;
    if (access(key_path, F_OK) != 0) {
      rc = generate(&data, &len, e);
      if (rc) return rc;
      rc = sli__write_file_atomic(key_path, data, len, 0600, 1, e);
      sli_free(data, len + 1);
      if (rc) return rc;
      sli__log(SLI_LOG_WARN,
               "no certificate configured; generated a SELF-SIGNED default identity (ECDSA P-256, "
               "valid %d days) in %s; clients will not trust it unless given %s as their CA; "
               "configure your own certificate and key for production",
               VALID_DAYS, key_path, cert_path);
      continue; /* read back what is on disk (another process may have won the race) */
    }
    rc = sli__read_file(key_path, &data, &len, e);
    if (rc) return rc;
    char what[PATH_MAX + 40];
    snprintf(what, sizeof(what), "default identity '%s'", key_path);
    sli__identity id;
    rc = sli__load_identity(&id, what, data, len, what, data, len, NULL, e);
    if (rc == 0 && X509_cmp_current_time(X509_get0_notAfter(sk_X509_value(id.chain, 0))) < 0) {
      sli__log(SLI_LOG_WARN, "the default identity in %s has expired; generating a new one", key_path);
      sli__identity_clear(&id);
      char old[PATH_MAX + 16];
      snprintf(old, sizeof(old), "%s.expired", key_path);
      rename(key_path, old);
      sli_free(data, len + 1);
      if (attempt == 0) continue;
      return sli__fail(e, SLI_E_INTERNAL, "cannot renew the default identity in %s", key_path);
    }
    if (rc == 0) {
      /* Publish the certificate alone for clients, on a best-effort basis: a failure here is not
       * the caller's, so the thread's last error is kept as it was. */
      sli__error *last = sli__last_error(), kept = last ? *last : (sli__error){0};
      BIO *bio = BIO_new(BIO_s_mem());
      char *cd = NULL;
      size_t cl = 0;
      if (bio && PEM_write_bio_X509(bio, sk_X509_value(id.chain, 0)) &&
          sli__bio_string(bio, &cd, &cl) == 0) {
        cl--; /* without the NUL */
        char *cur = NULL;
        size_t curl = 0;
        int same = sli__read_file(cert_path, &cur, &curl, NULL) == 0 && curl == cl &&
                   memcmp(cur, cd, cl) == 0;
        free(cur);
        if (!same) sli__write_file_atomic(cert_path, cd, cl, 0644, 0, NULL);
      }
      free(cd);
      BIO_free(bio);
      if (last) *last = kept;
      if (out)
        *out = id;
      else
        sli__identity_clear(&id);
    }
    sli_free(data, len + 1);
    return rc;
  }
  return rc;
}

int sli__default_identity(sli__identity *out, sli__error *e) {
  char c[PATH_MAX], k[PATH_MAX];
  return load_or_create(c, k, sizeof(c), out, e);
}

int sli_default_identity(char *out_cert, char *out_key, size_t cap) {
  if (!out_cert || !out_key || cap == 0)
    return sli__fail(NULL, SLI_E_INVAL, "sli_default_identity: out_cert, out_key and cap are needed");
  int rc = sli__tls_init();
  if (rc) return sli__fail(NULL, rc, "sli_default_identity: the TLS engine cannot be initialised");
  char c[PATH_MAX], k[PATH_MAX];
  sli__error err = {0};
  rc = load_or_create(c, k, sizeof(c), NULL, &err);
  if (rc) return rc; /* its message is the thread's last error */
  if (strlen(c) >= cap || strlen(k) >= cap)
    return sli__fail(NULL, SLI_E_BUFSIZE, "sli_default_identity: the paths need %zu bytes",
                     (strlen(c) > strlen(k) ? strlen(c) : strlen(k)) + 1);
  strcpy(out_cert, c);
  strcpy(out_key, k);
  return 0;
}
void sli__identity_clear(sli__identity *id) {
  if (!id) return;
  sk_X509_pop_free(id->chain, X509_free);
  EVP_PKEY_free(id->key);
  id->chain = NULL;
  id->key = NULL;
}

int sli__identity_copy(sli__identity *dst, const sli__identity *src) {
  dst->chain = X509_chain_up_ref(src->chain);
  dst->key = src->key;
  if (!dst->chain) return SLI_E_NOMEM;
  if (dst->key) EVP_PKEY_up_ref(dst->key);
  return 0;
}

int sli__load_identity(sli__identity *id, const char *cert_what, const char *cert_pem,
                       size_t cert_len, const char *key_what, const char *key_pem, size_t key_len,
                       const char *password, sli__error *e) {
  id->chain = NULL;
  id->key = NULL;
  STACK_OF(X509) *chain;
  int rc = sli__parse_chain(cert_what, cert_pem, cert_len, &chain, e);
  if (rc) return rc;
  EVP_PKEY *key;
  rc = sli__parse_key(key_what, key_pem, key_len, password, &key, e);
  if (rc) {
    sk_X509_pop_free(chain, X509_free);
    return rc;
  }
  if (EVP_PKEY_id(key) == EVP_PKEY_X25519) {
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    return sli__fail(e, SLI_E_UNSUPPORTED,
                     "%s holds an X25519 key, which cannot sign: a TLS identity needs RSA, ECDSA or "
                     "Ed25519", key_what);
  }
  if (!X509_check_private_key(sk_X509_value(chain, 0), key)) {
    ERR_clear_error();
    char subj[200];
    X509_NAME_oneline(X509_get_subject_name(sk_X509_value(chain, 0)), subj, sizeof(subj));
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    return sli__fail(e, SLI_E_KEY_MISMATCH,
                     "the private key in %s does not match the certificate in %s (subject %s)",
                     key_what, cert_what, subj);
  }
  id->chain = chain;
  id->key = key;
  return 0;
}
