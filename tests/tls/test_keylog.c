/* test_keylog.c — the insecure key log: sli_config_insecure_keylog hands each connection's secrets
 * to the host in the NSS key log format (TLS 1.3: four traffic secrets; TLS 1.2: CLIENT_RANDOM),
 * both ends logging the same secrets; SLI_INSECURE_KEYLOG=FILE appends the same lines to a file
 * created 0600 and refuses a symbolic link or an unwritable path; building a context with either
 * logs a warning that says INSECURE. (That the secrets are the real ones is checked against
 * OpenSSL's own key log in test_settings.py.) Black-box through libsli.so.1. */
#include <ctype.h>
#include <stdio.h>
#include <sys/stat.h>

#include "check.h"
#include "tls_pair.h"

static test_ca ca;
static test_identity id;
static char dir[] = "/tmp/sli-keylog-XXXXXX";

typedef struct {
  char lines[16][300];
  int n;
} lines;

static void collect(const sli_conn *conn, const char *line, void *arg) {
  lines *l = arg;
  if (l->n < 16) snprintf(l->lines[l->n++], sizeof(l->lines[0]), "%s", line);
}

static char warned[512];
static void on_log(int level, const char *msg, void *arg) {
  if (level <= SLI_LOG_WARN && strstr(msg, "INSECURE")) snprintf(warned, sizeof(warned), "%s", msg);
}

static int has_label(const lines *l, const char *label) {
  for (int i = 0; i < l->n; i++)
    if (!strncmp(l->lines[i], label, strlen(label)) && l->lines[i][strlen(label)] == ' ') return 1;
  return 0;
}

/* well_formed: "LABEL <64 hex> <hex>" with one client random for the whole connection. */
static int well_formed(const lines *l) {
  char random[65] = "";
  for (int i = 0; i < l->n; i++) {
    const char *sp1 = strchr(l->lines[i], ' ');
    CHECK(sp1);
    const char *sp2 = strchr(sp1 + 1, ' ');
    CHECK(sp2 && sp2 - sp1 - 1 == 64);
    for (const char *p = sp1 + 1; *p; p++) CHECK(p == sp2 || isxdigit((unsigned char)*p));
    CHECK(strlen(sp2 + 1) >= 64);
    if (!random[0]) memcpy(random, sp1 + 1, 64);
    CHECK(memcmp(random, sp1 + 1, 64) == 0);
  }
  return 0;
}

static int same_lines(const lines *a, const lines *b) {
  CHECK_EQ(a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    int found = 0;
    for (int j = 0; j < b->n; j++) found |= !strcmp(a->lines[i], b->lines[j]);
    CHECK(found);
  }
  return 0;
}

static sli_ctx *ctx_with(int server, int max_version, lines *l, const char *file, int *rc) {
  sli_config *cfg = sli_config_new();
  sli_ctx *ctx = NULL;
  *rc = -1;
  if (!cfg) return NULL;
  if (server) *rc = sli_config_set_keypair_mem(cfg, id.cert_pem, id.cert_len, id.key_pem, id.key_len, NULL);
  else *rc = sli_config_set_ca_mem(cfg, ca.pem, ca.len);
  if (!*rc && max_version) *rc = sli_config_set_max_version(cfg, max_version);
  if (!*rc && l) *rc = sli_config_insecure_keylog(cfg, collect, l);
  if (!*rc && file) *rc = sli_config_set_option(cfg, "SLI_INSECURE_KEYLOG", file);
  if (!*rc) *rc = server ? sli_ctx_new_server(&ctx, cfg, 0) : sli_ctx_new_client(&ctx, cfg, 0);
  sli_config_free(cfg);
  return ctx;
}

