/* sli_go.h — the C side of the Go binding: thin wrappers that read the calling thread's
 * sli_last_error() inside the same cgo call as the failing function (a goroutine may move to
 * another OS thread between two cgo calls, and the message is per thread). On failure *em gets a
 * malloc'd copy of the message (freed by the Go side), on success it is left alone. */
#ifndef SLI_GO_H
#define SLI_GO_H
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sli.h>

static inline int goerr(char **em, int rc) {
  if (rc < 0 && rc != SLI_WANT_READ && rc != SLI_WANT_WRITE) {
    const char *m = sli_last_error();
    *em = m ? strdup(m) : NULL;
  }
  return rc;
}

/* Seal */
static inline int go_keyring_generate(char **em, sli_keyring **out) { return goerr(em, sli_keyring_generate(out)); }
static inline int go_keyring_rotate(char **em, sli_keyring **out, const sli_keyring *kr) { return goerr(em, sli_keyring_rotate(out, kr)); }
static inline int go_keyring_save_file(char **em, const sli_keyring *kr, const char *path) { return goerr(em, sli_keyring_save_file(kr, path)); }
static inline int go_seal(char **em, const sli_keyring *kr, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len, const uint8_t *ad, size_t ad_len) { return goerr(em, sli_seal(kr, out, out_len, in, in_len, ad, ad_len)); }
static inline int go_open(char **em, const sli_keyring *kr, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len, const uint8_t *ad, size_t ad_len) { return goerr(em, sli_open(kr, out, out_len, in, in_len, ad, ad_len)); }
/* go_res is what the hot-path wrappers return by value: no pointer to a Go variable crosses into
 * C, and the keyring (a C pointer) is passed as an integer, which cgo's pointer check skips: so
 * nothing escapes to the heap, and SealTo into a reused buffer allocates nothing. */
typedef struct { int rc; size_t n; char *em; } go_res;
static inline go_res go_seal2(uintptr_t kr, uint8_t *out, size_t cap, const uint8_t *in, size_t in_len, const uint8_t *ad, size_t ad_len) {
  go_res r = {0, cap, NULL};
  r.rc = goerr(&r.em, sli_seal((const sli_keyring *)kr, out, &r.n, in, in_len, ad, ad_len));
  return r;
}
static inline go_res go_open2(uintptr_t kr, uint8_t *out, size_t cap, const uint8_t *in, size_t in_len, const uint8_t *ad, size_t ad_len) {
  go_res r = {0, cap, NULL};
  r.rc = goerr(&r.em, sli_open((const sli_keyring *)kr, out, &r.n, in, in_len, ad, ad_len));
  return r;
}
static inline int go_sealed_key_id(char **em, const uint8_t *in, size_t in_len, uint32_t *id) { return goerr(em, sli_sealed_key_id(in, in_len, id)); }

/* Keys */
static inline int go_key_generate(char **em, sli_key **out, int type, int param, uint32_t flags) { return goerr(em, sli_key_generate(out, type, param, flags)); }
static inline int go_key_private_pem(char **em, const sli_key *k, const char *pw, char **out, size_t *n) { return goerr(em, sli_key_private_pem_alloc(k, pw, out, n)); }
static inline int go_key_public_pem(char **em, const sli_key *k, char **out, size_t *n) { return goerr(em, sli_key_public_pem_alloc(k, out, n)); }
static inline int go_key_ssh_public(char **em, const sli_key *k, const char *c, char **out, size_t *n) { return goerr(em, sli_key_openssh_public_alloc(k, c, out, n)); }
static inline int go_key_ssh_private(char **em, const sli_key *k, const char *c, char **out, size_t *n) { return goerr(em, sli_key_openssh_private_alloc(k, c, out, n)); }
static inline int go_key_sign(char **em, const sli_key *k, uint8_t *out, size_t *out_len, const uint8_t *in, size_t in_len) { return goerr(em, sli_key_sign(k, out, out_len, in, in_len)); }
static inline int go_key_verify(char **em, const sli_key *k, const uint8_t *sig, size_t sig_len, const uint8_t *in, size_t in_len) { return goerr(em, sli_key_verify(k, sig, sig_len, in, in_len)); }
static inline int go_signer_new(char **em, sli_signer **out, const sli_key *k, int verify) { return goerr(em, sli_signer_new(out, k, verify)); }
static inline int go_signer_update(char **em, sli_signer *s, const uint8_t *in, size_t n) { return goerr(em, sli_signer_update(s, in, n)); }
static inline int go_signer_sign_final(char **em, sli_signer *s, uint8_t *out, size_t *out_len) { return goerr(em, sli_signer_sign_final(s, out, out_len)); }
static inline int go_signer_verify_final(char **em, sli_signer *s, const uint8_t *sig, size_t n) { return goerr(em, sli_signer_verify_final(s, sig, n)); }

