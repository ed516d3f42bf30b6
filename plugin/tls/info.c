/* info.c — what a connection negotiated and who the peer is. */
#include <string.h>

#include "tls/conn.h"

int sli_conn_is_secured(const sli_conn *c) { return c && c->handshake_done && !c->fatal; }

const char *sli_conn_version(const sli_conn *c) {
  return c && c->handshake_done ? SSL_get_version(c->ssl) : NULL;
}

const char *sli_conn_cipher(const sli_conn *c) {
  const SSL_CIPHER *ci = c && c->handshake_done ? SSL_get_current_cipher(c->ssl) : NULL;
  return ci ? SSL_CIPHER_get_name(ci) : NULL;
}

const char *sli_conn_alpn(const sli_conn *c) {
  if (!c || !c->handshake_done) return NULL;
  const uint8_t *p;
  unsigned n;
  SSL_get0_alpn_selected(c->ssl, &p, &n);
  if (!n) return NULL;
  sli_conn *m = (sli_conn *)c; /* cache the NUL-terminated copy */
  memcpy(m->alpn, p, n);
  m->alpn[n] = 0;
  return m->alpn;
}

const char *sli_conn_servername(const sli_conn *c) {
  if (!c) return NULL;
  if (c->servername[0]) return c->servername;
  return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

int sli_conn_is_resumed(const sli_conn *c) {
  return c && c->handshake_done && SSL_session_reused(c->ssl);
}

int sli_conn_verify_result(const sli_conn *c) { return c ? c->verify_result : SLI_E_INVAL; }

const sli_cert *sli_conn_peer_cert(sli_conn *c) {
  if (!c) return NULL;
  if (c->peer_cert) return c->peer_cert;
  X509 *x = SSL_get_peer_certificate(c->ssl);
  if (!x) return NULL;
  STACK_OF(X509) *chain = SSL_get_peer_full_cert_chain(c->ssl);
  c->peer_cert = sli__cert_from_x509(x, chain);
  X509_free(x);
  return c->peer_cert;
}

void sli_conn_set_user_data(sli_conn *c, void *data) {
  if (c) c->user_data = data;
}

void *sli_conn_user_data(const sli_conn *c) { return c ? c->user_data : NULL; }