static int logged(int max_version, const char **labels, size_t n_labels) {
  lines sl = {0}, cl = {0};
  int rc;
  warned[0] = 0;
  sli_ctx *server = ctx_with(1, 0, &sl, NULL, &rc);
  CHECK(strstr(warned, "INSECURE")); /* announced when the context was built */
  sli_ctx *client = ctx_with(0, max_version, &cl, NULL, &rc);
  CHECK(server && client);
  test_pair p;
  CHECK_EQ(test_pair_new(&p, server, client, "db.example"), 0);
  test_pair_run(&p);
  CHECK_EQ(p.crc, 0);
  CHECK_EQ(p.src, 0);
  for (size_t i = 0; i < n_labels; i++) CHECK(has_label(&sl, labels[i]));
  CHECK_EQ(well_formed(&sl), 0);
  CHECK_EQ(same_lines(&sl, &cl), 0); /* both ends derived the same secrets */
  test_pair_free(&p);
  sli_ctx_free(server);
  sli_ctx_free(client);
  return 0;
}

static int test_tls13_lines(void) {
  const char *labels[] = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                          "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"};
  return logged(0, labels, 4);
}

static int test_tls12_lines(void) {
  const char *labels[] = {"CLIENT_RANDOM"};
  return logged(SLI_TLS1_2, labels, 1);
}

static int test_file(void) {
  char path[300];
  snprintf(path, sizeof(path), "%s/keys.log", dir);
  lines sl = {0};
  int rc;
  sli_ctx *server = ctx_with(1, 0, &sl, path, &rc), *client = ctx_with(0, 0, NULL, NULL, &rc);
  CHECK(server && client);
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK_EQ(st.st_mode & 0777, 0600);
  for (int round = 0; round < 2; round++) { /* appended, connection after connection */
    test_pair p;
    CHECK_EQ(test_pair_new(&p, server, client, "db.example"), 0);
    test_pair_run(&p);
    CHECK_EQ(p.crc, 0);
    test_pair_free(&p);
  }
  FILE *f = fopen(path, "r");
  CHECK(f);
  lines fl = {0};
  char buf[300];
  while (fl.n < 16 && fgets(buf, sizeof(buf), f)) {
    buf[strcspn(buf, "\n")] = 0;
    snprintf(fl.lines[fl.n++], sizeof(fl.lines[0]), "%s", buf);
  }
  fclose(f);
  CHECK_EQ(fl.n, 10); /* 5 lines a TLS 1.3 connection (with EXPORTER_SECRET), twice */
  CHECK_EQ(same_lines(&fl, &sl), 0); /* the file and the callback got the same */
  sli_ctx_free(server);
  sli_ctx_free(client);
  return 0;
}

static int test_file_refusals(void) {
  char link[300], missing[300];
  snprintf(link, sizeof(link), "%s/link.log", dir);
  snprintf(missing, sizeof(missing), "%s/no-such-dir/keys.log", dir);
  CHECK(symlink("/tmp/sli-keylog-target-never-written", link) == 0);
  sli_config *cfg = sli_config_new();
  CHECK(cfg);
  CHECK_EQ(sli_config_set_option(cfg, "SLI_INSECURE_KEYLOG", link), SLI_E_FILE);
  CHECK(strstr(sli_config_error(cfg), "link.log"));
  CHECK(access("/tmp/sli-keylog-target-never-written", F_OK) != 0);
  CHECK_EQ(sli_config_set_option(cfg, "SLI_INSECURE_KEYLOG", missing), SLI_E_FILE);
  CHECK_EQ(sli_config_set_option(cfg, "SLI_INSECURE_KEYLOG", ""), SLI_E_INVAL);
  sli_config_free(cfg);
  return 0;
}

int main(void) {
  sli_set_log_callback(on_log, SLI_LOG_WARN, NULL);
  if (!mkdtemp(dir) || test_ca_make(&ca) ||
      test_identity_make(&id, &ca, "db.example", SLI_KEY_EC, 256)) {
    fprintf(stderr, "cannot set up: %s\n", sli_last_error());
    return 1;
  }
  run("tls13_lines", test_tls13_lines);
  run("tls12_lines", test_tls12_lines);
  run("file", test_file);
  run("file_refusals", test_file_refusals);
  test_identity_free(&id);
  test_ca_free(&ca);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd)) {
  }
  return finish();
}
