/* test_hooks.c — what an embedding server keeps of a connection: its own pointer on each connection
 * (sli_conn_set_user_data), handed back in the transport callbacks; and the peer certificate,
 * kept past the connection with sli_cert_up_ref, with its SPIFFE ID (a URI SAN, which requests can
 * now carry). Black-box through libsli.so.1, over socketpair callbacks. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

static char state_dir[] = "/tmp/sli-hooks-XXXXXX";

typedef struct {
  int fd;
  int calls_seeing_data; /* transport calls in which sli_conn_user_data(conn) was this struct */
} host_state;

static ssize_t hread(sli_conn *c, void *buf, size_t len, void *arg) {
  host_state *h = sli_conn_user_data(c);
  if (h && h->fd == *(int *)arg) h->calls_seeing_data++;
  ssize_t r = recv(*(int *)arg, buf, len, MSG_DONTWAIT);
  return r < 0 ? SLI_WANT_READ : r;
}

static ssize_t hwrite(sli_conn *c, const void *buf, size_t len, void *arg) {
  host_state *h = sli_conn_user_data(c);
  if (h && h->fd == *(int *)arg) h->calls_seeing_data++;
  ssize_t w = send(*(int *)arg, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  return w < 0 ? SLI_WANT_WRITE : w;
}

static int test_user_data_and_kept_peer_cert(void) {
  /* a client certificate with a SPIFFE ID, from a local CA */
  sli_key *ca_key = NULL, *ck = NULL;
  char *ca = NULL, *csr = NULL, *cc = NULL, *ckp = NULL;
  size_t ca_len, csr_len, cc_len, ckp_len;
  CHECK_EQ(sli_key_generate(&ca_key, SLI_KEY_EC, 256, 0), 0);
  CHECK_EQ(sli_key_generate(&ck, SLI_KEY_EC, 256, 0), 0);
  CHECK_EQ(sli_cert_selfsign_alloc(ca_key, "/CN=hooks CA", NULL, 0, 2, SLI_CERT_CA, &ca, &ca_len), 0);
  const char *sans[] = {"DNS:db-client", "URI:spiffe://example.org/ns/prod/db-client"};
  CHECK_EQ(sli_csr_create_alloc(ck, "/CN=db-client", sans, 2, &csr, &csr_len), 0);
  CHECK_EQ(sli_ca_issue_alloc(ca, ca_len, ca_key, csr, csr_len, 2, &cc, &cc_len), 0);
  CHECK_EQ(sli_key_private_pem_alloc(ck, NULL, &ckp, &ckp_len), 0);
  sli_config *scfg = sli_config_new(), *ccfg = sli_config_new();
  CHECK(scfg && ccfg);
  CHECK_EQ(sli_config_set_ca_mem(scfg, ca, ca_len), 0);
  CHECK_EQ(sli_config_set_client_cert(scfg, SLI_CLIENT_CERT_REQUIRED), 0);
  CHECK_EQ(sli_config_set_keypair_mem(ccfg, cc, cc_len, ckp, ckp_len, NULL), 0);
  CHECK_EQ(sli_config_insecure_noverifycert(ccfg), 0);
  sli_ctx *server = NULL, *client = NULL;
  CHECK_EQ(sli_ctx_new_server(&server, scfg, 0), 0);
  CHECK_EQ(sli_ctx_new_client(&client, ccfg, 0), 0);
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  sli_conn *s = NULL, *c = NULL;
  CHECK_EQ(sli_conn_new_cbs(&s, server, hread, hwrite, &fds[0], NULL, 0), 0);
  CHECK_EQ(sli_conn_new_cbs(&c, client, hread, hwrite, &fds[1], "localhost", 0), 0);
  CHECK(sli_conn_user_data(s) == NULL);
  host_state hs = {fds[0], 0};
  sli_conn_set_user_data(s, &hs);
  CHECK(sli_conn_user_data(s) == &hs && sli_conn_user_data(c) == NULL);
  int rc = SLI_WANT_READ, src = SLI_WANT_READ;
  for (int i = 0; i < 100 && (rc < 0 || src < 0); i++) {
    if (rc == SLI_WANT_READ || rc == SLI_WANT_WRITE) rc = sli_conn_handshake(c);
    if (src == SLI_WANT_READ || src == SLI_WANT_WRITE) src = sli_conn_handshake(s);
  }
  CHECK_EQ(rc, 0);
  CHECK_EQ(src, 0);
  CHECK(hs.calls_seeing_data > 0); /* the server's callbacks found the host's state on the conn */
  /* the client's certificate, kept past the connection */
  sli_cert *kept = sli_cert_up_ref(sli_conn_peer_cert(s));
  CHECK(kept);
  sli_conn_free(s);
  sli_conn_free(c);
  CHECK(strstr(sli_cert_subject(kept), "db-client"));
  CHECK_EQ(sli_cert_san_count(kept), 2);
  CHECK(strcmp(sli_cert_san(kept, 0), "DNS:db-client") == 0);
  /* its SPIFFE ID, for mapping the client to a user */
  CHECK(strcmp(sli_cert_san(kept, 1), "URI:spiffe://example.org/ns/prod/db-client") == 0);
  sli_cert_free(kept);
  CHECK(sli_cert_up_ref(NULL) == NULL);
  close(fds[0]);
  close(fds[1]);
  sli_ctx_free(server);
  sli_ctx_free(client);
  sli_config_free(scfg);
  sli_config_free(ccfg);
  sli_key_free(ca_key);
  sli_key_free(ck);
  sli_free(ca, ca_len);
  sli_free(csr, csr_len);
  sli_free(cc, cc_len);
  sli_free(ckp, ckp_len);
  return 0;
}

int main(void) {
  if (!mkdtemp(state_dir)) return 1;
  setenv("SLI_STATE_DIR", state_dir, 1);
  run("user_data_and_kept_peer_cert", test_user_data_and_kept_peer_cert);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
