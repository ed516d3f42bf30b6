/* sign.c — detached signatures: Ed25519 (pure), ECDSA with SHA-256 (DER), RSA-PSS with SHA-256,
 * MGF1-SHA-256 and a digest-length salt. */
#include <string.h>

#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "pki/pki.h"

size_t sli_key_sig_max_size(const sli_key *k) {
  if (!k || !k->has_private || sli_key_type(k) == SLI_KEY_X25519) return 0;
  return EVP_PKEY_size(k->pkey);
}

/* setup prepares a digest-sign or digest-verify context for `k`. */
static int setup(EVP_MD_CTX *md, const sli_key *k, int sign) {
  int t = sli_key_type(k);
  if (t == SLI_KEY_X25519 || t == 0)
    return sli__fail(NULL, SLI_E_UNSUPPORTED, "an X25519 key cannot %s: it only agrees keys",
                     sign ? "sign" : "verify signatures");
  const EVP_MD *digest = t == SLI_KEY_ED25519 ? NULL : EVP_sha256();
  EVP_PKEY_CTX *pctx = NULL;
  int ok = sign ? EVP_DigestSignInit(md, &pctx, digest, NULL, k->pkey)
                : EVP_DigestVerifyInit(md, &pctx, digest, NULL, k->pkey);
  if (ok && t == SLI_KEY_RSA)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1 /* digest length */) &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
  return ok ? 0 : sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot set up the signature algorithm");
}

int sli_key_sign(const sli_key *k, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len) {
  if (!k || !out_len || (!in && in_len))
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_sign: k, out_len and the input are needed");
  if (!k->has_private) return sli__fail(NULL, SLI_E_INVAL, "a public key cannot sign");
  size_t need = sli_key_sig_max_size(k);
  if (!need) return sli__fail(NULL, SLI_E_UNSUPPORTED, "an X25519 key cannot sign: it only agrees keys");
  if (!out || *out_len < need) {
    *out_len = need;
    return sli__fail(NULL, SLI_E_BUFSIZE, "sli_key_sign: a signature needs a buffer of %zu bytes", need);
  }
  EVP_MD_CTX md;
  EVP_MD_CTX_init(&md);
  int rc = setup(&md, k, 1);
  size_t sl = *out_len;
  if (!rc && !EVP_DigestSign(&md, out, &sl, in, in_len))
    rc = sli__fail_ssl(NULL, SLI_E_INTERNAL, "cannot sign");
  EVP_MD_CTX_cleanup(&md);
  ERR_clear_error();
  if (rc) {
    *out_len = 0;
    return rc;
  }
  *out_len = sl;
  return 0;
}

int sli_key_verify(const sli_key *k, const uint8_t *sig, size_t sig_len, const uint8_t *in,
                   size_t in_len) {
  if (!k || !sig || (!in && in_len))
    return sli__fail(NULL, SLI_E_INVAL, "sli_key_verify: k, sig and the input are needed");
  EVP_MD_CTX md;
  EVP_MD_CTX_init(&md);
  int rc = setup(&md, k, 0);
  if (!rc && !EVP_DigestVerify(&md, sig, sig_len, in, in_len))
    rc = sli__fail(NULL, SLI_E_SIGNATURE, "the signature does not verify with this key");
  EVP_MD_CTX_cleanup(&md);
  ERR_clear_error();
  return rc;
}
