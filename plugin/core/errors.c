/* errors.c — SLI_* codes: names, descriptions, categories, and message helpers. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "core/core.h"

struct code_info {
  int code;
  const char *name;
  const char *text;
};

static const struct code_info codes[] = {
    {0, "SLI_OK", "success"},
    {SLI_WANT_READ, "SLI_WANT_READ", "the transport must become readable; repeat the call"},
    {SLI_WANT_WRITE, "SLI_WANT_WRITE", "the transport must become writable; repeat the call"},
    {SLI_E_CLOSED, "SLI_E_CLOSED", "the connection is closed"},
    {SLI_E_TRUNCATED, "SLI_E_TRUNCATED", "the peer closed the connection without close_notify (truncation)"},
    {SLI_E_IO, "SLI_E_IO", "transport error"},
    {SLI_E_TIMEOUT, "SLI_E_TIMEOUT", "the handshake timed out"},
    {SLI_E_ALERT, "SLI_E_ALERT", "the peer sent a fatal TLS alert"},
    {SLI_E_PROTO, "SLI_E_PROTO", "TLS protocol error"},
    {SLI_E_NO_SHARED_CIPHER, "SLI_E_NO_SHARED_CIPHER", "no cipher suite in common with the peer"},
    {SLI_E_VERSION, "SLI_E_VERSION", "no protocol version in common with the peer"},
    {SLI_E_NOT_TLS, "SLI_E_NOT_TLS", "the peer does not speak TLS"},
    {SLI_E_UNTRUSTED, "SLI_E_UNTRUSTED", "certificate issuer is not trusted"},
    {SLI_E_EXPIRED, "SLI_E_EXPIRED", "certificate has expired"},
    {SLI_E_NOT_YET_VALID, "SLI_E_NOT_YET_VALID", "certificate is not yet valid"},
    {SLI_E_HOSTNAME, "SLI_E_HOSTNAME", "certificate does not match the host name"},
    {SLI_E_REVOKED, "SLI_E_REVOKED", "certificate has been revoked"},
    {SLI_E_BAD_SIGNATURE, "SLI_E_BAD_SIGNATURE", "certificate signature is invalid"},
    {SLI_E_SELF_SIGNED, "SLI_E_SELF_SIGNED", "certificate is self-signed and not trusted"},
    {SLI_E_NO_PEER_CERT, "SLI_E_NO_PEER_CERT", "the peer sent no certificate"},
    {SLI_E_VERIFY, "SLI_E_VERIFY", "certificate verification failed"},
    {SLI_E_PEM, "SLI_E_PEM", "malformed PEM"},
    {SLI_E_PEM_TRUNCATED, "SLI_E_PEM_TRUNCATED", "truncated PEM (no END line)"},
    {SLI_E_LINE_ENDINGS, "SLI_E_LINE_ENDINGS", "lone CR line endings (use LF or CRLF)"},
    {SLI_E_NOT_PEM, "SLI_E_NOT_PEM", "not PEM (DER or binary data given)"},
    {SLI_E_PASSWORD, "SLI_E_PASSWORD", "wrong or missing password for an encrypted key"},
    {SLI_E_KEY_MISMATCH, "SLI_E_KEY_MISMATCH", "the private key does not match the certificate"},
    {SLI_E_WEAK_KEY, "SLI_E_WEAK_KEY", "key too weak"},
    {SLI_E_CIPHERS, "SLI_E_CIPHERS", "cipher list refused"},
    {SLI_E_FILE, "SLI_E_FILE", "file cannot be read"},
    {SLI_E_NO_IDENTITY, "SLI_E_NO_IDENTITY", "no certificate and key configured"},
    {SLI_E_CONFIG, "SLI_E_CONFIG", "invalid configuration"},
    {SLI_E_KEY_ENCRYPTED, "SLI_E_KEY_ENCRYPTED", "the key is passphrase-protected in a format sli cannot open (use ssh-keygen -p)"},
    {SLI_E_HEADER, "SLI_E_HEADER", "not a blob of a known format or version, or too short"},
    {SLI_E_HEADER_MAC, "SLI_E_HEADER_MAC", "the header failed authentication"},
    {SLI_E_PAYLOAD, "SLI_E_PAYLOAD", "the payload was modified, truncated or extended, or the associated data differs"},
    {SLI_E_ARMOR, "SLI_E_ARMOR", "bad base64 or ASCII armor"},
    {SLI_E_NO_MATCH, "SLI_E_NO_MATCH", "no key or identity given can open it"},
    {SLI_E_SIGNATURE, "SLI_E_SIGNATURE", "the signature does not verify"},
    {SLI_E_INVAL, "SLI_E_INVAL", "invalid argument"},
    {SLI_E_STATE, "SLI_E_STATE", "call not allowed in this state"},
    {SLI_E_BUFSIZE, "SLI_E_BUFSIZE", "output buffer too small"},
    {SLI_E_UNSUPPORTED, "SLI_E_UNSUPPORTED", "not supported"},
    {SLI_E_NOMEM, "SLI_E_NOMEM", "out of memory"},
    {SLI_E_INTERNAL, "SLI_E_INTERNAL", "internal error"},
};

static const struct code_info *find(int code) {
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
    if (codes[i].code == code) return &codes[i];
  return NULL;
}

const char *sli_err_name(int code) {
  const struct code_info *c = find(code);
  return c ? c->name : "unknown error";
}

const char *sli_strerror(int code) {
  const struct code_info *c = find(code);
  return c ? c->text : "unknown error";
}

int sli_error_category(int code) {
  if (code >= 0) return SLI_ECAT_OK;
  if (code <= -1000 && code > -2000) {
    static const int cats[] = {SLI_ECAT_BLOCKED, SLI_ECAT_CLOSED, SLI_ECAT_IO,
                               SLI_ECAT_ALERT,   SLI_ECAT_PROTO,  SLI_ECAT_VERIFY,
                               SLI_ECAT_CONFIG,  SLI_ECAT_CRYPTO, SLI_ECAT_USAGE,
                               SLI_ECAT_INTERNAL};
    return cats[(-code - 1000) / 100];
  }
  return SLI_ECAT_INTERNAL;
}

int sli__msg(char *buf, size_t cap, int code, const char *fmt, ...) {
  if (buf && cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
  }
  return code;
}

void sli__append_ssl_error(char *buf, size_t cap) {
  uint32_t e = ERR_get_error();
  if (e && buf && cap) {
    char tmp[256];
    ERR_error_string_n(e, tmp, sizeof(tmp));
    size_t n = strlen(buf);
    if (n < cap) snprintf(buf + n, cap - n, " (%s)", tmp);
  }
  ERR_clear_error();
}
