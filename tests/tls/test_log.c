/* test_log.c — the library writes nothing to the host's file descriptors: its notices and warnings
 * (a generated self-signed default identity, verification off, policy compat, ignored DH parameters)
 * go to the log callback, filtered by level, and are dropped without one. Black-box through
 * libsli.so.1; fd 2 is a pipe the test reads. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char state_dir[] = "/tmp/sli-log-XXXXXX";

typedef struct {
  int n, levels[16];
  char text[4096];
} seen;

static void collect(int level, const char *message, void *arg) {
  seen *s = arg;
  if (s->n < 16) s->levels[s->n++] = level;
  strncat(s->text, message, sizeof(s->text) - strlen(s->text) - 2);
  strcat(s->text, "\n");
}

/* noisy does what makes the library speak: a fresh default identity, an insecure client, policy
 * compat, DH parameters. */
static int noisy(int round) {
  char dir[256];
  snprintf(dir, sizeof(dir), "%s/%d", state_dir, round);
  setenv("SLI_STATE_DIR", dir, 1);
  sli_config *cfg = sli_config_new();
  sli_ctx *server = NULL, *client = NULL;
  CHECK(cfg);
  CHECK_EQ(sli_config_set_policy(cfg, "compat"), 0);
  CHECK_EQ(sli_config_set_dhparams_file(cfg, "/nonexistent/dhparams.pem"), 0);
  CHECK_EQ(sli_ctx_new_server(&server, cfg, 0), 0); /* generates the default identity */
  CHECK_EQ(sli_config_insecure_noverifycert(cfg), 0);
  CHECK_EQ(sli_ctx_new_client(&client, cfg, 0), 0);
  sli_ctx_free(server);
  sli_ctx_free(client);
  sli_config_free(cfg);
  return 0;
}

/* stderr_during runs `noisy` with fd 2 a pipe; returns how many bytes reached it. */
static int stderr_during(int round, size_t *got) {
  int p[2], saved = dup(2);
  CHECK(saved >= 0 && pipe2(p, O_NONBLOCK) == 0);
  dup2(p[1], 2);
  int r = noisy(round);
  dup2(saved, 2);
  close(saved);
  char buf[4096];
  ssize_t n = read(p[0], buf, sizeof(buf));
  *got = n > 0 ? (size_t)n : 0;
  close(p[0]);
  close(p[1]);
  return r;
}

static int test_silent_without_callback(void) {
  size_t got = 99;
  sli_set_log_callback(NULL, SLI_LOG_DEBUG, NULL);
  CHECK_EQ(stderr_during(1, &got), 0);
  CHECK_EQ(got, 0);
  return 0;
}

static int test_callback_gets_every_notice(void) {
  seen s = {0};
  size_t got = 99;
  sli_set_log_callback(collect, SLI_LOG_NOTICE, &s);
  CHECK_EQ(stderr_during(2, &got), 0);
  sli_set_log_callback(NULL, 0, NULL);
  CHECK_EQ(got, 0); /* still nothing on fd 2 */
  CHECK(strstr(s.text, "SELF-SIGNED default identity"));
  CHECK(strstr(s.text, "verification is OFF"));
  CHECK(strstr(s.text, "policy 'compat'"));
  CHECK(strstr(s.text, "ignoring DH parameters"));
  CHECK_EQ(s.n, 4);
  for (int i = 0; i < s.n; i++) CHECK(s.levels[i] == SLI_LOG_WARN || s.levels[i] == SLI_LOG_NOTICE);
  CHECK(!strchr(s.text, '\r'));
  return 0;
}

static int test_level_filters(void) {
  seen s = {0};
  size_t got;
  sli_set_log_callback(collect, SLI_LOG_WARN, &s);
  CHECK_EQ(stderr_during(3, &got), 0);
  sli_set_log_callback(NULL, 0, NULL);
  CHECK_EQ(s.n, 2); /* the default identity and verification off; not the notices */
  CHECK(strstr(s.text, "SELF-SIGNED") && strstr(s.text, "verification is OFF"));
  CHECK(!strstr(s.text, "compat") && !strstr(s.text, "DH parameters"));
  return 0;
}

int main(void) {
  if (!mkdtemp(state_dir)) return 1;
  run("silent_without_callback", test_silent_without_callback);
  run("callback_gets_every_notice", test_callback_gets_every_notice);
  run("level_filters", test_level_filters);
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
  if (system(cmd)) {}
  return finish();
}