/* Certificates */
static inline int go_csr_create(char **em, const sli_key *k, const char *subject, char **sans, size_t n_sans, char **out, size_t *out_len) { return goerr(em, sli_csr_create_alloc(k, subject, (const char *const *)sans, n_sans, out, out_len)); }
static inline int go_selfsign(char **em, const sli_key *k, const char *subject, char **sans, size_t n_sans, int days, uint32_t flags, char **out, size_t *out_len) { return goerr(em, sli_cert_selfsign_alloc(k, subject, (const char *const *)sans, n_sans, days, flags, out, out_len)); }
static inline int go_ca_issue(char **em, const char *ca, size_t ca_len, const sli_key *k, const char *csr, size_t csr_len, int days, char **out, size_t *out_len) { return goerr(em, sli_ca_issue_alloc(ca, ca_len, k, csr, csr_len, days, out, out_len)); }

/* age */
static inline int go_age_identity_generate(char **em, sli_age_identity **out) { return goerr(em, sli_age_identity_generate(out)); }
static inline int go_age_identity_parse(char **em, sli_age_identity **out, const char *s) { return goerr(em, sli_age_identity_parse(out, s)); }
static inline int go_age_identity_scrypt(char **em, sli_age_identity **out, const char *pw) { return goerr(em, sli_age_identity_scrypt(out, pw)); }
static inline int go_age_identity_encode(char **em, const sli_age_identity *id, char *out, size_t cap) { return goerr(em, sli_age_identity_encode(id, out, cap)); }
static inline int go_age_identity_from_key(char **em, sli_age_identity **out, const sli_key *k) { return goerr(em, sli_age_identity_from_key(out, k)); }
static inline int go_age_identity_recipient(char **em, const sli_age_identity *id, sli_age_recipient **out) { return goerr(em, sli_age_identity_recipient(id, out)); }
static inline int go_age_recipient_parse(char **em, sli_age_recipient **out, const char *s) { return goerr(em, sli_age_recipient_parse(out, s)); }
static inline int go_age_recipient_scrypt(char **em, sli_age_recipient **out, const char *pw, int log2_n) { return goerr(em, sli_age_recipient_scrypt(out, pw, log2_n)); }
static inline int go_age_recipient_from_key(char **em, sli_age_recipient **out, const sli_key *k) { return goerr(em, sli_age_recipient_from_key(out, k)); }
static inline int go_age_recipient_encode(char **em, const sli_age_recipient *r, char *out, size_t cap) { return goerr(em, sli_age_recipient_encode(r, out, cap)); }
static inline int go_age_enc_new(char **em, sli_age_enc **out, sli_age_recipient **r, size_t n, uint32_t flags) { return goerr(em, sli_age_enc_new(out, (const sli_age_recipient *const *)r, n, flags)); }
static inline int go_age_dec_new(char **em, sli_age_dec **out, sli_age_identity **ids, size_t n, uint32_t flags) { return goerr(em, sli_age_dec_new(out, (const sli_age_identity *const *)ids, n, flags)); }

/* TLS: the transport callbacks are Go functions (tls_transport.go); these trampolines give them
 * the exact types of sli_read_fn / sli_write_fn. `arg` is a runtime/cgo.Handle, never a Go pointer. */
extern ssize_t goSliRead(sli_conn *conn, void *buf, size_t len, void *arg);
extern ssize_t goSliWrite(sli_conn *conn, void *buf, size_t len, void *arg);
static ssize_t go_read_tramp(sli_conn *conn, void *buf, size_t len, void *arg) { return goSliRead(conn, buf, len, arg); }
static ssize_t go_write_tramp(sli_conn *conn, const void *buf, size_t len, void *arg) { return goSliWrite(conn, (void *)buf, len, arg); }
static inline int go_conn_new(char **em, sli_conn **out, sli_ctx *ctx, uintptr_t handle, const char *servername) {
  return goerr(em, sli_conn_new_cbs(out, ctx, go_read_tramp, go_write_tramp, (void *)handle, servername, 0));
}
/* go_conn_set_peer gives a callback connection its peer's address (for messages). */
static inline int go_conn_set_peer(sli_conn *c, const uint8_t *ip, size_t ip_len, int port) {
  if (ip_len == 4) {
    struct sockaddr_in a; memset(&a, 0, sizeof a);
    a.sin_family = AF_INET; a.sin_port = htons((uint16_t)port); memcpy(&a.sin_addr, ip, 4);
    return sli_conn_set_peer_addr(c, (const struct sockaddr *)&a, sizeof a);
  }
  if (ip_len == 16) {
    struct sockaddr_in6 a; memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6; a.sin6_port = htons((uint16_t)port); memcpy(&a.sin6_addr, ip, 16);
    return sli_conn_set_peer_addr(c, (const struct sockaddr *)&a, sizeof a);
  }
  return SLI_E_INVAL;
}

/* The names of SLI_SETTING_MAP, in the order the map gives them. */
#define GO_SLI_NAME(ID, NAME, FLAG, VALUE, HELP) NAME,
static inline const char *go_setting_name(size_t i) {
  static const char *const names[] = { SLI_SETTING_MAP(GO_SLI_NAME) NULL };
  return names[i];
}

/* go_wipe_free zeroes and frees memory the Go side allocated with malloc (C.CString). */
static inline void go_wipe_free(void *p, size_t n) {
  if (p) { volatile unsigned char *v = p; while (n--) *v++ = 0; free(p); }
}
#endif
